"""Every action as an update on the dev server: a good one answers with the case, a bad one is refused
to the caller with the reason and leaves no trace in the case's history (except one the case accepted
while it was being opened, and refused once triaged)."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.testing import WorkflowEnvironment

from stack.cases import NotAnsweredYet, open_case, signal_action, update_action
from tests.cases import (
    Cases,
    case_worker,
    quiet,
    round_the_clock_policy,
    status_when,
    ticket,
    until,
    updates_admitted,
)
from workflows.case import CaseWorkflow
from workflows.models import CaseInput, CloseReason, MilestoneState, Phase, Priority
from workflows.rules import Refused


async def history_length(handle: WorkflowHandle[CaseWorkflow, Any]) -> int:
    return len([e async for e in handle.fetch_history_events()])


async def refused(
    env: WorkflowEnvironment,
    handle: WorkflowHandle[CaseWorkflow, Any],
    ticket_id: str,
    action: str,
    payload: Any,
    message: str,
) -> None:
    """The update is refused with `message` and the case's history does not grow."""
    await quiet(handle)
    before = await history_length(handle)
    with pytest.raises(Refused, match=message):
        await update_action(env.client, ticket_id, action, payload)
    assert await history_length(handle) == before


async def engaged_case(
    cases: Cases, ticket_id: str, priority: str = "P3"
) -> WorkflowHandle[CaseWorkflow, Any]:
    handle = await cases.open(ticket(ticket_id, priority))
    await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
    return handle


@pytest.fixture
def policy():  # type: ignore[no-untyped-def]
    return round_the_clock_policy()


async def test_assign_add_note_and_change_priority(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str, policy: Any
) -> None:
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await engaged_case(cases, ticket_id)
        status = await update_action(
            dev_env.client, ticket_id, "assign", {"assignee": "alice@support.example"}
        )
        assert status.assignee == "alice@support.example"
        assert status.timeline[-1].type == "assigned"
        await refused(
            dev_env,
            handle,
            ticket_id,
            "assign",
            {"assignee": "alice@support.example"},
            "already assigned to alice@support.example",
        )
        await refused(
            dev_env, handle, ticket_id, "assign", {}, "invalid assign payload: assignee: Field required"
        )
        await refused(
            dev_env, handle, ticket_id, "assign", {"assignee": ""}, "assignee: String should have at least 1"
        )

        status = await update_action(
            dev_env.client, ticket_id, "add_note", {"text": "Käse 🧀 logs attached", "by": "bob"}
        )
        assert (status.timeline[-1].type, status.timeline[-1].detail) == ("note", "Käse 🧀 logs attached")
        await refused(dev_env, handle, ticket_id, "add_note", {"by": "bob"}, "text: Field required")
        await refused(
            dev_env, handle, ticket_id, "add_note", {"text": "x" * 10_001}, "text: String should have at most"
        )

        status = await update_action(
            dev_env.client, ticket_id, "change_priority", {"priority": "P2", "reason": "VIP"}
        )
        assert status.priority is Priority.P2
        await refused(
            dev_env, handle, ticket_id, "change_priority", {"priority": "P2"}, "case .*: already P2"
        )
        await refused(
            dev_env, handle, ticket_id, "change_priority", {"priority": "P5"}, "priority: Input should be"
        )
        await cases.terminate_running()


async def test_contact_milestones_pause_and_resume(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str, policy: Any
) -> None:
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await engaged_case(cases, ticket_id)
        await refused(
            dev_env,
            handle,
            ticket_id,
            "milestone_verified",
            {"milestone": "data_verified"},
            "verify first_response before data_verified",
        )
        await refused(
            dev_env, handle, ticket_id, "customer_contacted", {"channel": "fax"}, "channel: Input should be"
        )
        await refused(
            dev_env, handle, ticket_id, "customer_contacted", "call", "invalid customer_contacted payload"
        )

        status = await update_action(dev_env.client, ticket_id, "customer_contacted", {"channel": "call"})
        assert status.milestones[0].state is MilestoneState.MET
        status = await update_action(
            dev_env.client, ticket_id, "milestone_verified", {"milestone": "data_verified", "by": "a"}
        )
        assert status.milestones[1].state is MilestoneState.MET
        await refused(
            dev_env,
            handle,
            ticket_id,
            "milestone_verified",
            {"milestone": "data_verified"},
            "already verified",
        )
        await refused(
            dev_env,
            handle,
            ticket_id,
            "milestone_verified",
            {"milestone": "root_cause"},
            "milestone: Input should be",
        )

        await refused(dev_env, handle, ticket_id, "customer_replied", {}, "is not waiting on the customer")
        status = await update_action(
            dev_env.client, ticket_id, "waiting_on_customer", {"note": "need a HAR file"}
        )
        assert status.paused and status.escalation_due_at is None
        await refused(dev_env, handle, ticket_id, "waiting_on_customer", {}, "is waiting on the customer")
        await refused(
            dev_env,
            handle,
            ticket_id,
            "waiting_on_customer",
            {"note": 42},
            "note: Input should be a valid string",
        )
        status = await update_action(dev_env.client, ticket_id, "customer_replied", {"note": "attached"})
        assert not status.paused and status.escalation_due_at is not None
        await refused(
            dev_env,
            handle,
            ticket_id,
            "customer_replied",
            {"when": "now"},
            "when: Extra inputs are not permitted",
        )
        await cases.terminate_running()


async def test_resolve_reject_confirm(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str, policy: Any
) -> None:
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await engaged_case(cases, ticket_id)
        await refused(
            dev_env,
            handle,
            ticket_id,
            "customer_confirmed",
            {},
            "is engaged; customer_confirmed is accepted only while awaiting_confirmation",
        )
        await refused(
            dev_env, handle, ticket_id, "customer_rejected", {}, "allowed now: assign, customer_contacted"
        )
        await refused(dev_env, handle, ticket_id, "resolved", {}, "summary: Field required")
        await refused(
            dev_env, handle, ticket_id, "resolved", {"summary": ""}, "summary: String should have at least 1"
        )

        status = await update_action(
            dev_env.client, ticket_id, "resolved", {"summary": "patched", "by": "alice"}
        )
        assert status.phase is Phase.AWAITING_CONFIRMATION
        await refused(
            dev_env,
            handle,
            ticket_id,
            "resolved",
            {"summary": "again"},
            "is awaiting_confirmation; resolved is accepted only while engaged",
        )
        await refused(
            dev_env,
            handle,
            ticket_id,
            "milestone_verified",
            {"milestone": "data_verified"},
            "is awaiting_confirmation; milestone_verified is accepted only while engaged",
        )
        await refused(
            dev_env,
            handle,
            ticket_id,
            "customer_rejected",
            {"note": "n" * 10_001},
            "note: String should have",
        )

        status = await update_action(dev_env.client, ticket_id, "customer_rejected", {"note": "still broken"})
        assert (status.phase, status.engagement) == (Phase.ENGAGED, 2)
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await update_action(dev_env.client, ticket_id, "resolved", {"summary": "really patched"})
        await status_when(handle, lambda s: s.follow_up_sent_at is not None)
        await refused(dev_env, handle, ticket_id, "customer_confirmed", {"rating": 5}, "rating: Extra inputs")
        status = await update_action(dev_env.client, ticket_id, "customer_confirmed", {"note": "works"})
        assert status.phase is Phase.CLOSED and status.close_reason is CloseReason.CONFIRMED
        outcome = await handle.result()
        assert outcome.close_reason is CloseReason.CONFIRMED
        with pytest.raises(Refused, match="is closed \\(completed\\); it takes no more actions"):
            await update_action(dev_env.client, ticket_id, "add_note", {"text": "late"})


async def test_cancel_closes_from_any_phase_without_follow_up(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str, policy: Any
) -> None:
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await engaged_case(cases, ticket_id)
        await refused(dev_env, handle, ticket_id, "cancel", {}, "reason: Field required")
        await refused(
            dev_env, handle, ticket_id, "cancel", {"reason": "dup", "ticket": "T-1"}, "ticket: Extra inputs"
        )
        status = await update_action(
            dev_env.client, ticket_id, "cancel", {"reason": "duplicate of T-1", "by": "carol"}
        )
        assert (status.phase, status.close_reason) == (Phase.CLOSED, CloseReason.CANCELLED)
        outcome = await handle.result()

    assert outcome.close_reason is CloseReason.CANCELLED
    types = [e.type for e in status.timeline]
    assert "follow_up_sent" not in types and types[-2:] == ["cancelled", "closed"]
    kinds = {
        r["kind"]
        for r in await pool.fetch("SELECT kind FROM notifications WHERE workflow_id = $1", handle.id)
    }
    assert "follow_up" not in kinds and "case_closed" not in kinds


async def test_customer_updated_is_kept_in_the_timeline_and_stored(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str, policy: Any
) -> None:
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await engaged_case(cases, ticket_id, "P1")
        status = await update_action(
            dev_env.client, ticket_id, "customer_updated", {"note": "fix rolling out", "by": "alice"}
        )
        entry = status.timeline[-1]
        assert (entry.type, entry.actor, entry.data["note"]) == (
            "customer_updated",
            "alice",
            "fix rolling out",
        )
        # A P1 owes the customer an update every cycle: this one met the cycle it fell in.
        assert entry.data["milestone"] == "customer_update" and entry.data["cycle"] >= 1
        stored = await pool.fetchrow(
            "SELECT type, actor FROM case_events WHERE workflow_id = $1 AND seq = $2", handle.id, entry.seq
        )
        assert stored is not None and tuple(stored) == ("customer_updated", "alice")
        await update_action(dev_env.client, ticket_id, "resolved", {"summary": "rolled back"})
        await refused(dev_env, handle, ticket_id, "customer_updated", {}, "accepted only while engaged")
        await cases.terminate_running()


async def test_actions_sent_while_the_case_is_being_opened_wait_for_its_triage(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """Sent before any worker has opened the case, each update reaches it in its first workflow task: the
    payload is judged at once, the rules once the case is triaged, and the good one is applied then. One
    the rules refuse then was accepted first, so its id keeps that refusal, and the refusal says so."""
    handle = await open_case(dev_env.client, ticket(ticket_id, "P3"), task_queue=task_queue)
    sent = {
        "contact": ("customer_contacted", {"channel": "call"}),
        "too early": ("customer_confirmed", {}),
    }
    answers = {
        name: asyncio.ensure_future(update_action(dev_env.client, ticket_id, action, payload, update_id=name))
        for name, (action, payload) in sent.items()
    }
    # Past the client's own check, as another SDK or a raw gRPC caller could send it.
    bad = handle.execute_update("milestone_verified", {"milestone": "coffee"}, id="bad payload")
    answers["bad payload"] = asyncio.ensure_future(bad)
    await until(
        lambda: updates_admitted(dev_env.client, handle.id, list(answers)), "the updates wait for a worker"
    )
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy()) as cases:
        cases.handles.append(handle)
        await asyncio.wait(answers.values(), timeout=30)
        contacted = answers["contact"].result()
        await update_action(dev_env.client, ticket_id, "resolved", {"summary": "fixed"})
        again = update_action(dev_env.client, ticket_id, "customer_confirmed", {}, update_id="too early")
        with pytest.raises(Refused, match="holds this refusal; send the action again with a new one"):
            await again
        events = [e async for e in handle.fetch_history_events()]
        await cases.terminate_running()

    assert contacted.phase is Phase.ENGAGED
    assert "customer_contacted" in [e.type for e in contacted.timeline]
    with pytest.raises(
        Refused, match="engaged; customer_confirmed is accepted only while awaiting_confirmation"
    ):
        answers["too early"].result()
    with pytest.raises(WorkflowUpdateFailedError) as bad_payload:
        answers["bad payload"].result()
    assert "invalid milestone_verified payload: milestone" in str(bad_payload.value.cause)
    accepted = {
        e.workflow_execution_update_accepted_event_attributes.protocol_instance_id
        for e in events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
    }
    assert {"contact", "too early"} <= accepted and "bad payload" not in accepted


async def test_an_action_sent_while_a_failing_case_is_opened_is_refused_with_the_reason(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """A ticket whose case fails while it is opened (a calendar the policy does not know): an action
    waiting for the triage is answered with the reason, not left to the caller's deadline."""
    raw = json.loads(ticket(ticket_id, "P3").model_dump_json())
    raw["customer"]["calendar"] = "mars-base"
    handle = await open_case(dev_env.client, CaseInput.model_validate(raw), task_queue=task_queue)
    note = update_action(dev_env.client, ticket_id, "add_note", {"text": "hi"}, update_id="note")
    answer = asyncio.ensure_future(note)
    await until(
        lambda: updates_admitted(dev_env.client, handle.id, ["note"]), "the update waits for a worker"
    )
    async with case_worker(dev_env, pool, task_queue):
        with pytest.raises(Refused, match="unknown calendar 'mars-base'"):
            await asyncio.wait_for(answer, 30)
    assert (await handle.describe()).status is WorkflowExecutionStatus.FAILED


async def test_an_action_sent_again_with_its_id_is_applied_once_even_after_a_continue_as_new(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """Temporal answers a known update id itself only within a run; the case carries the ids it answered
    into the next one, so a caller's retry after a continue-as-new is answered, not applied again."""
    policy = round_the_clock_policy(continue_as_new_after_events=100, timeline_window=200)
    note, key = {"text": "called the customer back"}, "add_note:retry-1"
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await engaged_case(cases, ticket_id)
        await update_action(dev_env.client, ticket_id, "add_note", note, update_id=key)
        await update_action(dev_env.client, ticket_id, "add_note", note, update_id=key)
        first_run = (await handle.describe()).run_id
        for n in range(80):
            await signal_action(dev_env.client, ticket_id, "add_note", {"text": f"note {n}"})
        await until(lambda: _continued(handle, first_run), "the case continued as new", timeout=60)
        again = await update_action(dev_env.client, ticket_id, "add_note", note, update_id=key)
        fresh = await update_action(dev_env.client, ticket_id, "add_note", note, update_id="add_note:retry-2")
        await cases.terminate_running()

    assert [e.detail for e in again.timeline].count(note["text"]) == 1
    assert [e.detail for e in fresh.timeline].count(note["text"]) == 2
    stored = await pool.fetchval(
        "SELECT count(*) FROM case_events WHERE workflow_id = $1 AND type = 'note' AND detail = $2",
        handle.id,
        note["text"],
    )
    assert stored == 2


async def _continued(handle: WorkflowHandle[CaseWorkflow, Any], first_run: str) -> bool:
    return (await handle.describe()).run_id != first_run


async def test_an_action_no_worker_answers_gives_up_at_its_deadline_past_the_servers_long_poll(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """The server ends each long poll after about 20 s with the update still waiting, and the SDK asks
    again: only a deadline over the whole call ends a wait longer than that."""
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy()) as cases:
        handle = await engaged_case(cases, ticket_id)
    wait = timedelta(seconds=22)
    began = asyncio.get_running_loop().time()
    try:
        with pytest.raises(NotAnsweredYet, match="did not answer within 22 s"):
            await asyncio.wait_for(
                update_action(dev_env.client, ticket_id, "add_note", {"text": "hello?"}, wait=wait), 50
            )
        # A second long poll would have run to the outer 50 s, where the cancellation read as the same error.
        assert asyncio.get_running_loop().time() - began < 40
    finally:
        await handle.terminate("test over")
