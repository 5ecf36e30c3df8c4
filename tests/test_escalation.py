"""The durable Tech Lead escalation: once per engagement, 60 minutes after engagement if unresolved."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import asyncpg
from temporalio.testing import WorkflowEnvironment

from activities.notifications import Message, TransientFailure
from stack.cases import signal_action, update_action
from tests.cases import advance_to, case_worker, rows, settled, status_when, ticket
from workflows.models import Phase

TUESDAY = 1


async def test_unresolved_case_gets_exactly_one_tech_lead_ticket_at_60_minutes(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P2"))
        engaged = await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        assert engaged.engaged_at is not None
        assert engaged.escalation_due_at == engaged.engaged_at + timedelta(minutes=60)

        await time_env.sleep(timedelta(minutes=59))
        early = await settled(handle, pool)
        assert early.escalations == [] and not early.escalated
        assert await rows(pool, "escalations", handle.id) == []

        await time_env.sleep(timedelta(minutes=2))
        status = await status_when(handle, lambda s: s.escalated)
        await time_env.sleep(timedelta(hours=3))
        status = await settled(handle, pool)

    tickets = await rows(pool, "escalations", handle.id)
    assert [(t["level"], t["engagement"], t["assignee"]) for t in tickets] == [
        ("tech_lead", 1, "tech-lead@support.example")
    ]
    waited = tickets[0]["raised_at"] - engaged.engaged_at
    assert timedelta(minutes=60) <= waited < timedelta(minutes=60, seconds=1)
    assert [e.level for e in status.escalations] == ["tech_lead"]
    assert status.on_standup and status.escalated
    case = (await rows(pool, "cases", handle.id))[0]
    assert case["escalated"] and case["on_standup"]
    told = {
        (n["role"], n["recipient"])
        for n in await rows(pool, "notifications", handle.id)
        if n["kind"] == "escalation"
    }
    assert told == {
        ("tech_lead", "tech-lead@support.example"),
        ("tam", "tam@support.example"),
        ("team", "#support-standup"),
    }


async def test_case_resolved_within_the_hour_gets_no_tech_lead_ticket(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await time_env.sleep(timedelta(minutes=30))
        await signal_action(time_env.client, ticket_id, "resolved", {"summary": "patched", "by": "alice"})
        await status_when(handle, lambda s: s.phase is Phase.AWAITING_CONFIRMATION)
        await time_env.sleep(timedelta(hours=2))
        status = await settled(handle, pool)

    assert status.escalations == [] and not status.escalated
    assert await rows(pool, "escalations", handle.id) == []


async def test_case_ingested_two_hours_late_escalates_at_once(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    now = await advance_to(time_env, TUESDAY, time(12, 0))
    opened = now - timedelta(hours=2)
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1", opened_at=opened))
        status = await status_when(handle, lambda s: s.escalated, timeout=10)
        status = await settled(handle, pool)

    assert status.opened_at == opened and status.engaged_at == opened
    [escalation] = status.escalations
    assert escalation.due_at == opened + timedelta(minutes=60)
    assert escalation.raised_at - now < timedelta(minutes=1)
    breached = {ms.name.value for ms in status.milestones if ms.state.value == "breached"}
    assert breached == {"first_response", "data_verified", "troubleshooting"}
    assert status.sla_breached
    assert len(await rows(pool, "escalations", handle.id)) == 1


async def test_queued_case_escalates_60_business_minutes_after_the_opening(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    friday_evening = await advance_to(time_env, 4, time(18, 0))
    monday_nine = datetime.combine(friday_evening.date() + timedelta(days=3), time(9, 0), tzinfo=UTC)
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        await status_when(handle, lambda s: s.phase is Phase.QUEUED)
        await time_env.sleep(monday_nine - friday_evening + timedelta(minutes=61))
        status = await status_when(handle, lambda s: s.escalated)

    assert status.escalations[0].due_at == monday_nine + timedelta(minutes=60)


async def test_a_notification_outage_never_holds_up_the_escalation(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async def down(message: Message) -> None:
        raise TransientFailure("smtp.example: 421 service not available")

    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue, sender=down) as cases:
        handle = await cases.open(ticket(ticket_id, "P2"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await time_env.sleep(timedelta(minutes=61))
        status = await status_when(handle, lambda s: s.escalated)
        await update_action(
            time_env.client, ticket_id, "add_note", {"text": "still answering during the outage"}
        )

    assert [e.level for e in status.escalations] == ["tech_lead"]
    assert len(await rows(pool, "escalations", handle.id)) == 1
    pending = [n for n in await rows(pool, "notifications", handle.id) if n["state"] != "sent"]
    assert pending and all(n["attempts"] >= 1 for n in pending)
