"""SLA clock arithmetic: pure functions from a case and its policy to due instants.

Nothing here touches Temporal, so the workflow can call it deterministically and tests can run it in
microseconds. Clocks start at the ticket's `opened_at`; the escalation clock at the current engagement.
Paused time is excluded from the resolution clocks (everything but first response).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from workflows import formats
from workflows.calendar import AlwaysOpen, BusinessCalendar
from workflows.models import (
    CaseStatus,
    ClosedDay,
    CycleState,
    DueExplanation,
    Escalation,
    Milestone,
    MilestoneState,
    Pause,
    Phase,
    Priority,
)
from workflows.policy import ClockKind, EscalationLevel, Policy

Clock = BusinessCalendar | AlwaysOpen

PAUSE_EXEMPT = frozenset({Milestone.FIRST_RESPONSE})


class DueKind(StrEnum):
    ENGAGE = "engage"
    WARN = "warn"
    BREACH = "breach"
    ESCALATE = "escalate"
    REPEAT_ESCALATION = "repeat_escalation"
    UPDATE_WARN = "update_warn"
    UPDATE_BREACH = "update_breach"
    PAUSE_REMINDER = "pause_reminder"
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
            DueKind.REPEAT_ESCALATION: f"Tell {self.subject} again: not acknowledged",
            DueKind.UPDATE_WARN: f"Warn assignee: {self.subject} cycle at 75%",
            DueKind.UPDATE_BREACH: f"Recurring target: {self.subject}",
            DueKind.PAUSE_REMINDER: "Remind the customer we are waiting",
            DueKind.REMINDER: "Confirmation reminder",
            DueKind.CONFIRMATION_WINDOW: "Confirmation window ends",
        }[self.kind]
        return f"{what} due {formats.instant(self.at)}"


@dataclass(frozen=True)
class CaseClocks:
    """The clocks a case runs on: its priority's clock and its customer's business calendar."""

    priority: Clock
    calendar: BusinessCalendar

    def describe(self) -> str:
        if isinstance(self.priority, AlwaysOpen):
            return "24x7"
        return f"business hours of calendar {self.calendar.name!r} ({self.calendar.timezone})"


def clocks_for(policy: Policy, priority: Priority, calendar_name: str | None) -> CaseClocks:
    name = calendar_name or policy.default_calendar
    calendar = BusinessCalendar(policy.calendar_spec(name), name=name)
    if policy.for_priority(priority).clock is ClockKind.ALWAYS:
        return CaseClocks(priority=AlwaysOpen(), calendar=calendar)
    return CaseClocks(priority=calendar, calendar=calendar)


def engagement_start(clocks: CaseClocks, opened_at: datetime) -> datetime:
    """P1 engages at once; business-time priorities at opening, or at the next opening after it."""
    return clocks.priority.next_open(opened_at)


def paused_since(
    case: CaseStatus, clock: Clock, start: datetime, now: datetime
) -> tuple[timedelta, list[Pause]]:
    """Paused time on `clock` after `start` (an open pause counts up to `now`), and the pauses counted."""
    total, counted = timedelta(0), []
    for pause in case.pauses:
        end = pause.ended_at or now
        if end > start:
            total += clock.between(max(pause.started_at, start), end)
            counted.append(pause)
    return total, counted


def due_instant(
    clocks: CaseClocks,
    start: datetime,
    start_label: str,
    target: timedelta,
    paused: timedelta,
    pauses: list[Pause],
) -> DueExplanation:
    """`target` of the priority's clock after `start`, plus the paused time, with how it was reached."""
    due = clocks.priority.add(start, target + paused)
    return DueExplanation(
        due_at=due,
        clock=clocks.describe(),
        starts_at=start,
        start=start_label,
        target=target,
        paused=paused,
        pauses=pauses,
        closed_days=[ClosedDay(day=d, reason=r) for d, r in clocks.priority.closed_days(start, due)],
    )


def refresh_due_instants(case: CaseStatus, policy: Policy, clocks: CaseClocks, now: datetime) -> None:
    """Recompute every due instant shown in `status` from the case's current priority and pauses."""
    prio = policy.for_priority(case.priority)
    resolution_pause = paused_since(case, clocks.priority, case.opened_at, now)
    for ms in case.milestones:
        ms.target = prio.targets[ms.name]
        exempt = ms.name in PAUSE_EXEMPT
        if case.paused and not exempt:
            ms.warn_at = ms.due_at = ms.explanation = None
            continue
        paused, pauses = (timedelta(0), []) if exempt else resolution_pause
        ms.explanation = due_instant(clocks, case.opened_at, "opened_at", ms.target, paused, pauses)
        ms.due_at = ms.explanation.due_at
        ms.warn_at = clocks.priority.add(case.opened_at, ms.target * policy.warn_at + paused)
    case.escalation_due_at = case.escalation_explanation = None
    running = case.engaged_at is not None and case.phase is Phase.ENGAGED and not case.paused
    early = refresh_acknowledgements(case, policy, clocks, now, running)
    if running and case.engaged_at is not None:
        level = next_escalation_level(case, policy)
        if level is not None:
            paused, pauses = paused_since(case, clocks.priority, case.engaged_at, now)
            label = "engagement" if case.engagement <= 1 else f"engagement {case.engagement} (reopened)"
            case.escalation_explanation = due_instant(
                clocks, case.engaged_at, label, level[1], paused, pauses
            )
            if early is not None and early.due_at < case.escalation_explanation.due_at:
                case.escalation_explanation = early
            case.escalation_due_at = case.escalation_explanation.due_at
    if case.paused and case.pauses and case.pauses[-1].reminder_due_at is None:
        pause = case.pauses[-1]
        pause.reminder_due_at = add_business_days(
            clocks.calendar, pause.started_at, policy.pause_reminder_business_days
        )


def refresh_acknowledgements(
    case: CaseStatus, policy: Policy, clocks: CaseClocks, now: datetime, running: bool
) -> DueExplanation | None:
    """When each level still waiting for its acknowledgement is told again, and when the next level is
    raised early for want of one; returns how the early raise of the next level was reached, if any.

    Counted on the priority's clock from the raise, paused time excluded; nothing runs while paused.
    """
    early = None
    ours = [e for e in case.escalations if e.engagement == case.engagement]
    latest = ours[-1] if ours else None
    has_next = next_escalation_level(case, policy) is not None
    for esc in case.escalations:
        esc.repeat_due_at = esc.next_level_due_at = None
        level = _level_named(policy, esc.level)
        if not running or not esc.waiting or esc.engagement != case.engagement or level is None:
            continue
        if level.ack_within is None:
            continue
        if esc.repeats < level.repeat:
            esc.repeat_due_at = _unacknowledged(case, esc, level.ack_within, esc.repeats + 1, clocks, now)
        explanation = due_instant(
            clocks,
            esc.raised_at,
            f"{esc.level} raised, unacknowledged {level.repeat + 1} x {formats.duration(level.ack_within)}",
            level.ack_within * (level.repeat + 1),
            *paused_since(case, clocks.priority, esc.raised_at, now),
        )
        if esc is latest and has_next:
            esc.next_level_due_at = explanation.due_at
            early = explanation
    return early


def _unacknowledged(
    case: CaseStatus, esc: Escalation, ack_within: timedelta, times: int, clocks: CaseClocks, now: datetime
) -> datetime:
    paused, _ = paused_since(case, clocks.priority, esc.raised_at, now)
    return clocks.priority.add(esc.raised_at, ack_within * times + paused)


def _level_named(policy: Policy, name: str) -> EscalationLevel | None:
    return next((lv for lv in policy.escalations if lv.name == name), None)


def next_escalation_level(case: CaseStatus, policy: Policy) -> tuple[str, timedelta] | None:
    raised = {e.level for e in case.escalations if e.engagement == case.engagement}
    for level in policy.levels_for(case.priority):
        if level.name not in raised:
            return level.name, level.after
    return None


def next_due(
    case: CaseStatus, policy: Policy, clocks: CaseClocks, now: datetime, late_warnings: bool = False
) -> Due | None:
    """The earliest pending clock event for the case's phase, from the instants `refresh` computed.

    A warning that falls due while a business-time priority is closed waits for the next opening; a
    milestone already past due goes straight to its breach (unless `late_warnings`, the old behaviour).
    """
    candidates: list[Due] = []
    if case.phase in (Phase.TRIAGE, Phase.QUEUED) and case.queued_until is not None:
        candidates.append(Due(case.queued_until, DueKind.ENGAGE))
    if case.phase is Phase.ENGAGED:
        for ms in case.milestones:
            past_due = ms.due_at is not None and ms.due_at <= now
            if (
                ms.state is MilestoneState.PENDING
                and ms.warn_at is not None
                and (late_warnings or not past_due)
            ):
                candidates.append(Due(clocks.priority.next_open(ms.warn_at), DueKind.WARN, ms.name.value))
            if ms.state in (MilestoneState.PENDING, MilestoneState.WARNED) and ms.due_at is not None:
                candidates.append(Due(ms.due_at, DueKind.BREACH, ms.name.value))
        level = next_escalation_level(case, policy)
        if level is not None and case.escalation_due_at is not None:
            candidates.append(Due(case.escalation_due_at, DueKind.ESCALATE, level[0]))
        pause = case.pauses[-1] if case.paused and case.pauses else None
        if pause is not None and pause.reminder_due_at is not None and pause.reminded_at is None:
            candidates.append(Due(pause.reminder_due_at, DueKind.PAUSE_REMINDER))
        candidates += recurring_dues(case, now)
    if case.phase is Phase.AWAITING_CONFIRMATION and case.follow_up_sent_at is not None:
        if case.reminder_due_at is not None and case.reminder_sent_at is None:
            candidates.append(Due(case.reminder_due_at, DueKind.REMINDER))
        if case.confirmation_due_at is not None:
            candidates.append(Due(case.confirmation_due_at, DueKind.CONFIRMATION_WINDOW))
    return min(candidates, key=lambda d: d.at, default=None)


def recurring_dues(case: CaseStatus, now: datetime) -> list[Due]:
    """The repeats of unacknowledged escalations, and the warning and end of each open cycle."""
    found = [
        Due(e.repeat_due_at, DueKind.REPEAT_ESCALATION, e.level)
        for e in case.escalations
        if e.repeat_due_at is not None
    ]
    for cycle in case.cycles:
        if not cycle.open or cycle.engagement != case.engagement:
            continue
        if cycle.state is CycleState.PENDING and cycle.due_at > now:
            found.append(Due(cycle.warn_at, DueKind.UPDATE_WARN, cycle.milestone.value))
        found.append(Due(cycle.due_at, DueKind.UPDATE_BREACH, cycle.milestone.value))
    return found


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
