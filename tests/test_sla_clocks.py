"""SLA clocks on the time-skipping server: pauses, priority changes, warnings held to business hours."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from stack.cases import signal_action
from tests.cases import advance_to, case_worker, default_policy, rows, settled, status_when, ticket
from workflows.calendar import CalendarSpec
from workflows.models import MilestoneState, Phase

TUESDAY, FRIDAY = 1, 4


def about(measured: timedelta, expected: timedelta) -> bool:
    """Equal but for the real milliseconds a test takes between two signals."""
    return abs(measured - expected) < timedelta(seconds=1)


async def test_pausing_three_business_hours_moves_the_escalation_three_business_hours(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    opened = await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        steady = await cases.open(ticket(f"{ticket_id}-steady", "P3"))
        paused = await cases.open(ticket(f"{ticket_id}-paused", "P3"))
        await status_when(paused, lambda s: s.phase is Phase.ENGAGED)
        await time_env.sleep(timedelta(minutes=30))
        await signal_action(
            time_env.client, f"{ticket_id}-paused", "waiting_on_customer", {"note": "need logs"}
        )
        await status_when(paused, lambda s: s.paused)
        await time_env.sleep(timedelta(hours=3))
        await signal_action(
            time_env.client, f"{ticket_id}-paused", "customer_replied", {"note": "logs attached"}
        )
        resumed = await status_when(paused, lambda s: not s.paused)
        assert resumed.escalation_explanation is not None
        assert about(resumed.escalation_explanation.paused, timedelta(hours=3))

        await time_env.sleep(timedelta(hours=2))
        unpaused_case = await status_when(steady, lambda s: s.escalated)
        paused_case = await status_when(paused, lambda s: s.escalated)
        paused_case = await settled(paused, pool)

    assert unpaused_case.escalations[0].due_at - opened < timedelta(minutes=61)
    assert about(paused_case.escalations[0].due_at - unpaused_case.escalations[0].due_at, timedelta(hours=3))
    # First response is not paused; the resolution milestones are.
    first, data, _ = paused_case.milestones
    steady_first, steady_data, _ = unpaused_case.milestones
    assert first.due_at is not None and steady_first.due_at is not None
    assert about(first.due_at - steady_first.due_at, timedelta(0))
    assert data.due_at is not None and steady_data.due_at is not None
    assert about(data.due_at - steady_data.due_at, timedelta(hours=3))
    assert [e.type for e in paused_case.timeline].count("paused") == 1
    stored = [e["type"] for e in await rows(pool, "case_events", paused.id)]
    assert {"paused", "resumed", "escalated"} <= set(stored)


async def test_p3_raised_to_p1_three_hours_in_is_three_hours_into_its_p1_clock(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    opened = await advance_to(time_env, TUESDAY, time(9, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(time_env.client, ticket_id, "customer_contacted", {"channel": "email"})
        await time_env.sleep(timedelta(minutes=50))
        before = await status_when(handle, lambda s: s.milestones[0].state is MilestoneState.MET)
        assert not before.escalated  # the P3 hour is not up yet... but 50 minutes of it are
        await time_env.sleep(timedelta(hours=2, minutes=10))
        # The tech lead took it, so the P1 manager level is not raised early for want of that.
        await signal_action(
            time_env.client, ticket_id, "escalation_acknowledged", {"level": "tech_lead", "by": "ana"}
        )
        await status_when(
            handle, lambda s: bool(s.escalations) and s.escalations[0].acknowledged_at is not None
        )
        await signal_action(
            time_env.client, ticket_id, "change_priority", {"priority": "P1", "reason": "outage"}
        )
        raised = await status_when(handle, lambda s: s.priority.value == "P1" and s.sla_breached)
        raised = await settled(handle, pool)

    first, data, trouble = raised.milestones
    assert first.state is MilestoneState.MET
    opened = raised.opened_at
    assert data.due_at == opened + timedelta(minutes=30) and data.state is MilestoneState.BREACHED
    assert trouble.due_at == opened + timedelta(minutes=60) and trouble.state is MilestoneState.BREACHED
    assert [e.level for e in raised.escalations] == ["tech_lead"]
    assert raised.escalations[0].due_at == opened + timedelta(minutes=60)
    # The P1-only engineering manager level counts from the same start: 4 hours after opening.
    assert raised.escalation_due_at == opened + timedelta(hours=4)
    case = (await rows(pool, "cases", handle.id))[0]
    assert (case["priority"], case["sla_breached"], case["escalated"]) == ("P1", True, True)


async def test_queued_p4_raised_to_p1_is_engaged_at_once(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    opened = await advance_to(time_env, FRIDAY, time(20, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P4"))
        queued = await status_when(handle, lambda s: s.phase is Phase.QUEUED)
        assert queued.queued_until is not None and queued.queued_until.weekday() == 0
        await time_env.sleep(timedelta(minutes=20))
        await signal_action(time_env.client, ticket_id, "change_priority", {"priority": "P1"})
        engaged = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        engaged = await settled(handle, pool)

    opened = engaged.opened_at
    assert engaged.engaged_at == opened and engaged.queued_until is None
    assert engaged.escalation_due_at == opened + timedelta(minutes=60)
    now_ish = opened + timedelta(minutes=20)
    engaged_entry = next(e for e in engaged.timeline if e.type == "engaged")
    assert now_ish <= engaged_entry.at < now_ish + timedelta(minutes=1)
    assert queued.assignee == "support-queue@support.example"
    assert engaged.assignee == "oncall@support.example"
    sent = await rows(pool, "notifications", handle.id)
    assert ("customer_call", "call") in {(n["kind"], n["channel"]) for n in sent}
    assert [n["kind"] for n in sent].count("customer_call") == 1


async def test_a_resolved_case_raised_to_p1_moves_to_on_call_without_calling_the_customer(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """The customer has been asked to confirm the fix; a call about an engagement would be news to them."""
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(time_env.client, ticket_id, "resolved", {"summary": "fixed"})
        await status_when(handle, lambda s: s.follow_up_sent_at is not None)
        await signal_action(time_env.client, ticket_id, "change_priority", {"priority": "P1"})
        raised = await status_when(handle, lambda s: s.priority.value == "P1")
        raised = await settled(handle, pool)

    assert raised.phase is Phase.AWAITING_CONFIRMATION
    assert raised.assignee == "oncall@support.example"
    kinds = {n["kind"] for n in await rows(pool, "notifications", handle.id)}
    assert "follow_up" in kinds and "customer_call" not in kinds and "tam_update" not in kinds


async def test_a_warning_due_at_2am_saturday_is_delivered_at_monday_opening(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """A Friday night shift ends at 02:00 Saturday, exactly when the warning falls due."""
    opened = await advance_to(time_env, FRIDAY, time(23, 0))
    policy = default_policy()
    policy.calendars["business"] = CalendarSpec(
        timezone="UTC",
        hours={day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu")}
        | {"fri": ["09:00-17:00", "20:00-02:00"]},
    )
    monday_nine = datetime.combine(opened.date() + timedelta(days=3), time(9, 0), tzinfo=UTC)
    async with case_worker(time_env, pool, task_queue, policy) as cases:
        handle = await cases.open(ticket(ticket_id, "P3", opened_at=opened.replace(microsecond=0)))
        engaged = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        first = engaged.milestones[0]
        # 75% of 4 business hours from Friday 23:00 is the end of the night shift, Saturday 02:00.
        assert first.warn_at == engaged.opened_at + timedelta(hours=3)
        assert (first.warn_at.weekday(), first.warn_at.hour) == (5, 2)

        await time_env.sleep(timedelta(hours=4))
        saturday = await handle.query("status")
        assert saturday["milestones"][0]["state"] == "pending"
        await time_env.sleep(monday_nine - opened - timedelta(hours=4) + timedelta(minutes=5))
        monday = await status_when(handle, lambda s: s.milestones[0].state is MilestoneState.WARNED)
        monday = await settled(handle, pool)

    assert monday.milestones[0].warned_at is not None
    assert timedelta(0) <= monday.milestones[0].warned_at - monday_nine < timedelta(seconds=1)
    warning = next(e for e in monday.timeline if e.type == "milestone_warning")
    notes = [n for n in await rows(pool, "notifications", handle.id) if n["kind"] == "milestone_warning"]
    assert [(n["seq"], n["role"]) for n in notes] == [(warning.seq, "assignee")]
