"""Escalations wait for their owner's acknowledgement: told again every `ack_within`, `repeat` times, then
the next level raised early; an acknowledgement stops all of it."""

from __future__ import annotations

from datetime import time, timedelta

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from stack.cases import signal_action, update_action
from tests.cases import advance_to, case_worker, rows, settled, status_when, ticket, until, visible
from tests.test_visibility import WAIT, seconds_policy
from workflows import rules
from workflows.models import CaseStatus, EventType, Phase
from workflows.policy import EscalationLevel

TUESDAY = 1
MINUTE = timedelta(minutes=1)


def offsets(status: CaseStatus, type_: EventType) -> list[timedelta]:
    """When each entry of `type_` happened, counted from the engagement, to the second (a timer fires a
    few real milliseconds after its instant)."""
    assert status.engaged_at is not None
    return [to_second(e.at - status.engaged_at) for e in status.timeline if e.type == type_]


def to_second(d: timedelta) -> timedelta:
    return timedelta(seconds=int(d.total_seconds()))


async def test_unacknowledged_tech_lead_is_told_again_twice_then_the_manager_is_raised(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await time_env.sleep(timedelta(minutes=61))
        raised = await status_when(handle, lambda s: s.escalated)
        assert raised.awaiting_acknowledgement[0].owner == "tech-lead@support.example"
        await time_env.sleep(timedelta(hours=1, minutes=30))
        status = await status_when(handle, lambda s: len(s.escalations) == 2)
        status = await settled(handle, pool)

    assert offsets(status, EventType.ESCALATION_REPEATED) == [75 * MINUTE, 90 * MINUTE]
    tech_lead, manager = status.escalations
    assert tech_lead.repeats == 2 and tech_lead.acknowledged_at is None
    assert status.engaged_at is not None
    assert (
        to_second(tech_lead.raised_at - status.engaged_at),
        to_second(manager.raised_at - status.engaged_at),
    ) == (
        60 * MINUTE,
        105 * MINUTE,
    )
    assert manager.level == "engineering_manager"
    assert [e.detail for e in status.timeline if e.type == EventType.ESCALATED][1].endswith(
        "tech_lead not acknowledged within 3 x 15m"
    )
    told_again = [
        n for n in await rows(pool, "notifications", handle.id) if n["kind"] == "escalation_repeated"
    ]
    assert sorted((n["role"], n["channel"]) for n in told_again) == [
        ("tech_lead", "email"),
        ("tech_lead", "email"),
        ("tech_lead", "page"),
        ("tech_lead", "page"),
    ]
    assert [t["level"] for t in await rows(pool, "escalations", handle.id)] == [
        "tech_lead",
        "engineering_manager",
    ]


async def test_acknowledged_after_the_first_reminder_nothing_more_happens(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await time_env.sleep(timedelta(minutes=80))
        await status_when(handle, lambda s: bool(s.escalations) and s.escalations[0].repeats == 1)
        await signal_action(
            time_env.client,
            ticket_id,
            "escalation_acknowledged",
            {"level": "tech_lead", "by": "ana", "note": "on the bridge"},
        )
        acked = await status_when(handle, lambda s: not s.awaiting_acknowledgement)
        await time_env.sleep(timedelta(hours=2))
        status = await settled(handle, pool)

    assert offsets(status, EventType.ESCALATION_REPEATED) == [75 * MINUTE]
    assert [e.level for e in status.escalations] == ["tech_lead"]
    assert status.escalations[0].acknowledged_by == "ana"
    assert acked.engaged_at is not None and acked.escalation_due_at == acked.engaged_at + timedelta(hours=4)
    [entry] = [e for e in status.timeline if e.type == EventType.ESCALATION_ACKNOWLEDGED]
    assert (entry.actor, entry.detail, entry.data["note"]) == (
        "ana",
        "tech_lead acknowledged by ana",
        "on the bridge",
    )


async def test_acknowledging_a_level_not_raised_is_refused_naming_what_is(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    await advance_to(time_env, TUESDAY, time(10, 0))
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(
            time_env.client, ticket_id, "escalation_acknowledged", {"level": "tech_lead", "by": "ana"}
        )
        status = await status_when(handle, lambda s: s.timeline[-1].type == EventType.REJECTED)

    assert "no tech_lead escalation is raised in this engagement (raised: none)" in status.timeline[-1].detail
    with pytest.raises(rules.Refused, match="by: Field required"):
        rules.parse_action("escalation_acknowledged", {"level": "tech_lead"})


async def test_the_web_ui_filter_shows_what_waits_for_an_acknowledgement(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    policy = seconds_policy(escalate_after=timedelta(seconds=1))
    policy.escalations[0] = policy.escalations[0].model_copy(update={"ack_within": timedelta(hours=1)})
    async with case_worker(dev_env, pool, task_queue, policy) as cases:
        try:
            handle = await cases.open(ticket(ticket_id, "P1"))
            waiting = await status_when(handle, lambda s: s.escalated, timeout=WAIT)
            assert [e.level for e in waiting.awaiting_acknowledgement] == ["tech_lead"]
            await until(
                lambda: visible(dev_env.client, handle.id, "CaseEscalationUnacknowledged > 0"),
                "listed as unacknowledged",
                timeout=WAIT,
            )
            answer = await update_action(
                dev_env.client, ticket_id, "escalation_acknowledged", {"level": "tech_lead", "by": "ana"}
            )
            assert answer.awaiting_acknowledgement == [] and answer.escalations[0].acknowledged_by == "ana"
            await until(
                lambda: visible(dev_env.client, handle.id, "CaseEscalationUnacknowledged = 0"),
                "listed as acknowledged",
                timeout=WAIT,
            )
            with pytest.raises(rules.Refused, match="tech_lead was already acknowledged by ana"):
                await update_action(
                    dev_env.client, ticket_id, "escalation_acknowledged", {"level": "tech_lead", "by": "ben"}
                )
        finally:
            await cases.terminate_running()


def test_repeats_without_an_acknowledgement_deadline_are_refused_in_the_policy() -> None:
    with pytest.raises(ValidationError, match="repeat needs ack_within"):
        EscalationLevel(name="tech_lead", after=timedelta(hours=1), repeat=2)
