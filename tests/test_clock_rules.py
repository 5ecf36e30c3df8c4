"""Pure clock arithmetic and action rules: no Temporal, microseconds per test."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from console.render import explain, explanation
from tests.cases import default_policy, ticket
from workflows import clocks, rules
from workflows.calendar import CalendarSpec
from workflows.models import (
    CaseStatus,
    DueExplanation,
    Milestone,
    MilestoneState,
    MilestoneStatus,
    Pause,
    Phase,
    Priority,
)

FRIDAY_4PM = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)


def case(priority: str = "P3", opened_at: datetime = FRIDAY_4PM, **changes: object) -> CaseStatus:
    policy = default_policy()
    status = CaseStatus(
        workflow_id="case-T-1",
        ticket=ticket("T-1", priority),
        priority=Priority(priority),
        phase=Phase.ENGAGED,
        opened_at=opened_at,
        engaged_at=opened_at,
        engagement=1,
        milestones=[
            MilestoneStatus(name=m, target=policy.for_priority(Priority(priority)).targets[m])
            for m in Milestone
        ],
    )
    return status.model_copy(update=changes)


def refreshed(status: CaseStatus, now: datetime) -> CaseStatus:
    policy = default_policy()
    c = clocks.clocks_for(policy, status.priority, None)
    clocks.refresh_due_instants(status, policy, c, now)
    return status


def test_p3_due_dates_skip_the_weekend_and_say_so() -> None:
    status = refreshed(case(), FRIDAY_4PM)
    first = status.milestones[0]
    assert first.due_at == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # 1h Friday + 3h Monday
    assert first.explanation is not None
    assert [(d.day, d.reason) for d in first.explanation.closed_days] == [
        (date(2026, 11, 28), "weekend"),
        (date(2026, 11, 29), "weekend"),
    ]
    assert status.escalation_due_at == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    text = explain(status)
    assert "milestone first_response (pending): due Mon 2026-11-30 12:00 UTC" in text
    assert "skipped  Sat 2026-11-28 (weekend), Sun 2026-11-29 (weekend)" in text
    assert "business hours of calendar 'business' (UTC)" in text


def test_an_explanation_counted_in_seconds_reads_to_the_second() -> None:
    """A demo policy's 60 s target from 10:00:00 is due 10:01:00; to the minute it read "10:01 ... 10:01"."""
    due = datetime(2026, 11, 30, 10, 1, 6, tzinfo=UTC)
    pause = Pause(started_at=due - timedelta(seconds=30), ended_at=due - timedelta(seconds=24))
    e = DueExplanation(
        due_at=due,
        clock="24x7",
        starts_at=datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
        start="engagement",
        target=timedelta(seconds=60),
        paused=timedelta(seconds=6),
        pauses=[pause],
    )
    lines = explanation("next escalation", e)
    assert lines[0] == "next escalation: due Mon 2026-11-30 10:01:06 UTC"
    assert lines[2] == "  start    engagement Mon 2026-11-30 10:00:00 UTC"
    assert lines[4] == "  paused   +6s (Mon 2026-11-30 10:00:36 UTC - Mon 2026-11-30 10:00:42 UTC)"
    minutes = e.model_copy(update={"target": timedelta(minutes=60), "paused": timedelta(0), "pauses": []})
    assert explanation("next escalation", minutes)[0] == "next escalation: due Mon 2026-11-30 10:01 UTC"


def test_pauses_extend_resolution_clocks_but_not_first_response() -> None:
    pause = Pause(
        started_at=FRIDAY_4PM + timedelta(minutes=10), ended_at=datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    )
    status = refreshed(case(pauses=[pause]), datetime(2026, 11, 30, 10, 0, tzinfo=UTC))
    first, data, _ = status.milestones
    assert first.due_at == datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    # 50 business minutes paused on Friday plus one hour on Monday.
    assert data.explanation is not None and data.explanation.paused == timedelta(minutes=110)
    assert data.due_at == datetime(2026, 12, 1, 9, 50, tzinfo=UTC)
    assert status.escalation_due_at == datetime(2026, 11, 30, 10, 50, tzinfo=UTC)


def test_an_open_pause_suspends_resolution_clocks_and_schedules_a_reminder() -> None:
    status = refreshed(
        case(paused=True, pauses=[Pause(started_at=FRIDAY_4PM)]), FRIDAY_4PM + timedelta(minutes=1)
    )
    assert status.milestones[0].due_at is not None
    assert status.milestones[1].due_at is None and status.escalation_due_at is None
    assert status.pauses[0].reminder_due_at == datetime(2026, 12, 1, 16, 0, tzinfo=UTC)  # 2 business days
    c = clocks.clocks_for(default_policy(), Priority.P3, None)
    due = clocks.next_due(status, default_policy(), c, FRIDAY_4PM + timedelta(minutes=1))
    assert due is not None and due.kind is clocks.DueKind.WARN


def test_a_warning_due_in_closed_hours_waits_for_the_opening() -> None:
    policy = default_policy(escalations=[])
    c = clocks.clocks_for(policy, Priority.P3, None)
    status = case()
    clocks.refresh_due_instants(status, policy, c, FRIDAY_4PM)
    status.milestones[0].warn_at = datetime(2026, 11, 28, 2, 0, tzinfo=UTC)
    due = clocks.next_due(status, policy, c, FRIDAY_4PM)
    assert due is not None
    assert (due.kind, due.at) == (clocks.DueKind.WARN, datetime(2026, 11, 30, 9, 0, tzinfo=UTC))


@pytest.mark.parametrize(
    ("start", "days", "holidays", "expected"),
    [
        (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), 3, [], datetime(2026, 11, 30, 10, 0, tzinfo=UTC)),
        (datetime(2026, 11, 25, 10, 0, tzinfo=UTC), 5, [], datetime(2026, 12, 2, 10, 0, tzinfo=UTC)),
        (
            datetime(2026, 11, 25, 10, 0, tzinfo=UTC),
            3,
            [date(2026, 11, 26)],
            datetime(2026, 12, 1, 10, 0, tzinfo=UTC),
        ),
        (datetime(2026, 11, 25, 20, 0, tzinfo=UTC), 1, [], datetime(2026, 11, 27, 9, 0, tzinfo=UTC)),
    ],
)
def test_business_days(start: datetime, days: int, holidays: list[date], expected: datetime) -> None:
    policy = default_policy()
    policy.calendars["business"] = policy.calendars["business"].model_copy(update={"holidays": holidays})
    c = clocks.clocks_for(policy, Priority.P3, None)
    assert clocks.add_business_days(c.calendar, start, days) == expected


def test_priority_change_recomputes_from_opened_at() -> None:
    status = case("P3", opened_at=datetime(2026, 11, 24, 9, 0, tzinfo=UTC))
    status.priority = Priority.P1
    status = refreshed(status, datetime(2026, 11, 24, 12, 0, tzinfo=UTC))
    assert [m.due_at for m in status.milestones] == [
        datetime(2026, 11, 24, 9, 15, tzinfo=UTC),
        datetime(2026, 11, 24, 9, 30, tzinfo=UTC),
        datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    ]
    assert status.milestones[0].explanation is not None and status.milestones[0].explanation.clock == "24x7"


@pytest.mark.parametrize(
    ("phase", "name", "payload", "message"),
    [
        (
            Phase.AWAITING_CONFIRMATION,
            "milestone_verified",
            {"milestone": "data_verified"},
            "case T-1 is awaiting_confirmation; milestone_verified is accepted only while engaged",
        ),
        (
            Phase.ENGAGED,
            "milestone_verified",
            {"milestone": "troubleshooting"},
            "verify first_response before troubleshooting",
        ),
        (
            Phase.ENGAGED,
            "milestone_verified",
            {"milestone": "root_cause"},
            "invalid milestone_verified payload: milestone:",
        ),
        (Phase.ENGAGED, "resolved", {}, "invalid resolved payload: summary: Field required"),
        (Phase.ENGAGED, "resolved", {"summary": "x", "extra": 1}, "extra: Extra inputs are not permitted"),
        (Phase.ENGAGED, "customer_replied", {}, "is not waiting on the customer"),
        (Phase.ENGAGED, "change_priority", {"priority": "P3"}, "case T-1: already P3"),
        (
            Phase.QUEUED,
            "customer_confirmed",
            None,
            "customer_confirmed is accepted only while awaiting_confirmation",
        ),
        (Phase.ENGAGED, "escalate_now", {}, "unknown action 'escalate_now'"),
    ],
)
def test_refusals_say_what_is_wrong(phase: Phase, name: str, payload: object, message: str) -> None:
    status = case(phase=phase)
    with pytest.raises(rules.Refused, match=message):
        rules.check(status, rules.parse_action(name, payload))


def test_milestones_in_order_are_accepted() -> None:
    status = case()
    status.milestones[0].state = MilestoneState.MET
    rules.check(status, rules.parse_action("milestone_verified", {"milestone": "data_verified"}))


def test_a_customer_calendar_picks_its_own_hours() -> None:
    """Follow the sun: an Indian customer's P3 runs on Kolkata's hours, not the default UTC calendar."""
    policy = default_policy()
    policy.calendars["apac"] = CalendarSpec(
        timezone="Asia/Kolkata", hours={"mon": ["09:00-18:00"], "fri": ["09:00-18:00"]}
    )
    status = case().model_copy(
        update={
            "ticket": ticket("T-1", "P3").model_copy(
                update={"customer": ticket("T-1").customer.model_copy(update={"calendar": "apac"})}
            )
        }
    )
    c = clocks.clocks_for(policy, Priority.P3, "apac")
    clocks.refresh_due_instants(status, policy, c, FRIDAY_4PM)
    # Friday 16:00 UTC is 21:30 in Kolkata, after closing; Monday opens 09:00 IST = 03:30 UTC.
    assert clocks.engagement_start(c, FRIDAY_4PM) == datetime(2026, 11, 30, 3, 30, tzinfo=UTC)
    assert status.milestones[0].due_at == datetime(2026, 11, 30, 7, 30, tzinfo=UTC)
    assert status.milestones[0].explanation is not None
    assert status.milestones[0].explanation.clock == "business hours of calendar 'apac' (Asia/Kolkata)"


def test_a_milestone_already_past_due_is_breached_without_a_warning() -> None:
    policy = default_policy(escalations=[])
    c = clocks.clocks_for(policy, Priority.P1, None)
    status = case("P1")
    now = FRIDAY_4PM + timedelta(hours=2)
    clocks.refresh_due_instants(status, policy, c, now)
    due = clocks.next_due(status, policy, c, now)
    assert due is not None and (due.kind, due.subject) == (clocks.DueKind.BREACH, "first_response")
    old = clocks.next_due(status, policy, c, now, late_warnings=True)
    assert old is not None and old.kind is clocks.DueKind.WARN
