"""The outcome report: does the engine keep the seed's promise (intervention within an hour, lower MTTR)?

The SQL only gathers one row of facts per case; every figure is computed by pure functions over those rows,
so the arithmetic is tested without a database and the queries stay small.

Scope: the cohort of cases *opened* in `[now - since, now]`; every figure is over that cohort.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
import structlog
from pydantic import BaseModel, ConfigDict, Field

from workflows import formats
from workflows.models import Milestone, Priority, RecurringMilestone

log = structlog.get_logger(__name__)

INTERVENTION_WITHIN = timedelta(minutes=60)
ReportFormat = Literal["table", "json", "csv"]


# The facts the SQL gathers.


class CaseFacts(BaseModel):
    """One case of the cohort, as much as the figures need."""

    workflow_id: str
    priority: Priority
    phase: str
    opened_at: datetime
    engaged_at: datetime | None = None
    first_engaged_event_at: datetime | None = None
    resolved_at: datetime | None = None
    first_resolved_event_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str | None = None
    first_escalation_at: datetime | None = None
    milestone_states: dict[str, str] = Field(default_factory=dict)
    breached_in_timeline: list[str] = Field(default_factory=list)
    breached_in_sla_events: list[str] = Field(default_factory=list)
    """Clocks with a breach, or met late, in the sla_events table."""
    cycles_met: int = 0
    cycles_breached: int = 0


class EscalationFacts(BaseModel):
    workflow_id: str
    level: str


# The figures.


class Figures(BaseModel):
    model_config = ConfigDict(ser_json_timedelta="float")


class DurationStats(Figures):
    """Durations in JSON are seconds; `None` when there is nothing to measure."""

    count: int
    median: timedelta | None = None
    p90: timedelta | None = None


class PriorityFigures(Figures):
    priority: str
    cases: int
    open: int
    closed: int
    cancelled: int
    to_resolved: DurationStats
    to_closed: DurationStats


class InterventionFigures(Figures):
    """Engaged cases whose first engagement got a Tech Lead ticket or a resolution within `within`."""

    within: timedelta
    engaged: int
    met: int
    share: float | None
    undecided: int


class MilestoneFigures(Figures):
    milestone: str
    cases: int
    breached: int
    rate: float | None


class CycleFigures(Figures):
    """Cycles of the recurring customer_update milestone: each met by an update in time, or breached."""

    milestone: str
    cases: int
    cycles: int
    met: int
    breached: int
    rate: float | None


class EscalationLevelFigures(Figures):
    level: str
    tickets: int
    cases: int


class Report(Figures):
    start: datetime
    end: datetime
    cases: int
    priorities: list[PriorityFigures]
    intervention: InterventionFigures
    milestones: list[MilestoneFigures]
    cycles: list[CycleFigures] = Field(default_factory=list)
    escalations: list[EscalationLevelFigures]


# Pure figure computation.


def percentile(values: Sequence[timedelta], p: float) -> timedelta | None:
    """Linear interpolation between closest ranks (numpy's default, Excel's PERCENTILE.INC).

    Sorted values x[0..n-1], rank h = (n - 1) * p, k = floor(h):
    result = x[k] + (h - k) * (x[k + 1] - x[k]).
    So the median is the textbook median (the mean of the two middle values when n is even), and p90 of
    [10, 20, 30, 40] minutes is 30 + 0.7 * 10 = 37 minutes. Rounded to whole microseconds by timedelta.
    """
    if not values:
        return None
    xs = sorted(values)
    h = (len(xs) - 1) * p
    low = math.floor(h)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (h - low)


def duration_stats(values: Sequence[timedelta]) -> DurationStats:
    return DurationStats(count=len(values), median=percentile(values, 0.5), p90=percentile(values, 0.9))


def _earliest(*instants: datetime | None) -> datetime | None:
    present = [t for t in instants if t is not None]
    return min(present) if present else None


def first_engagement(case: CaseFacts) -> datetime | None:
    """The row keeps the latest engagement (a reopen overwrites it); the first `engaged` event the first."""
    return _earliest(case.engaged_at, case.first_engaged_event_at)


def first_intervention(case: CaseFacts) -> datetime | None:
    """A Tech Lead ticket (any escalation level) or a resolution, whichever came first."""
    return _earliest(case.first_escalation_at, case.first_resolved_event_at, case.resolved_at)


def breached_milestones(case: CaseFacts) -> set[str]:
    """From the case's SLA events; for cases recorded before those, from the snapshot's milestone states
    and the milestone each `sla_breached` entry names."""
    found = {name for name, state in case.milestone_states.items() if state in ("breached", "met_late")}
    recorded = set(case.breached_in_timeline) | set(case.breached_in_sla_events)
    return found | (recorded & {m.value for m in Milestone})


def _counted(case: CaseFacts) -> bool:
    """A cancelled case (duplicate, withdrawn) says nothing about how fast problems are fixed."""
    return case.close_reason != "cancelled"


def priority_figures(label: str, cases: Sequence[CaseFacts], now: datetime) -> PriorityFigures:
    mttr = [c for c in cases if _counted(c)]
    to_resolved = [c.resolved_at - c.opened_at for c in mttr if c.resolved_at and c.resolved_at <= now]
    to_closed = [c.closed_at - c.opened_at for c in mttr if c.closed_at and c.closed_at <= now]
    return PriorityFigures(
        priority=label,
        cases=len(cases),
        open=sum(c.phase != "closed" for c in cases),
        closed=sum(c.phase == "closed" for c in cases),
        cancelled=sum(c.close_reason == "cancelled" for c in cases),
        to_resolved=duration_stats(to_resolved),
        to_closed=duration_stats(to_closed),
    )


def intervention_figures(
    cases: Iterable[CaseFacts], now: datetime, within: timedelta = INTERVENTION_WITHIN
) -> InterventionFigures:
    """Elapsed (wall-clock) time from the first engagement, in whole seconds, threshold inclusive.

    A case still inside its first `within` with no intervention yet is undecided and left out, so a
    report run mid-morning does not count fresh cases as misses; so is a cancelled case, which needed
    no intervention.
    """
    engaged = met = undecided = 0
    for case in cases:
        start = first_engagement(case)
        if start is None or not _counted(case):
            continue
        acted = first_intervention(case)
        if acted is not None and _whole_seconds(acted - start) <= within:
            engaged += 1
            met += 1
        elif acted is None and now - start < within:
            undecided += 1
        else:
            engaged += 1
    return InterventionFigures(
        within=within, engaged=engaged, met=met, share=met / engaged if engaged else None, undecided=undecided
    )


def _whole_seconds(d: timedelta) -> timedelta:
    """A timer fires a few milliseconds after its instant: a Tech Lead ticket raised at 60:00.006 was
    raised within the hour."""
    return timedelta(seconds=int(d.total_seconds()))


def milestone_figures(cases: Sequence[CaseFacts]) -> list[MilestoneFigures]:
    """Breach rate per milestone over every case of the cohort (each case has every milestone)."""
    breaches = [breached_milestones(c) for c in cases]
    out = []
    for m in Milestone:
        hit = sum(m.value in b for b in breaches)
        out.append(
            MilestoneFigures(
                milestone=m.value, cases=len(cases), breached=hit, rate=hit / len(cases) if cases else None
            )
        )
    return out


def cycle_figures(cases: Sequence[CaseFacts]) -> list[CycleFigures]:
    """Counted per cycle, over the cases that ran any; none when no case of the cohort did."""
    ran = [c for c in cases if c.cycles_met or c.cycles_breached]
    if not ran:
        return []
    met = sum(c.cycles_met for c in ran)
    breached = sum(c.cycles_breached for c in ran)
    return [
        CycleFigures(
            milestone=RecurringMilestone.CUSTOMER_UPDATE.value,
            cases=len(ran),
            cycles=met + breached,
            met=met,
            breached=breached,
            rate=breached / (met + breached),
        )
    ]


def escalation_figures(escalations: Sequence[EscalationFacts]) -> list[EscalationLevelFigures]:
    levels: dict[str, list[str]] = {}
    for e in escalations:
        levels.setdefault(e.level, []).append(e.workflow_id)
    return [
        EscalationLevelFigures(level=level, tickets=len(ids), cases=len(set(ids)))
        for level, ids in sorted(levels.items())
    ]


def compute_report(
    cases: Sequence[CaseFacts],
    escalations: Sequence[EscalationFacts],
    *,
    start: datetime,
    end: datetime,
    within: timedelta = INTERVENTION_WITHIN,
) -> Report:
    by_priority = [priority_figures(p.value, [c for c in cases if c.priority is p], end) for p in Priority]
    return Report(
        start=start,
        end=end,
        cases=len(cases),
        priorities=[*by_priority, priority_figures("all", cases, end)],
        intervention=intervention_figures(cases, end, within),
        milestones=milestone_figures(cases),
        cycles=cycle_figures(cases),
        escalations=escalation_figures(escalations),
    )


# PostgreSQL.

_CASES_SQL = """
SELECT c.workflow_id, c.priority, c.phase, c.opened_at, c.engaged_at, c.resolved_at, c.closed_at,
    c.close_reason,
    (SELECT min(e.at) FROM case_events e
        WHERE e.workflow_id = c.workflow_id AND e.life = c.life AND e.type = 'engaged')
        AS first_engaged_event_at,
    (SELECT min(e.at) FROM case_events e
        WHERE e.workflow_id = c.workflow_id AND e.life = c.life AND e.type = 'resolved')
        AS first_resolved_event_at,
    (SELECT min(x.raised_at) FROM escalations x
        WHERE x.workflow_id = c.workflow_id AND x.life = c.life) AS first_escalation_at,
    COALESCE((SELECT jsonb_object_agg(m->>'name', m->>'state')
              FROM jsonb_array_elements(COALESCE(c.snapshot->'milestones', '[]'::jsonb)) m), '{}'::jsonb)
        AS milestone_states,
    ARRAY(SELECT e.data->>'milestone' FROM case_events e
        WHERE e.workflow_id = c.workflow_id AND e.life = c.life AND e.type = 'sla_breached'
          AND e.data ? 'milestone') AS breached_in_timeline,
    ARRAY(SELECT DISTINCT s.clock FROM sla_events s
        WHERE s.workflow_id = c.workflow_id AND s.life = c.life
          AND (s.event = 'breach' OR (s.event = 'fulfil' AND s.late))) AS breached_in_sla_events,
    (SELECT count(*) FROM case_events e
        WHERE e.workflow_id = c.workflow_id AND e.life = c.life AND e.type = 'customer_updated'
          AND e.data ? 'cycle') AS cycles_met,
    (SELECT count(*) FROM case_events e
        WHERE e.workflow_id = c.workflow_id AND e.life = c.life AND e.type = 'update_breached')
        AS cycles_breached
FROM cases c
WHERE c.opened_at >= $1 AND c.opened_at <= $2
ORDER BY c.opened_at
"""

_ESCALATIONS_SQL = """
SELECT x.workflow_id, x.level
FROM escalations x JOIN cases c ON c.workflow_id = x.workflow_id AND c.life = x.life
WHERE c.opened_at >= $1 AND c.opened_at <= $2
"""


async def load_facts(
    pool: asyncpg.Pool, start: datetime, end: datetime
) -> tuple[list[CaseFacts], list[EscalationFacts]]:
    """One consistent read (a repeatable-read transaction) of the cohort and its escalations."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        case_rows = await conn.fetch(_CASES_SQL, start, end)
        escalation_rows = await conn.fetch(_ESCALATIONS_SQL, start, end)
    cases = [
        CaseFacts.model_validate(dict(r) | {"milestone_states": json.loads(r["milestone_states"])})
        for r in case_rows
    ]
    escalations = [EscalationFacts.model_validate(dict(r)) for r in escalation_rows]
    return cases, escalations


async def report(
    pool: asyncpg.Pool, since: timedelta, now: datetime, *, within: timedelta = INTERVENTION_WITHIN
) -> Report:
    """The report over cases opened in `[now - since, now]`."""
    start = now - since
    cases, escalations = await load_facts(pool, start, now)
    log.info("report computed", start=start.isoformat(), end=now.isoformat(), cases=len(cases))
    return compute_report(cases, escalations, start=start, end=now, within=within)


# Output.

_SINCE = re.compile(r"(\d+)\s*([wdhm])")
_UNITS = {"w": "weeks", "d": "days", "h": "hours", "m": "minutes"}


LONGEST_SINCE = timedelta(days=3650)
"""Ten years: far beyond any retention, and well inside what a date can hold."""


def parse_since(text: str) -> timedelta:
    """ "30d", "2w", "12h", "90m" or a combination ("1d12h")."""
    cleaned = text.strip().lower()
    parts = _SINCE.findall(cleaned)
    if not parts or _SINCE.sub("", cleaned).strip():
        raise ValueError(f"--since {text!r}: give a duration like 30d, 2w, 12h or 90m")
    try:
        total = sum((timedelta(**{_UNITS[unit]: int(n)}) for n, unit in parts), timedelta(0))
    except OverflowError:
        total = LONGEST_SINCE * 2
    if total <= timedelta(0):
        raise ValueError(f"--since {text!r} must be positive")
    if total > LONGEST_SINCE:
        raise ValueError(f"--since {text!r} is longer than {LONGEST_SINCE.days} days")
    return total


def human(d: timedelta | None) -> str:
    """To the minute: a report compares hours and days."""
    return formats.duration(d, rounded_to=timedelta(minutes=1))


def percent(share: float | None) -> str:
    return "-" if share is None else f"{share * 100:.1f}%"


def table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """Aligned columns: the first to the left, the others to the right, a rule under the headers."""
    body = [list(headers), *(list(r) for r in rows)]
    widths = [max(len(r[i]) for r in body) for i in range(len(headers))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(r, widths, strict=True))
        ).rstrip()
        for r in body
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return lines


def render_table(r: Report) -> str:
    lines = [
        f"ABH report: cases opened {formats.instant(r.start)} to {formats.instant(r.end)} ({r.cases} cases)",
        "",
        "Cases, time to resolve (opened -> resolved) and to close (opened -> closed); "
        "cancelled cases are left out of both",
    ]
    lines += table(
        [
            "priority",
            "cases",
            "open",
            "closed",
            "cancelled",
            "n resolved",
            "resolve median",
            "resolve p90",
            "n closed",
            "close median",
            "close p90",
        ],
        (
            [
                p.priority,
                str(p.cases),
                str(p.open),
                str(p.closed),
                str(p.cancelled),
                str(p.to_resolved.count),
                human(p.to_resolved.median),
                human(p.to_resolved.p90),
                str(p.to_closed.count),
                human(p.to_closed.median),
                human(p.to_closed.p90),
            ]
            for p in r.priorities
        ),
    )
    i = r.intervention
    lines += [
        "",
        f"Technical intervention (Tech Lead ticket or resolution) within {human(i.within)} of engagement: "
        f"{i.met} of {i.engaged} engaged cases = {percent(i.share)}"
        + (f" ({i.undecided} still inside the window)" if i.undecided else ""),
        "",
        "Breach rate per milestone",
    ]
    lines += table(
        ["milestone", "cases", "breached", "rate"],
        ([m.milestone, str(m.cases), str(m.breached), percent(m.rate)] for m in r.milestones),
    )
    if r.cycles:
        lines += ["", "Recurring milestones, counted per cycle"]
        lines += table(
            ["milestone", "cases", "cycles", "met", "breached", "rate"],
            (
                [c.milestone, str(c.cases), str(c.cycles), str(c.met), str(c.breached), percent(c.rate)]
                for c in r.cycles
            ),
        )
    lines += ["", "Escalations by level"]
    lines += (
        table(["level", "tickets", "cases"], ([e.level, str(e.tickets), str(e.cases)] for e in r.escalations))
        if r.escalations
        else ["(none)"]
    )
    return "\n".join(lines) + "\n"


def _share(x: float | None) -> str:
    return "" if x is None else f"{x:.4f}"


def render_csv(r: Report) -> str:
    """Long format, one figure a row (section, key, metric, value): easy to pivot in a spreadsheet."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "key", "metric", "value"])
    w.writerow(["window", "", "start", r.start.isoformat()])
    w.writerow(["window", "", "end", r.end.isoformat()])
    for p in r.priorities:
        for metric, value in (
            ("cases", p.cases),
            ("open", p.open),
            ("closed", p.closed),
            ("cancelled", p.cancelled),
        ):
            w.writerow(["cases", p.priority, metric, value])
        for section, stats in (("mttr_resolved", p.to_resolved), ("mttr_closed", p.to_closed)):
            w.writerow([section, p.priority, "count", stats.count])
            w.writerow([section, p.priority, "median_seconds", formats.seconds(stats.median)])
            w.writerow([section, p.priority, "p90_seconds", formats.seconds(stats.p90)])
    i = r.intervention
    w.writerow(["intervention", "all", "within_seconds", formats.seconds(i.within)])
    w.writerow(["intervention", "all", "engaged", i.engaged])
    w.writerow(["intervention", "all", "met", i.met])
    w.writerow(["intervention", "all", "share", _share(i.share)])
    w.writerow(["intervention", "all", "undecided", i.undecided])
    for m in r.milestones:
        w.writerow(["breaches", m.milestone, "cases", m.cases])
        w.writerow(["breaches", m.milestone, "breached", m.breached])
        w.writerow(["breaches", m.milestone, "rate", _share(m.rate)])
    for c in r.cycles:
        for metric, value in (
            ("cases", c.cases),
            ("cycles", c.cycles),
            ("met", c.met),
            ("breached", c.breached),
        ):
            w.writerow(["cycles", c.milestone, metric, value])
        w.writerow(["cycles", c.milestone, "rate", _share(c.rate)])
    for e in r.escalations:
        w.writerow(["escalations", e.level, "tickets", e.tickets])
        w.writerow(["escalations", e.level, "cases", e.cases])
    return out.getvalue()


def render(r: Report, fmt: ReportFormat = "table") -> str:
    if fmt == "json":
        return r.model_dump_json(indent=2) + "\n"
    if fmt == "csv":
        return render_csv(r)
    return render_table(r)


async def report_command(
    pool: asyncpg.Pool, since: timedelta | str, fmt: ReportFormat = "table", *, now: datetime | None = None
) -> str:
    """What `starter.py report [--since 30d] [--json|--csv]` prints."""
    window = parse_since(since) if isinstance(since, str) else since
    return render(await report(pool, window, now or datetime.now(UTC)), fmt)
