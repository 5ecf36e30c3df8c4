"""The simulation's figures, candidate beside baseline (pure: computed from the simulated cases).

The per-case facts are the report's (`starter.py report`), so a figure means the same here as there:
breach rates count a milestone met late as breached, MTTR is opened to resolved with cancelled cases left
out, and an intervention is a Tech Lead ticket or a resolution within 60 minutes of the first engagement.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime

from pydantic import BaseModel

from console.report import (
    EscalationFacts,
    Figures,
    MilestoneFigures,
    Report,
    breached_milestones,
    compute_report,
    intervention_figures,
    milestone_figures,
)
from simulator.outcomes import SimulatedCase
from workflows.models import Priority


class PriorityBreaches(Figures):
    priority: str
    milestones: list[MilestoneFigures]


class LevelDay(Figures):
    day: date
    level: str
    tickets: int


class RunFigures(Figures):
    """One policy's month."""

    policy: str
    report: Report
    breaches: list[PriorityBreaches]
    escalations_by_day: list[LevelDay]
    tech_lead_by_hour: list[int]
    """Tech Lead tickets raised in each hour of the day (0-23), in the case calendar's zone."""
    notifications: dict[str, int]
    open_at_end: int
    failed: dict[str, str]


class ChangedOutcome(BaseModel):
    ticket_id: str
    baseline: str
    candidate: str


class Simulation(Figures):
    tickets: int
    baseline: RunFigures
    candidate: RunFigures
    changed: list[ChangedOutcome]
    seconds: float = 0.0
    """How long the replay took, wall clock."""


def run_figures(
    policy: str, cases: Sequence[SimulatedCase], start: datetime, end: datetime, window_end: datetime
) -> RunFigures:
    """A failed replay is listed, and left out of every figure: it stopped partway, so what it left in
    the books is not what the policy would have made of its ticket.

    The replay ends a case still open at `window_end`, the recorded window's last instant (or a second
    after an action it deferred past it, which only a case engaged in that second has): one engaged
    less than the intervention's `within` before that is undecided, as in a report run at that instant,
    not a miss."""
    failed = {c.ticket_id: c.failure for c in cases if c.failure}
    cases = [c for c in cases if not c.failure]
    facts = [c.facts for c in cases]
    escalations = [
        EscalationFacts(workflow_id=c.ticket_id, level=e.level) for c in cases for e in c.escalations
    ]
    by_day = Counter((e.day, e.level) for c in cases for e in c.escalations)
    hours = Counter(e.hour for c in cases for e in c.escalations if e.to_tech_lead)
    notifications: Counter[str] = Counter()
    for c in cases:
        notifications.update(c.notifications)
    return RunFigures(
        policy=policy,
        report=compute_report(facts, escalations, start=start, end=end).model_copy(
            update={"intervention": intervention_figures(facts, window_end)}
        ),
        breaches=[
            PriorityBreaches(
                priority=p.value, milestones=milestone_figures([f for f in facts if f.priority is p])
            )
            for p in Priority
        ],
        escalations_by_day=[LevelDay(day=d, level=lv, tickets=n) for (d, lv), n in sorted(by_day.items())],
        tech_lead_by_hour=[hours.get(h, 0) for h in range(24)],
        notifications=dict(sorted(notifications.items())),
        open_at_end=sum(c.still_open for c in cases),
        failed=failed,
    )


def changed_outcomes(
    baseline: Sequence[SimulatedCase], candidate: Sequence[SimulatedCase]
) -> list[ChangedOutcome]:
    """The tickets that ended differently, escalated differently or breached different milestones."""
    paired = zip(baseline, candidate, strict=True)
    return [
        ChangedOutcome(ticket_id=b.ticket_id, baseline=outcome(b), candidate=outcome(c))
        for b, c in paired
        if outcome(b) != outcome(c)
    ]


def outcome(case: SimulatedCase) -> str:
    """A case's outcome in a few words: how it ended, which levels it raised, which milestones it missed."""
    f = case.facts
    if case.failure:
        ended = "failed"
    elif case.still_open:
        ended = "open at the end"
    else:
        ended = f"closed {f.close_reason}"
    levels = ", ".join(e.level for e in case.escalations) or "none"
    breached = ", ".join(sorted(breached_milestones(f))) or "none"
    return f"{ended}; escalated: {levels}; breached: {breached}"
