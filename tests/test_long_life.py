"""A case that takes thousands of signals continues as new and still closes with its whole timeline, and
signals that pile up while no worker runs are all taken when one returns."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType, TimeoutType
from temporalio.testing import WorkflowEnvironment

from stack.cases import CASE_TASK_TIMEOUT, update_action
from tests.cases import (
    case_worker,
    notes_stored,
    quiet,
    round_the_clock_policy,
    send_notes,
    settled,
    status_when,
    ticket,
)
from workflows.models import CloseReason, Phase

SIGNALS = 5_000


@pytest.mark.timeout(300)
async def test_five_thousand_signals_continue_as_new_and_close_with_the_full_timeline(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    policy = round_the_clock_policy(continue_as_new_after_events=1_000, timeline_window=200)
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        first_run = handle.first_execution_run_id
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        # 100 at once, then the next 100 once the case has taken them: a flood outruns any one workflow,
        # and how a case weathers one is measured by bench/signal_burst.py and the outage test below.
        for sent in range(100, SIGNALS + 1, 100):
            await asyncio.wait_for(send_notes(dev_env.client, handle.id, range(sent - 100, sent)), 30)
            await notes_stored(pool, handle.id, sent, timeout=30)
        await quiet(handle, timeout=60)
        await asyncio.wait_for(update_action(dev_env.client, ticket_id, "resolved", {"summary": "done"}), 60)
        await status_when(handle, lambda s: s.follow_up_sent_at is not None)
        await asyncio.wait_for(update_action(dev_env.client, ticket_id, "customer_confirmed", {}), 60)
        outcome = await asyncio.wait_for(handle.result(), 60)
        status = await settled(handle, pool)

    assert outcome.close_reason is CloseReason.CONFIRMED
    first_history = [
        e
        async for e in dev_env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history_events()
    ]
    assert first_history[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
    runs = [w async for w in dev_env.client.list_workflows(f'WorkflowId = "{handle.id}"')]
    assert len(runs) >= 2
    latest = (await dev_env.client.get_workflow_handle(handle.id).describe()).raw_description
    assert latest.execution_config.default_workflow_task_timeout.ToTimedelta() == CASE_TASK_TIMEOUT

    seqs = [
        r["seq"]
        for r in await pool.fetch(
            "SELECT seq FROM case_events WHERE workflow_id = $1 ORDER BY seq", handle.id
        )
    ]
    assert seqs == list(range(1, len(seqs) + 1))
    notes = await pool.fetchval(
        "SELECT count(*) FROM case_events WHERE workflow_id = $1 AND type = 'note'", handle.id
    )
    assert notes == SIGNALS
    assert len(status.timeline) == 200
    assert [e.seq for e in status.timeline] == seqs[-200:]
    assert status.timeline[-1].type == "closed"


async def test_signals_piled_up_during_a_worker_outage_are_all_taken_when_a_worker_returns(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """The returning worker gets every piled-up signal in one workflow task; the handlers must be cheap
    enough for it to finish well inside the SDK's 2 s deadlock limit, or the case would retry it forever."""
    piled = 2_000
    policy = round_the_clock_policy()
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        before = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await quiet(handle)
    await asyncio.wait_for(send_notes(dev_env.client, handle.id, range(piled)), 60)
    async with case_worker(dev_env, pool, task_queue, policy):
        await notes_stored(pool, handle.id, piled, timeout=60)
        status = await settled(handle, pool)

    assert status.phase is Phase.ENGAGED
    assert status.timeline[-1].type == "note"
    assert status.escalation_due_at == before.escalation_due_at
    assert [m.due_at for m in status.milestones] == [m.due_at for m in before.milestones]
    history = [e async for e in handle.fetch_history_events()]
    signalled = [e for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED]
    assert len(signalled) == piled
    # Every signal was in history before the returning worker's first task: it took them all at once.
    first_task = next(
        e
        for e in history
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and e.event_id > signalled[0].event_id
    )
    assert signalled[-1].event_id < first_task.event_id
    assert not [e for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
    # The only timeout allowed: the task first offered to the stopped worker's sticky queue.
    timeouts = [
        e.workflow_task_timed_out_event_attributes.timeout_type
        for e in history
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT
    ]
    assert set(timeouts) <= {TimeoutType.TIMEOUT_TYPE_SCHEDULE_TO_START}


async def test_a_pile_of_long_notes_bigger_than_one_payload_is_stored(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """250 notes of the longest allowed text make 2.5 MB, over Temporal's 2 MB payload limit: the case
    writes them out in parts rather than failing its workflow task on every retry."""
    piled, text = 250, "x" * 10_000
    policy = round_the_clock_policy()
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await quiet(handle)
    await asyncio.wait_for(send_notes(dev_env.client, handle.id, range(piled), text), 60)
    async with case_worker(dev_env, pool, task_queue, policy):
        await notes_stored(pool, handle.id, piled, timeout=60)
        await settled(handle, pool)

    lengths = await pool.fetch(
        "SELECT length(detail) AS n FROM case_events WHERE workflow_id = $1 AND type = 'note'", handle.id
    )
    assert [r["n"] for r in lengths] == [10_000] * piled
    history = [e async for e in handle.fetch_history_events()]
    assert not [e for e in history if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED]
