"""SLA events: every clock's start, pause, resume, retarget, fulfilment and breach, in the timeline and the
sla_events table; the figures derived from them are the case's explained due instants."""

from __future__ import annotations

from datetime import time, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from console.render import explain, from_events
from stack.cases import signal_action
from tests.cases import advance_to, case_worker, settled, status_when, ticket
from workflows.models import ESCALATION_CLOCK, CaseStatus, DueExplanation, Phase, SlaClockEvent, SlaEventKind
from workflows.sla import ClockFigures, figures

TUESDAY = 1


async def stored_events(pool: asyncpg.Pool, status: CaseStatus) -> list[SlaClockEvent]:
    rows = await pool.fetch(
        "SELECT * FROM sla_events WHERE workflow_id = $1 AND life = $2 ORDER BY seq, clock",
        status.workflow_id,
        status.life,
    )
    return [SlaClockEvent.model_validate(dict(r) | {"paused": r["paused"]}) for r in rows]


def explained(e: DueExplanation) -> tuple[object, ...]:
    return (e.starts_at, e.target, e.paused, e.due_at)


def derived(f: ClockFigures) -> tuple[object, ...]:
    return (f.starts_at, f.target, f.paused, f.due_at)


async def test_the_events_of_a_case_paused_twice_raised_and_reopened_give_its_explained_figures(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))

    async def act(action: str, payload: dict[str, str], then: timedelta) -> None:
        await signal_action(time_env.client, ticket_id, action, payload)
        await time_env.sleep(then)

    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await act("customer_contacted", {"channel": "email"}, timedelta(minutes=20))
        await act("waiting_on_customer", {"note": "need logs"}, timedelta(hours=1))
        await act("customer_replied", {}, timedelta(minutes=10))
        await act("waiting_on_customer", {"note": "need a trace"}, timedelta(hours=2))
        await act("customer_replied", {}, timedelta(minutes=10))
        await act("change_priority", {"priority": "P2", "reason": "more users"}, timedelta(minutes=10))
        await act("resolved", {"summary": "config fixed"}, timedelta(0))
        await status_when(handle, lambda s: s.follow_up_sent_at is not None)
        await act("customer_rejected", {"note": "still slow"}, timedelta(minutes=5))
        status = await status_when(handle, lambda s: s.engagement == 2)
        status = await settled(handle, pool)

    stored = await stored_events(pool, status)
    kinds = [(e.clock, e.event) for e in stored]
    assert kinds.count(("troubleshooting", SlaEventKind.PAUSE)) == 2
    assert kinds.count(("troubleshooting", SlaEventKind.RESUME)) == 2
    assert ("first_response", SlaEventKind.FULFIL) in kinds
    assert ("troubleshooting", SlaEventKind.RETARGET) in kinds
    starts = [e for e in stored if e.clock == ESCALATION_CLOCK and e.event is SlaEventKind.START]
    assert [e.engagement for e in starts] == [1, 2]

    from_table = figures(stored)
    for ms in status.milestones:
        assert ms.explanation is not None
        assert derived(from_table[ms.name.value]) == explained(ms.explanation), ms.name
    assert status.escalation_explanation is not None
    assert derived(from_table[ESCALATION_CLOCK]) == explained(status.escalation_explanation)
    assert abs(from_table["troubleshooting"].paused - timedelta(hours=3)) < timedelta(seconds=1)
    assert from_table == from_events(status)
    assert "paused   +3h" in explain(status)
