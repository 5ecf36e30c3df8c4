"""Resolution and closure: a system-sent follow-up, then confirmation, rejection or no answer."""

from __future__ import annotations

from datetime import time, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from stack.cases import signal_action
from tests.cases import advance_to, case_worker, rows, settled, status_when, ticket
from workflows.models import CloseReason, Phase

WEDNESDAY = 2


async def test_follow_up_then_confirmation_closes_the_case(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, WEDNESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P2"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(time_env.client, ticket_id, "customer_contacted", {"channel": "email"})
        await signal_action(time_env.client, ticket_id, "milestone_verified", {"milestone": "data_verified"})
        await signal_action(
            time_env.client, ticket_id, "resolved", {"summary": "config fixed", "by": "alice"}
        )
        waiting = await status_when(handle, lambda s: s.follow_up_sent_at is not None)
        assert waiting.phase is Phase.AWAITING_CONFIRMATION
        await signal_action(time_env.client, ticket_id, "customer_confirmed", {"note": "works now"})
        outcome = await handle.result()
        status = await settled(handle, pool)

    assert outcome.close_reason is CloseReason.CONFIRMED
    assert outcome.resolved_at is not None and outcome.time_to_resolution is not None
    assert status.phase is Phase.CLOSED and status.closed_at is not None
    types = [e.type for e in status.timeline]
    assert types.index("follow_up_sent") < types.index("customer_confirmed") < types.index("closed")
    kinds = [n["kind"] for n in await rows(pool, "notifications", handle.id) if n["role"] == "customer"]
    assert "follow_up" in kinds and kinds[-1] == "case_closed"
    case = (await rows(pool, "cases", handle.id))[0]
    assert (case["phase"], case["close_reason"]) == ("closed", "confirmed")
    events = await rows(pool, "case_events", handle.id)
    assert [e["seq"] for e in events] == list(range(1, len(status.timeline) + 1))


async def test_rejection_reopens_and_rearms_the_escalation(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, WEDNESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P2"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await time_env.sleep(timedelta(minutes=70))
        await status_when(handle, lambda s: s.escalated)
        await signal_action(time_env.client, ticket_id, "resolved", {"summary": "cache flushed"})
        await status_when(handle, lambda s: s.follow_up_sent_at is not None)
        await signal_action(time_env.client, ticket_id, "customer_rejected", {"note": "still broken"})
        reopened = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        assert reopened.engagement == 2 and reopened.resolved_at is None
        assert reopened.engaged_at is not None
        assert reopened.escalation_due_at == reopened.engaged_at + timedelta(minutes=60)

        await time_env.sleep(timedelta(minutes=61))
        status = await status_when(handle, lambda s: len(s.escalations) == 2)
        status = await settled(handle, pool)

    assert [(e.level, e.engagement) for e in status.escalations] == [("tech_lead", 1), ("tech_lead", 2)]
    tickets = await rows(pool, "escalations", handle.id)
    assert sorted(t["engagement"] for t in tickets) == [1, 2]
    assert "customer_rejected" in [e.type for e in status.timeline]
    assert any(n["kind"] == "case_reopened" for n in await rows(pool, "notifications", handle.id))


async def test_no_answer_gets_one_reminder_then_closes_as_no_response(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, WEDNESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(time_env.client, ticket_id, "resolved", {"summary": "upgraded the driver"})
        waiting = await status_when(handle, lambda s: s.follow_up_sent_at is not None)
        outcome = await handle.result()
        status = await settled(handle, pool)

    assert outcome.close_reason is CloseReason.NO_RESPONSE
    # Resolved Wednesday 10:00: reminder after 3 business days (Monday), window closes after 5 (Wednesday).
    assert waiting.reminder_due_at is not None and waiting.reminder_due_at.weekday() == 0
    assert waiting.confirmation_due_at is not None and waiting.confirmation_due_at.weekday() == WEDNESDAY
    assert (waiting.confirmation_due_at - waiting.follow_up_sent_at).days == 7  # type: ignore[operator]
    assert status.closed_at is not None
    assert timedelta(0) <= status.closed_at - waiting.confirmation_due_at < timedelta(seconds=1)
    reminders = [n for n in await rows(pool, "notifications", handle.id) if n["kind"] == "reminder"]
    assert len(reminders) == 1
