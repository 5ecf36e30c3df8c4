"""Recurring milestones: the cycles of a milestone met again every interval, as pure functions.

A cycle is a fixed interval of the priority's clock: the first starts at the engagement, each next one
where the last ended, so updates at 0:20 and 0:45 meet cycles 1 and 2 of a 30-minute milestone and one at
1:40 meets cycle 4, cycle 3 having been breached at 1:30. Cycles run only while the case is engaged and not
paused: a pause, the resolution or a priority without the milestone stops the open cycle (neither met nor
missed), and a resume starts a fresh one at once.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.clocks import CaseClocks
from workflows.models import CaseStatus, Cycle, CycleState, Phase, RecurringMilestone
from workflows.policy import Policy

KEPT_IN_STATE = 50
"""Cycles kept in the case's state; the timeline holds every one."""


def open_cycle(case: CaseStatus, milestone: RecurringMilestone) -> Cycle | None:
    return next((c for c in reversed(case.cycles) if c.milestone is milestone and c.open), None)


def current_cycle(case: CaseStatus, milestone: RecurringMilestone, now: datetime) -> Cycle | None:
    """The open cycle an update at `now` meets: one already started (the next may start later)."""
    cycle = open_cycle(case, milestone)
    return cycle if cycle is not None and cycle.starts_at <= now else None


def align(case: CaseStatus, policy: Policy, clocks: CaseClocks, now: datetime) -> list[Cycle]:
    """Stop the cycles that no longer run and start the next of each that should; returns those stopped."""
    running = case.phase is Phase.ENGAGED and not case.paused and case.engaged_at is not None
    every = policy.for_priority(case.priority).every if running else {}
    stopped = []
    for cycle in case.cycles:
        if cycle.open and (cycle.engagement != case.engagement or cycle.milestone not in every):
            cycle.state, cycle.ended_at = CycleState.STOPPED, now
            stopped.append(cycle)
    for milestone, interval in every.items():
        if open_cycle(case, milestone) is None:
            case.cycles.append(next_cycle(case, milestone, interval, policy.warn_at, clocks, now))
    del case.cycles[:-KEPT_IN_STATE]
    return stopped


def next_cycle(
    case: CaseStatus,
    milestone: RecurringMilestone,
    interval: timedelta,
    warn_at: float,
    clocks: CaseClocks,
    now: datetime,
) -> Cycle:
    """The cycle after the engagement's last: where that one ended, at once after a stop, or at the
    engagement for the first. Intervals wholly in the past (a case ingested late) are skipped."""
    assert case.engaged_at is not None
    last = next(
        (c for c in reversed(case.cycles) if c.milestone is milestone and c.engagement == case.engagement),
        None,
    )
    number = last.number + 1 if last else 1
    if last is None:
        start = case.engaged_at
    elif last.state is CycleState.STOPPED:
        start = now
    else:
        start = last.due_at
    clock = clocks.priority
    while clock.add(start, interval) <= now:
        start, number = clock.add(start, interval), number + 1
    return Cycle(
        milestone=milestone,
        number=number,
        engagement=case.engagement,
        starts_at=start,
        warn_at=clock.add(start, interval * warn_at),
        due_at=clock.add(start, interval),
    )
