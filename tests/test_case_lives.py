"""A ticket's case lives more than once: opened again after Temporal forgot the first case (retention, or
an operator's delete), or reset to an earlier point. Each life writes rows of its own, keyed by its first
run id, and leaves the earlier life's rows as they were; the one `cases` row shows the live one."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, ResetReapplyExcludeType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.api.workflowservice.v1 import (
    DeleteWorkflowExecutionRequest,
    ResetWorkflowExecutionRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from activities.senders import Senders
from stack.cases import open_case
from tests.cases import case_worker, quiet, round_the_clock_policy, status_when, ticket
from tests.test_senders import Mailbox, Receiver
from workflows.case import CaseWorkflow
from workflows.models import CaseStatus, CloseReason

# Opened this long ago, a P1's Tech Lead ticket (60 minutes after engagement) is due at once.
LONG_AGO = timedelta(minutes=61)
LIFE_TABLES = ("case_events", "notifications", "escalations")
DELETE_TIMEOUT = 90
ORDER = {"case_events": "seq", "notifications": "dedupe_key", "escalations": "ticket_key"}


async def life_rows(pool: asyncpg.Pool, table: str, workflow_id: str, life: str) -> list[dict[str, Any]]:
    found = await pool.fetch(
        f"SELECT * FROM {table} WHERE workflow_id = $1 AND life = $2 ORDER BY {ORDER[table]}",
        workflow_id,
        life,
    )
    return [dict(r) for r in found]


async def life_snapshot(pool: asyncpg.Pool, workflow_id: str, life: str) -> dict[str, list[dict[str, Any]]]:
    return {t: await life_rows(pool, t, workflow_id, life) for t in LIFE_TABLES}


async def life_stored(
    handle: WorkflowHandle[Any, Any], pool: asyncpg.Pool, status: CaseStatus, timeout: float = 20
) -> None:
    """Until every entry `status` holds is in PostgreSQL under its own life and none of that life's
    notifications is still on its way (a helper of its own: `tests.cases.settled` counts every life)."""
    last = status.timeline[-1].seq if status.timeline else 0
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        stored = await pool.fetchval(
            "SELECT coalesce(max(seq), 0) FROM case_events WHERE workflow_id = $1 AND life = $2",
            handle.id,
            status.life,
        )
        unsettled = await pool.fetchval(
            "SELECT count(*) FROM notifications WHERE workflow_id = $1 AND life = $2"
            " AND state IN ('pending', 'sending')",
            handle.id,
            status.life,
        )
        if stored >= last and unsettled == 0:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"life {status.life}: {stored} of {last} entries stored, {unsettled} unsent")
        await asyncio.sleep(0.05)


async def delete_case(client: Client, workflow_id: str, run_id: str) -> None:
    """What retention does to a closed case, done now: Temporal forgets the run. The dev server takes
    about half a minute to act on a delete; until then the ticket's id is still taken."""
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        )
    )
    began = asyncio.get_running_loop().time()
    deadline = began + DELETE_TIMEOUT
    while True:
        try:
            await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                print(
                    f"\n{workflow_id} gone {asyncio.get_running_loop().time() - began:.1f} s after the delete"
                )
                return
            raise
        assert asyncio.get_running_loop().time() < deadline, "the deleted case is still there"
        await asyncio.sleep(0.25)


async def first_event(handle: WorkflowHandle[Any, Any], event_type: EventType.ValueType) -> HistoryEvent:
    async for event in handle.fetch_history_events():
        if event.event_type == event_type:
            return event
    raise AssertionError(f"no {EventType.Name(event_type)} in the history of {handle.id}")


def assert_own_rows(rows: dict[str, list[dict[str, Any]]], workflow_id: str, life: str) -> None:
    """A life's rows: a timeline from seq 1, a Tech Lead ticket and notifications, all keyed by it."""
    events = rows["case_events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "opened"
    assert "escalated" in [e["type"] for e in events]
    (tl,) = rows["escalations"]
    assert tl["level"] == "tech_lead" and tl["ticket_key"].startswith(f"{workflow_id}/{life}:")
    assert rows["notifications"], "no notifications in this life"
    for n in rows["notifications"]:
        assert n["dedupe_key"].startswith(f"{workflow_id}/{life}:")
        assert n["state"] == "sent", (n["dedupe_key"], n["state"], n["last_error"])


async def test_a_ticket_opened_again_after_its_case_was_deleted_lives_a_second_life(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    wired: tuple[Senders, Receiver, Mailbox],
) -> None:
    senders, receiver, box = wired
    client = dev_env.client
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy(), sender=senders) as cases:
        opened = datetime.now().astimezone() - LONG_AGO
        first = await cases.open(ticket(ticket_id, "P1", opened_at=opened))
        wf, first_run = first.id, first.first_execution_run_id
        assert first_run is not None
        raised = await status_when(first, lambda s: s.escalated)
        assert raised.life == first_run
        await first.execute_update("cancel", {"reason": "opened by mistake"}, result_type=CaseStatus)
        outcome = await asyncio.wait_for(first.result(), 30)
        assert outcome.close_reason is CloseReason.CANCELLED
        closed = await first.query(CaseWorkflow.status)
        await life_stored(first, pool, closed)
        before = await life_snapshot(pool, wf, first_run)
        assert_own_rows(before, wf, first_run)
        first_keys = {n["dedupe_key"] for n in before["notifications"]}

        await delete_case(client, wf, first_run)
        second = await open_case(
            client, ticket(ticket_id, "P1", opened_at=opened, subject="Checkout API down again"),
            task_queue=task_queue,
        )  # fmt: skip
        cases.handles = [second]  # the first is gone from Temporal
        second_run = second.first_execution_run_id
        assert second_run is not None and second_run != first_run
        again = await status_when(second, lambda s: s.escalated)
        await quiet(second)
        again = await second.query(CaseWorkflow.status)
        await life_stored(second, pool, again)
        after_second = await life_snapshot(pool, wf, second_run)
        untouched = await life_snapshot(pool, wf, first_run)
        case_rows = await pool.fetch("SELECT * FROM cases WHERE workflow_id = $1", wf)
        await cases.terminate_running()

    print(f"first life {first_run}, second life {again.life}")
    assert again.life == second_run
    assert [e.ticket_key for e in again.escalations] == [f"{wf}/{second_run}:1:tech_lead"]
    assert_own_rows(after_second, wf, second_run)
    assert untouched == before

    second_keys = {n["dedupe_key"] for n in after_second["notifications"]}
    assert not first_keys & second_keys
    # The provider deduplicates on the key: the second life's page is a new delivery, not a replay.
    pages = [k for k in second_keys if k.endswith(":tech_lead:page")]
    assert len(pages) == 1 and pages[0] in receiver.delivered
    assert len([h for h in receiver.hits if h.key in first_keys | second_keys]) == len(
        [k for k in first_keys | second_keys if not k.endswith(":email")]
    )
    subjects = [m["Subject"] for m in box.messages()]
    assert any("Checkout API down again" in s for s in subjects)

    (row,) = case_rows
    assert (row["life"], row["phase"], row["subject"]) == (second_run, "engaged", "Checkout API down again")
    assert row["escalated"] and row["closed_at"] is None and row["close_reason"] is None
    assert row["last_seq"] == again.timeline[-1].seq


async def test_a_reset_case_writes_rows_of_its_own_after_the_reset_point(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    wired: tuple[Senders, Receiver, Mailbox],
) -> None:
    senders, _, _ = wired
    client = dev_env.client
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy(), sender=senders) as cases:
        opened = datetime.now().astimezone() - LONG_AGO
        handle = await cases.open(ticket(ticket_id, "P1", opened_at=opened))
        wf, first_run = handle.id, handle.first_execution_run_id
        assert first_run is not None
        await status_when(handle, lambda s: s.escalated)
        await quiet(handle)
        noted = await handle.execute_update(
            "add_note", {"text": "written before the reset"}, result_type=CaseStatus
        )
        await quiet(handle)
        before_status = await handle.query(CaseWorkflow.status)
        await life_stored(handle, pool, before_status)
        before = await life_snapshot(pool, wf, first_run)

        # Back to the first workflow task, without the note: from there the reset run goes its own way.
        completed = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
        first_task = await first_event(handle, completed)
        reset = await client.workflow_service.reset_workflow_execution(
            ResetWorkflowExecutionRequest(
                namespace=client.namespace,
                workflow_execution=WorkflowExecution(workflow_id=wf, run_id=first_run),
                reason="tests: reset to the first workflow task",
                workflow_task_finish_event_id=first_task.event_id,
                request_id=str(uuid.uuid4()),
                reset_reapply_exclude_types=[
                    ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_SIGNAL,
                    ResetReapplyExcludeType.RESET_REAPPLY_EXCLUDE_TYPE_UPDATE,
                ],
            )
        )
        reset_handle = client.get_workflow_handle_for(CaseWorkflow.run, wf, run_id=reset.run_id)
        started = await first_event(reset_handle, EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
        attributes = started.workflow_execution_started_event_attributes
        described = (await reset_handle.describe()).raw_description.workflow_execution_info
        print(
            f"\noriginal run {first_run}; reset run {reset.run_id}; the reset run's started event:"
            f" first_execution_run_id={attributes.first_execution_run_id},"
            f" original_execution_run_id={attributes.original_execution_run_id};"
            f" describe: first_run_id={described.first_run_id}"
        )
        await status_when(reset_handle, lambda s: s.escalated)
        await quiet(reset_handle)
        after = await reset_handle.execute_update(
            "add_note", {"text": "written after the reset"}, result_type=CaseStatus
        )
        await quiet(reset_handle)
        after = await reset_handle.query(CaseWorkflow.status)
        print(f"life before the reset {before_status.life}, after it {after.life}")
        await life_stored(reset_handle, pool, after)
        notes = await pool.fetch(
            "SELECT life, seq, detail FROM case_events WHERE workflow_id = $1 AND type = 'note' ORDER BY seq",
            wf,
        )
        print("notes stored:", [tuple(n) for n in notes])
        reset_rows = await life_snapshot(pool, wf, after.life)
        untouched = await life_snapshot(pool, wf, first_run)
        (row,) = await pool.fetch("SELECT * FROM cases WHERE workflow_id = $1", wf)
        await cases.terminate_running()

    note_seq = noted.timeline[-1].seq
    assert after.timeline[-1].seq == note_seq and after.timeline[-1].detail == "written after the reset"
    assert "written after the reset" in [n["detail"] for n in notes], "the reset run's note was never stored"
    assert after.life != first_run
    assert_own_rows(reset_rows, wf, after.life)
    assert untouched == before
    assert row["life"] == after.life and row["last_seq"] == note_seq
