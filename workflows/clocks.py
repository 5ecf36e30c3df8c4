"""SLA clock arithmetic: pure functions from a case and its policy to due instants.

Nothing here touches Temporal, so the workflow can call it deterministically and tests can run it in
microseconds. Clocks start at the ticket's `opened_at`; the escalation clock at the current engagement.
Paused time is excluded from the resolution clocks (everything but first response).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workflows.calendar import AlwaysOpen, BusinessCalendar
from workflows.models import CaseStatus, Milestone, MilestoneState, Phase, Priority
from workflows.policy import ClockKind, Policy

Clock = BusinessCalendar | AlwaysOpen

PAUSE_EXEMPT = frozenset({Milestone.FIRST_RESPONSE})


class DueKind(StrEnum):
    ENGAGE = "engage"
    WARN = "warn"
    BREACH = "breach"
    ESCALATE = "escalate"
    REMINDER = "reminder"
    CONFIRMATION_WINDOW = "confirmation_window"


@dataclass(frozen=True)
class Due:
    """The next thing the case's clocks will do, and when."""

    at: datetime
    kind: DueKind
    subject: str = ""

    def summary(self) -> str:
        what = {
            DueKind.ENGAGE: "Engage at business opening",
            DueKind.WARN: f"Warn assignee: {self.subject} at 75%",
            DueKind.BREACH: f"SLA target: {self.subject}",
            DueKind.ESCALATE: f"Escalation: {self.subject}",
            DueKind.REMINDER: "Confirmation reminder",
            DueKind.CONFIRMATION_WINDOW: "Confirmation window ends",
        }[self.kind]
        return f"{what} due {self.at:%Y-%m-%d %H:%M} UTC"


@dataclass(frozen=True)
class CaseClocks:
    """The clocks a case runs on: its priority's clock and its customer's business calendar."""

    priority: Clock
    calendar: BusinessCalendar


def clocks_for(policy: Policy, priority: Priority, calendar_name: str | None) -> CaseClocks:
    calendar = BusinessCalendar(policy.calendar_spec(calendar_name))
    if policy.for_priority(priority).clock is ClockKind.ALWAYS:
        return CaseClocks(priority=AlwaysOpen(), calendar=calendar)
    return CaseClocks(priority=calendar, calendar=calendar)


def engagement_start(clocks: CaseClocks, opened_at: datetime) -> datetime:
    """P1 engages at once; business-time priorities at opening, or at the next opening after it."""
    return clocks.priority.next_open(opened_at)


def paused_since(case: CaseStatus, clock: Clock, start: datetime, now: datetime) -> timedelta:
    """Paused time on `clock` after `start`, counting an open pause up to `now`."""
    total = timedelta(0)
    for pause in case.pauses:
        end = pause.ended_at or now
        if end > start:
            total += clock.between(max(pause.started_at, start), end)
    return total


def refresh_due_instants(case: CaseStatus, policy: Policy, clocks: CaseClocks, now: datetime) -> None:
    """Recompute every due instant shown in `status` from the case's current priority and pauses."""
    prio = policy.for_priority(case.priority)
    for ms in case.milestones:
        target = prio.targets[ms.name]
        ms.target = target
        paused = (
            timedelta(0)
            if ms.name in PAUSE_EXEMPT
            else paused_since(case, clocks.priority, case.opened_at, now)
        )
        suspended = case.paused and ms.name not in PAUSE_EXEMPT
        ms.warn_at = (
            None if suspended else clocks.priority.add(case.opened_at, target * policy.warn_at + paused)
        )
        ms.due_at = None if suspended else clocks.priority.add(case.opened_at, target + paused)
    case.escalation_due_at = None
    if case.engaged_at is not None and case.phase is Phase.ENGAGED and not case.paused:
        level = next_escalation_level(case, policy)
        if level is not None:
            paused = paused_since(case, clocks.priority, case.engaged_at, now)
            case.escalation_due_at = clocks.priority.add(case.engaged_at, level[1] + paused)


def next_escalation_level(case: CaseStatus, policy: Policy) -> tuple[str, timedelta] | None:
    raised = {e.level for e in case.escalations if e.engagement == case.engagement}
    for level in policy.levels_for(case.priority):
        if level.name not in raised:
            return level.name, level.after
    return None


def next_due(case: CaseStatus, policy: Policy) -> Due | None:
    """The earliest pending clock event for the case's phase, from the instants `refresh` computed."""
    candidates: list[Due] = []
    if case.phase in (Phase.TRIAGE, Phase.QUEUED) and case.queued_until is not None:
        candidates.append(Due(case.queued_until, DueKind.ENGAGE))
    if case.phase is Phase.ENGAGED:
        for ms in case.milestones:
            if ms.state is MilestoneState.PENDING and ms.warn_at is not None:
                candidates.append(Due(ms.warn_at, DueKind.WARN, ms.name.value))
            if ms.state in (MilestoneState.PENDING, MilestoneState.WARNED) and ms.due_at is not None:
                candidates.append(Due(ms.due_at, DueKind.BREACH, ms.name.value))
        level = next_escalation_level(case, policy)
        if level is not None and case.escalation_due_at is not None:
            candidates.append(Due(case.escalation_due_at, DueKind.ESCALATE, level[0]))
    if case.phase is Phase.AWAITING_CONFIRMATION and case.follow_up_sent_at is not None:
        if case.reminder_due_at is not None and case.reminder_sent_at is None:
            candidates.append(Due(case.reminder_due_at, DueKind.REMINDER))
        if case.confirmation_due_at is not None:
            candidates.append(Due(case.confirmation_due_at, DueKind.CONFIRMATION_WINDOW))
    return min(candidates, key=lambda d: d.at, default=None)


def add_business_days(calendar: BusinessCalendar, start: datetime, days: int) -> datetime:
    """The same local time of day on the `days`-th business day after `start`'s day.

    Moved to the next opening if that instant is closed, so a reminder is never due at night.
    """
    local = start.astimezone(calendar.zone)
    day, counted = local.date(), 0
    while counted < days:
        day += timedelta(days=1)
        counted += calendar.is_business_day(day)
    same_time = datetime.combine(day, local.timetz().replace(tzinfo=None), tzinfo=calendar.zone)
    return calendar.next_open(same_time)


def follow_up_deadlines(policy: Policy, clocks: CaseClocks, sent_at: datetime) -> tuple[datetime, datetime]:
    """When to remind the customer, and when the confirmation window closes."""
    fu = policy.follow_up
    if fu.window is not None:
        reminder_after = fu.reminder_after if fu.reminder_after is not None else fu.window * 0.6
        return sent_at + reminder_after, sent_at + fu.window
    return (
        add_business_days(clocks.calendar, sent_at, fu.reminder_after_business_days),
        add_business_days(clocks.calendar, sent_at, fu.window_business_days),
    )
