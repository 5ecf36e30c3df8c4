"""Triage: P1 around the clock, P2-P4 on business hours, queued to the next opening."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from stack.cases import signal_action
from tests.cases import advance_to, case_worker, default_policy, rows, settled, status_when, ticket
from workflows.models import Phase

SUNDAY, FRIDAY, MONDAY = 6, 4, 0


async def test_p1_at_3am_sunday_is_engaged_at_once_and_called(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    opened = await advance_to(time_env, SUNDAY, time(3, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        status = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        status = await settled(handle, pool)

    assert status.queued_until is None
    assert status.engaged_at is not None and abs(status.engaged_at - opened) < timedelta(seconds=5)
    assert status.assignee == "oncall@support.example"
    sent = await rows(pool, "notifications", handle.id)
    channels = {(n["channel"], n["role"], n["recipient"]) for n in sent}
    assert ("call", "customer", "+1 555 0100") in channels
    assert ("email", "customer", "ops@acme.example") in channels
    assert ("email", "tam", "tam@support.example") in channels
    case = (await rows(pool, "cases", handle.id))[0]
    assert case["phase"] == "engaged" and case["priority"] == "P1"


async def test_a_p1_opened_a_little_ahead_of_the_server_is_engaged_at_its_arrival(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """A sender's clock two minutes fast: the ticket is accepted, and not queued until its own opening."""
    now = await advance_to(time_env, SUNDAY, time(3, 0))
    ahead = now.replace(microsecond=0) + timedelta(minutes=2)
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1", opened_at=ahead))
        status = await status_when(handle, lambda s: s.phase is not Phase.TRIAGE)

    assert status.phase is Phase.ENGAGED and status.queued_until is None
    assert status.ticket.opened_at == ahead
    assert status.opened_at < ahead and status.engaged_at == status.opened_at
    assert "queued" not in [e.type for e in status.timeline]


async def test_p3_at_6pm_friday_is_queued_until_monday_opening(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    friday = await advance_to(time_env, FRIDAY, time(18, 0))
    monday_nine = datetime.combine(friday.date() + timedelta(days=3), time(9, 0), tzinfo=UTC)
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        queued = await status_when(handle, lambda s: s.phase is Phase.QUEUED)
        assert queued.queued_until == monday_nine
        assert queued.engaged_at is None
        queued = await settled(handle, pool)
        assert [n["channel"] for n in await rows(pool, "notifications", handle.id)] == ["email"]

        await time_env.sleep(monday_nine - await time_env.get_current_time() + timedelta(minutes=1))
        engaged = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        engaged = await settled(handle, pool)

    assert engaged.engaged_at == monday_nine
    lifecycle = [e.type for e in engaged.timeline if e.type != "sla_clock"]
    assert lifecycle[:4] == ["opened", "assigned", "queued", "engaged"]
    kinds = sorted(n["kind"] for n in await rows(pool, "notifications", handle.id))
    assert kinds == ["case_opened", "case_queued"]
    case = (await rows(pool, "cases", handle.id))[0]
    assert case["engaged_at"] == monday_nine and case["phase"] == "engaged"


async def test_a_holiday_moves_the_opening(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    friday = await advance_to(time_env, FRIDAY, time(18, 0))
    monday: date = friday.date() + timedelta(days=3)
    policy = default_policy()
    policy.calendars["business"] = policy.calendars["business"].model_copy(update={"holidays": [monday]})
    async with case_worker(time_env, pool, task_queue, policy) as cases:
        handle = await cases.open(ticket(ticket_id, "P4"))
        await status_when(handle, lambda s: s.phase is Phase.QUEUED)
        queued = await settled(handle, pool)

    tuesday_nine = datetime.combine(monday + timedelta(days=1), time(9, 0), tzinfo=UTC)
    assert queued.queued_until == tuesday_nine
    case = (await rows(pool, "cases", handle.id))[0]
    assert (case["phase"], case["engaged_at"]) == ("queued", None)
    [note] = await rows(pool, "notifications", handle.id)
    assert note["kind"] == "case_queued" and tuesday_nine.strftime("%Y-%m-%d 09:00") in note["body"]


async def test_an_action_sent_right_after_opening_waits_for_triage(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await signal_action(time_env.client, ticket_id, "customer_contacted", {"channel": "call"})
        status = await status_when(
            handle, lambda s: s.milestones != [] and s.milestones[0].state.value == "met"
        )
    assert "rejected" not in [e.type for e in status.timeline]
