"""Recurring milestones: a P1 customer update every 30 minutes, in fixed cycles from the engagement, met
by an update inside the cycle, else breached at its end; a pause stops the cycles, a resume restarts them."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from console.report import cycle_figures, load_facts
from stack.cases import signal_action
from tests.cases import advance_to, case_worker, default_policy, rows, settled, status_when, ticket
from workflows import cycles as cycles_
from workflows.clocks import clocks_for
from workflows.models import ESCALATION_CLOCK, CaseStatus, CycleState, EventType, Milestone, Phase, Priority
from workflows.policy import Policy

TUESDAY = 1
MINUTE = timedelta(minutes=1)


def to_minutes(d: timedelta) -> float:
    return round(d.total_seconds() / 60, 1)


def cycles(status: CaseStatus) -> list[tuple[int, CycleState, float, float]]:
    """(number, state, start, end) of each cycle, in minutes after the engagement."""
    assert status.engaged_at is not None
    return [
        (
            c.number,
            c.state,
            to_minutes(c.starts_at - status.engaged_at),
            to_minutes((c.ended_at or c.due_at) - status.engaged_at),
        )
        for c in status.cycles
    ]


def updates_only() -> Policy:
    """The default policy with P1 milestone targets a day away, so no milestone timer falls on the
    instant an update is sent (the time-skipping server refuses to cancel a timer that fired with it)."""
    policy = default_policy()
    p1 = policy.priorities[Priority.P1]
    day = dict.fromkeys(Milestone, timedelta(days=1))
    return policy.model_copy(
        update={"priorities": policy.priorities | {Priority.P1: p1.model_copy(update={"targets": day})}}
    )


def updates(status: CaseStatus) -> int:
    return sum(e.type == EventType.CUSTOMER_UPDATED for e in status.timeline)


async def update_at(env: WorkflowEnvironment, ticket_id: str, minutes: int, engaged: CaseStatus) -> None:
    """Send a customer update `minutes` after the engagement."""
    assert engaged.engaged_at is not None
    await env.sleep(engaged.engaged_at + minutes * MINUTE - await env.get_current_time())
    await signal_action(env.client, ticket_id, "customer_updated", {"note": f"update at {minutes}m"})


async def test_updates_at_20_45_and_100_minutes_meet_cycles_1_2_and_4_and_cycle_3_breaches_at_90(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue, updates_only()) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        engaged = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        assert engaged.engaged_at is not None
        start = engaged.engaged_at
        for n, minutes in enumerate((20, 45, 100), start=1):
            await update_at(time_env, ticket_id, minutes, engaged)
            await status_when(handle, lambda s, n=n: updates(s) == n)  # type: ignore[misc]
        await time_env.sleep(start + 119 * MINUTE - await time_env.get_current_time())
        status = await settled(handle, pool)

    assert cycles(status)[:4] == [
        (1, CycleState.MET, 0, 20),
        (2, CycleState.MET, 30, 45),
        (3, CycleState.BREACHED, 60, 90),
        (4, CycleState.MET, 90, 100),
    ]
    assert status.sla_breached
    breaches = [e for e in status.timeline if e.type == EventType.UPDATE_BREACHED]
    assert [(e.data["cycle"], to_minutes(e.at - start)) for e in breaches] == [(3, 90)]
    stored = [r["type"] for r in await rows(pool, "case_events", handle.id)]
    assert stored.count("update_breached") == 1 and stored.count("update_warning") == 1
    met = [e.detail for e in status.timeline if e.type == EventType.CUSTOMER_UPDATED]
    assert met[2] == "customer given a progress update: customer_update cycle 4 met"

    cohort, _ = await load_facts(pool, status.opened_at, status.opened_at)
    [facts] = [c for c in cohort if c.workflow_id == handle.id]
    assert (facts.cycles_met, facts.cycles_breached) == (3, 1)
    [figures] = cycle_figures([facts])
    assert (figures.cycles, figures.met, figures.breached, figures.rate) == (4, 3, 1, 0.25)
    # The escalation clock's breach (the tech lead raised at 60 minutes) is read from the SLA events.
    assert facts.breached_in_sla_events == [ESCALATION_CLOCK]


async def test_a_pause_stops_the_cycles_and_a_resume_restarts_them(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        engaged = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await update_at(time_env, ticket_id, 10, engaged)
        await time_env.sleep(timedelta(minutes=30))  # 40m: inside cycle 2
        await signal_action(time_env.client, ticket_id, "waiting_on_customer", {"note": "need logs"})
        await status_when(handle, lambda s: s.paused)
        await time_env.sleep(timedelta(hours=3))
        await signal_action(time_env.client, ticket_id, "customer_replied", {})
        await status_when(handle, lambda s: not s.paused)
        await time_env.sleep(timedelta(minutes=31))
        status = await settled(handle, pool)

    assert cycles(status) == [
        (1, CycleState.MET, 0, 10),
        (2, CycleState.STOPPED, 30, 40),
        (3, CycleState.BREACHED, 220, 250),
        (4, CycleState.PENDING, 250, 280),
    ]


def engaged_case(priority: Priority, engaged_at: datetime) -> CaseStatus:
    return CaseStatus(
        workflow_id="case-T-1",
        ticket=ticket("T-1", priority.value),
        priority=priority,
        phase=Phase.ENGAGED,
        opened_at=engaged_at,
        engaged_at=engaged_at,
        engagement=1,
    )


def test_a_case_ingested_two_hours_late_starts_at_the_cycle_holding_now_not_four_breaches() -> None:
    policy = default_policy()
    now = datetime(2026, 12, 8, 12, 10, tzinfo=UTC)
    case = engaged_case(Priority.P1, now - timedelta(hours=2, minutes=10))
    cycles_.align(case, policy, clocks_for(policy, Priority.P1, None), now)
    [cycle] = case.cycles
    assert (cycle.number, cycle.starts_at, cycle.due_at) == (5, now - 10 * MINUTE, now + 20 * MINUTE)


def test_lowering_the_priority_stops_the_open_cycle_and_raising_it_starts_one() -> None:
    policy = default_policy()
    now = datetime(2026, 12, 8, 10, 0, tzinfo=UTC)
    case = engaged_case(Priority.P1, now)
    cycles_.align(case, policy, clocks_for(policy, Priority.P1, None), now)
    case.priority = Priority.P2
    stopped = cycles_.align(case, policy, clocks_for(policy, Priority.P2, None), now + 10 * MINUTE)
    assert [c.state for c in stopped] == [CycleState.STOPPED] and case.cycles == stopped
    case.priority = Priority.P1
    cycles_.align(case, policy, clocks_for(policy, Priority.P1, None), now + 20 * MINUTE)
    assert [(c.number, c.state, c.starts_at) for c in case.cycles][-1] == (
        2,
        CycleState.PENDING,
        now + 20 * MINUTE,
    )
