"""SLA events: each clock's start, pause, resume, retarget, fulfilment and breach, and the figures that
follow from them.

The workflow records these moments (built here from the case as `clocks.refresh_due_instants` left it);
the report and `--explain` derive a clock's start, target, paused time, due instant and state from them
(`figures`), so what operators read is what the clocks did, not a recomputation.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import BaseModel

from workflows.clocks import PAUSE_EXEMPT, Clock
from workflows.models import (
    ESCALATION_CLOCK,
    CaseStatus,
    DueExplanation,
    EventType,
    Pause,
    SlaClockEvent,
    SlaEventKind,
)


def _from(
    name: str, kind: SlaEventKind, case: CaseStatus, e: DueExplanation, level: str | None = None
) -> SlaClockEvent:
    return SlaClockEvent(
        clock=name,
        event=kind,
        engagement=case.engagement,
        level=level,
        starts_at=e.starts_at,
        target=e.target,
        paused=e.paused,
        due_at=e.due_at,
    )


def milestones_started(case: CaseStatus) -> list[SlaClockEvent]:
    return [
        _from(ms.name.value, SlaEventKind.START, case, ms.explanation)
        for ms in case.milestones
        if ms.explanation is not None
    ]


def escalation_started(case: CaseStatus, level: str | None) -> list[SlaClockEvent]:
    """The engagement's escalation clock, towards `level`."""
    e = case.escalation_explanation
    return [] if e is None else [_from(ESCALATION_CLOCK, SlaEventKind.START, case, e, level)]


def pausing(case: CaseStatus, escalation_running: bool) -> list[str]:
    """The clocks a pause stops: the resolution milestones, and the escalation clock if it runs."""
    names = [ms.name.value for ms in case.milestones if ms.name not in PAUSE_EXEMPT]
    return names + ([ESCALATION_CLOCK] if escalation_running else [])


def paused(case: CaseStatus, names: list[str]) -> list[SlaClockEvent]:
    return [SlaClockEvent(clock=n, event=SlaEventKind.PAUSE, engagement=case.engagement) for n in names]


def resumed(case: CaseStatus, clock: Clock, pause: Pause, names: list[str]) -> list[SlaClockEvent]:
    """What the pause added to each clock it stopped (from the clock's start, on the priority's clock)."""
    explained = {ms.name.value: ms.explanation for ms in case.milestones}
    explained[ESCALATION_CLOCK] = case.escalation_explanation
    out = []
    for name in names:
        e = explained.get(name)
        if e is None or pause.ended_at is None:
            continue
        added = clock.between(max(pause.started_at, e.starts_at), pause.ended_at)
        out.append(
            SlaClockEvent(
                clock=name,
                event=SlaEventKind.RESUME,
                engagement=case.engagement,
                paused=added,
                due_at=e.due_at,
            )
        )
    return out


def retargeted(case: CaseStatus, level: str | None) -> list[SlaClockEvent]:
    """Every running clock measured anew, after a priority change or an acknowledgement."""
    found = [
        _from(ms.name.value, SlaEventKind.RETARGET, case, ms.explanation)
        for ms in case.milestones
        if ms.explanation is not None
    ]
    e = case.escalation_explanation
    return found + ([] if e is None else [_from(ESCALATION_CLOCK, SlaEventKind.RETARGET, case, e, level)])


def ended(
    case: CaseStatus, name: str, kind: SlaEventKind, *, late: bool = False, level: str | None = None
) -> SlaClockEvent:
    return SlaClockEvent(clock=name, event=kind, engagement=case.engagement, late=late, level=level)


class ClockFigures(BaseModel):
    """A clock as its events leave it."""

    clock: str
    engagement: int
    starts_at: datetime | None
    target: timedelta | None
    paused: timedelta
    due_at: datetime | None
    state: str
    breaches: int = 0


def figures(events: Iterable[SlaClockEvent]) -> dict[str, ClockFigures]:
    """Each clock's figures from its events, in the order they happened."""
    out: dict[str, ClockFigures] = {}
    for e in events:
        f = out.get(e.clock)
        if e.event is SlaEventKind.START or f is None:
            breaches = f.breaches if f is not None else 0
            f = out[e.clock] = ClockFigures(
                clock=e.clock,
                engagement=e.engagement,
                starts_at=e.starts_at,
                target=e.target,
                paused=e.paused,
                due_at=e.due_at,
                state="running",
                breaches=breaches,
            )
            if e.event is SlaEventKind.START:
                continue
        match e.event:
            case SlaEventKind.RETARGET:
                f.starts_at, f.target, f.paused = e.starts_at, e.target, e.paused
                f.due_at = e.due_at or f.due_at
            case SlaEventKind.PAUSE:
                f.state = "paused" if f.state == "running" else f.state
            case SlaEventKind.RESUME:
                f.paused += e.paused
                f.due_at = e.due_at or f.due_at
                f.state = "running" if f.state == "paused" else f.state
            case SlaEventKind.FULFIL:
                f.state = "met late" if e.late else "met"
            case SlaEventKind.BREACH:
                f.state = "breached"
                f.breaches += 1
    return out


def events_in(entries: Iterable[tuple[str, Mapping[str, Any]]]) -> list[SlaClockEvent]:
    """The SLA events held in timeline entries given as (type, data)."""
    return [
        SlaClockEvent.model_validate(c)
        for type_, data in entries
        if type_ == EventType.SLA_CLOCK
        for c in data.get("clocks", [])
    ]
