"""What `starter.py simulate` prints: candidate beside baseline as tables, JSON or CSV (long format)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Literal

from console.report import human, percent, table
from simulator.figures import RunFigures, Simulation
from workflows import formats

SimulationFormat = Literal["table", "json", "csv"]


def render(sim: Simulation, fmt: SimulationFormat = "table") -> str:
    if fmt == "json":
        return sim.model_dump_json(indent=2) + "\n"
    if fmt == "csv":
        return render_csv(sim)
    return render_table(sim)


def _pairs(sim: Simulation) -> tuple[RunFigures, RunFigures]:
    return sim.baseline, sim.candidate


def _change(b: float | None, c: float | None) -> str:
    return "-" if b is None or c is None else f"{(c - b) * 100:+.1f} pt"


def render_table(sim: Simulation) -> str:
    b, c = _pairs(sim)
    lines = [
        f"ABH what-if: {sim.tickets} tickets, baseline policy {b.policy!r}, candidate policy {c.policy!r}"
        + (f" (replayed in {sim.seconds:.1f} s)" if sim.seconds else ""),
        "",
        "Breach rate per milestone and priority (met late counts as breached)",
    ]
    rows = []
    for pb, pc in zip(b.breaches, c.breaches, strict=True):
        for mb, mc in zip(pb.milestones, pc.milestones, strict=True):
            rows.append(
                [
                    f"{pb.priority} {mb.milestone}",
                    str(mb.cases),
                    f"{mb.breached} = {percent(mb.rate)}",
                    f"{mc.breached} = {percent(mc.rate)}",
                    _change(mb.rate, mc.rate),
                ]
            )
    lines += table(["priority milestone", "cases", "baseline", "candidate", "change"], rows)
    lines += ["", "Time to resolve (opened -> resolved), cancelled cases left out"]
    rows = [
        [
            pb.priority,
            str(pb.to_resolved.count),
            human(pb.to_resolved.median),
            human(pb.to_resolved.p90),
            human(pc.to_resolved.median),
            human(pc.to_resolved.p90),
        ]
        for pb, pc in zip(b.report.priorities, c.report.priorities, strict=True)
    ]
    lines += table(
        ["priority", "resolved", "baseline median", "baseline p90", "candidate median", "candidate p90"], rows
    )
    ib, ic = b.report.intervention, c.report.intervention
    lines += [
        "",
        f"Technical intervention (Tech Lead ticket or resolution) within {human(ib.within)} of engagement:",
        f"  baseline {ib.met} of {ib.engaged} = {percent(ib.share)}; "
        f"candidate {ic.met} of {ic.engaged} = {percent(ic.share)} ({_change(ib.share, ic.share)})",
    ]
    if ib.undecided or ic.undecided:
        lines.append(
            f"  undecided (open at the end, engaged less than that before it): baseline {ib.undecided}, "
            f"candidate {ic.undecided}"
        )
    lines += ["", "Escalations per level per day (the case calendar's local date)"]
    lines += _escalations_by_day(b, c) or ["(none)"]
    lines += ["", "Tech Lead load by hour of day (tickets raised, the case calendar's zone)"]
    lines += table(
        ["hour", "baseline", "candidate"],
        (
            [f"{h:02d}:00", str(nb), str(nc)]
            for h, (nb, nc) in enumerate(zip(b.tech_lead_by_hour, c.tech_lead_by_hour, strict=True))
        ),
    )
    kinds = sorted(set(b.notifications) | set(c.notifications))
    lines += ["", "Notifications that would have been sent, by kind"]
    lines += table(
        ["kind", "baseline", "candidate"],
        ([k, str(b.notifications.get(k, 0)), str(c.notifications.get(k, 0))] for k in kinds),
    )
    lines += [
        "",
        f"Cases still open at the end: baseline {b.open_at_end}, candidate {c.open_at_end}",
    ]
    for run in (b, c):
        for ticket_id, why in run.failed.items():
            lines.append(f"Failed under {run.policy!r}: {ticket_id}: {why}")
    lines += ["", f"Tickets whose outcome changed: {len(sim.changed)}"]
    for ch in sim.changed:
        lines += [f"  {ch.ticket_id}", f"    baseline:  {ch.baseline}", f"    candidate: {ch.candidate}"]
    return "\n".join(lines) + "\n"


def _escalations_by_day(b: RunFigures, c: RunFigures) -> list[str]:
    levels = sorted({e.level for e in b.escalations_by_day} | {e.level for e in c.escalations_by_day})
    days = sorted({e.day for e in b.escalations_by_day} | {e.day for e in c.escalations_by_day})
    if not days:
        return []
    count_b = {(e.day, e.level): e.tickets for e in b.escalations_by_day}
    count_c = {(e.day, e.level): e.tickets for e in c.escalations_by_day}
    rows = [
        [day.isoformat(), *(f"{count_b.get((day, lv), 0)} / {count_c.get((day, lv), 0)}" for lv in levels)]
        for day in days
    ]
    return table(["day", *(f"{lv} (baseline / candidate)" for lv in levels)], rows)


def render_csv(sim: Simulation) -> str:
    """One figure a row: section, key, metric, baseline, candidate."""
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(["section", "key", "metric", "baseline", "candidate"])
    for row in _csv_rows(sim):
        w.writerow(row)
    return out.getvalue()


def _num(x: float | None) -> str:
    return "" if x is None else f"{x:g}"


def _csv_rows(sim: Simulation) -> Iterator[list[str]]:
    b, c = _pairs(sim)
    yield ["run", "", "policy", b.policy, c.policy]
    for pb, pc in zip(b.breaches, c.breaches, strict=True):
        for mb, mc in zip(pb.milestones, pc.milestones, strict=True):
            key = f"{pb.priority} {mb.milestone}"
            yield ["breaches", key, "cases", str(mb.cases), str(mc.cases)]
            yield ["breaches", key, "breached", str(mb.breached), str(mc.breached)]
            yield ["breaches", key, "rate", _num(mb.rate), _num(mc.rate)]
    for qb, qc in zip(b.report.priorities, c.report.priorities, strict=True):
        yield ["mttr", qb.priority, "resolved", str(qb.to_resolved.count), str(qc.to_resolved.count)]
        for metric in ("median", "p90"):
            vb, vc = getattr(qb.to_resolved, metric), getattr(qc.to_resolved, metric)
            yield [
                "mttr",
                qb.priority,
                f"{metric}_seconds",
                formats.seconds(vb),
                formats.seconds(vc),
            ]
    ib, ic = b.report.intervention, c.report.intervention
    yield ["intervention", "all", "engaged", str(ib.engaged), str(ic.engaged)]
    yield ["intervention", "all", "met", str(ib.met), str(ic.met)]
    yield ["intervention", "all", "share", _num(ib.share), _num(ic.share)]
    yield ["intervention", "all", "undecided", str(ib.undecided), str(ic.undecided)]
    count_b = {(e.day, e.level): e.tickets for e in b.escalations_by_day}
    count_c = {(e.day, e.level): e.tickets for e in c.escalations_by_day}
    for day, level in sorted(set(count_b) | set(count_c)):
        yield [
            "escalations",
            f"{day.isoformat()} {level}",
            "tickets",
            str(count_b.get((day, level), 0)),
            str(count_c.get((day, level), 0)),
        ]
    for h, (nb, nc) in enumerate(zip(b.tech_lead_by_hour, c.tech_lead_by_hour, strict=True)):
        yield ["tech_lead_load", f"{h:02d}", "tickets", str(nb), str(nc)]
    for k in sorted(set(b.notifications) | set(c.notifications)):
        yield ["notifications", k, "count", str(b.notifications.get(k, 0)), str(c.notifications.get(k, 0))]
    yield ["cases", "all", "open_at_end", str(b.open_at_end), str(c.open_at_end)]
    yield ["cases", "all", "outcome_changed", "", str(len(sim.changed))]
