"""Renderings of a case for the terminal: the card, the timeline, a listing, and how due instants were
reached. Text that comes from tickets and engineers is never read as rich markup."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rich import box
from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from console.read_models import AttentionReport, CaseRow, OutboxRow
from workflows import formats
from workflows.models import ESCALATION_CLOCK, CaseStatus, DueExplanation, Escalation, MilestoneState, Phase
from workflows.sla import ClockFigures, events_in, figures

PRIORITY_STYLE = {"P1": "bold red", "P2": "bold yellow", "P3": "cyan", "P4": "dim"}
PHASE_STYLE = {
    "triage": "magenta",
    "queued": "blue",
    "engaged": "bold green",
    "awaiting_confirmation": "yellow",
    "closed": "dim",
}
MILESTONE_STYLE = {
    MilestoneState.PENDING: "",
    MilestoneState.WARNED: "yellow",
    MilestoneState.BREACHED: "bold red",
    MilestoneState.MET: "green",
    MilestoneState.MET_LATE: "red",
}


def when(t: datetime | None, *, seconds: bool = False) -> str:
    return formats.instant(t, weekday=True, seconds=seconds)


def stamp(t: datetime | None) -> str:
    """To the second: demo and test policies count in seconds."""
    return formats.instant(t, seconds=True)


span = formats.duration


def relative(instant: datetime, now: datetime) -> str:
    """'in 5m' or '3h ago', so an operator need not do the arithmetic against the clock."""
    delta = instant - now
    if abs(delta) < timedelta(seconds=1):
        return "now"
    return f"in {span(delta)}" if delta > timedelta(0) else f"{span(-delta)} ago"


def explanation(name: str, e: DueExplanation) -> list[str]:
    """One due instant, step by step: where the clock started, what it counted, what it skipped; to the
    second when its durations are (a demo policy counts in seconds), else to the minute."""
    fine = any(d % timedelta(minutes=1) for d in (e.target, e.paused))
    lines = [
        f"{name}: due {when(e.due_at, seconds=fine)}",
        f"  clock    {e.clock}",
        f"  start    {e.start} {when(e.starts_at, seconds=fine)}",
        f"  target   {span(e.target)}",
    ]
    if e.paused:
        pauses = ", ".join(
            f"{when(p.started_at, seconds=fine)} - {when(p.ended_at, seconds=fine) if p.ended_at else 'now'}"
            for p in e.pauses
        )
        lines.append(f"  paused   +{span(e.paused)} ({pauses})")
    if e.closed_days:
        lines.append("  skipped  " + ", ".join(f"{d.day:%a %Y-%m-%d} ({d.reason})" for d in e.closed_days))
    return lines


def from_events(status: CaseStatus) -> dict[str, ClockFigures]:
    """The figures of each clock whose SLA events the status's timeline still holds from its start."""
    found = figures(events_in((e.type, e.data) for e in status.timeline))
    return {name: f for name, f in found.items() if f.starts_at is not None and f.target is not None}


def _as_recorded(e: DueExplanation, f: ClockFigures | None) -> DueExplanation:
    """The explanation with its start, target, paused time and due instant as the clock's events say."""
    if f is None or f.starts_at is None or f.target is None or f.due_at is None:
        return e
    return e.model_copy(
        update={"starts_at": f.starts_at, "target": f.target, "paused": f.paused, "due_at": f.due_at}
    )


def explain(status: CaseStatus) -> str:
    """Every due instant of the case with how it was reached: its figures from the clock's SLA events
    (start, pauses, resumes, retargets), the calendar's closed days from the case's clock."""
    lines: list[str] = []
    recorded = from_events(status)
    for ms in status.milestones:
        if ms.explanation is not None:
            e = _as_recorded(ms.explanation, recorded.get(ms.name.value))
            lines += explanation(f"milestone {ms.name.value} ({ms.state.value})", e)
    if status.escalation_explanation is not None:
        e = _as_recorded(status.escalation_explanation, recorded.get(ESCALATION_CLOCK))
        lines += explanation("next escalation", e)
    if status.queued_until is not None:
        lines.append(f"queued until the next opening: {when(status.queued_until)}")
    return "\n".join(lines) or f"case {status.ticket.ticket_id} has no running clocks ({status.phase.value})"


@dataclass(frozen=True)
class Deadline:
    """The next instant at which the case's clocks will act without anyone doing anything."""

    at: datetime
    what: str


def next_deadline(status: CaseStatus) -> Deadline | None:
    """Read from the status alone (no policy): engagement, SLA targets, escalation, reminders, window.

    Early warnings to the assignee are left out: they are nudges, not commitments to the customer.
    """
    found: list[Deadline] = []
    if status.phase in (Phase.TRIAGE, Phase.QUEUED) and status.queued_until is not None:
        found.append(Deadline(status.queued_until, "engagement at the next business opening"))
    if status.phase is Phase.ENGAGED:
        for ms in status.milestones:
            if ms.due_at is not None and ms.state in (MilestoneState.PENDING, MilestoneState.WARNED):
                found.append(Deadline(ms.due_at, f"SLA target {ms.name.value}"))
        if status.escalation_due_at is not None:
            found.append(Deadline(status.escalation_due_at, "next escalation level"))
        for c in status.cycles:
            if c.open and c.engagement == status.engagement:
                found.append(Deadline(c.due_at, f"{c.milestone.value} cycle {c.number}"))
        pause = status.pauses[-1] if status.paused and status.pauses else None
        if pause is not None and pause.reminder_due_at is not None and pause.reminded_at is None:
            found.append(Deadline(pause.reminder_due_at, "reminder to the customer we wait for"))
    if status.phase is Phase.AWAITING_CONFIRMATION:
        if status.reminder_due_at is not None and status.reminder_sent_at is None:
            found.append(Deadline(status.reminder_due_at, "confirmation reminder to the customer"))
        if status.confirmation_due_at is not None:
            found.append(Deadline(status.confirmation_due_at, "confirmation window ends (no_response)"))
    return min(found, key=lambda d: d.at, default=None)


# Rich renderings.


def _styled(value: str | None, style: str = "") -> Text:
    return Text("-" if value is None else value, style=style)


def _phase_text(status: CaseStatus) -> Text:
    text = Text(status.phase.value, style=PHASE_STYLE.get(status.phase.value, ""))
    if status.engagement > 1 and status.phase is not Phase.CLOSED:
        text.append(f" (engagement {status.engagement}, reopened)")
    if status.paused and status.pauses:
        pause = status.pauses[-1]
        text.append(f" · paused since {stamp(pause.started_at)}", style="bold yellow")
        if pause.note:
            text.append(f": {pause.note}")
    return text


def _facts(status: CaseStatus, now: datetime) -> Table:
    t = status.ticket
    c = t.customer
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column()
    grid.add_row("Subject", Text(t.subject))
    grid.add_row("Priority", _styled(status.priority.value, PRIORITY_STYLE.get(status.priority.value, "")))
    grid.add_row("Phase", _phase_text(status))
    grid.add_row("Assignee", _styled(status.assignee or "unassigned"))
    contact = ", ".join(str(x) for x in (c.contact_email, c.contact_phone) if x)
    grid.add_row("Customer", Text(f"{c.name} ({c.account_id}) · {contact}"))
    grid.add_row("TAM", _styled(c.tam_email and str(c.tam_email)))
    grid.add_row("Source", _styled(t.source))
    grid.add_row("Opened", Text(f"{stamp(status.opened_at)} ({relative(status.opened_at, now)})"))
    if status.engaged_at is not None:
        grid.add_row("Engaged", Text(stamp(status.engaged_at)))
    if status.queued_until is not None and status.phase in (Phase.TRIAGE, Phase.QUEUED):
        grid.add_row("Queued until", Text(stamp(status.queued_until)))
    deadline = next_deadline(status)
    if deadline is not None:
        line = Text(f"{stamp(deadline.at)} ({relative(deadline.at, now)}): ", style="bold")
        line.append(deadline.what)
        grid.add_row("Next due", line)
    if status.resolution:
        grid.add_row("Resolution", Text(f"{status.resolution} ({stamp(status.resolved_at)})"))
    if status.close_reason is not None:
        closed = f"{status.close_reason.value} at {stamp(status.closed_at)}"
        grid.add_row("Closed", Text(closed, style="bold"))
    grid.add_row("SLA", Text("breached", style="bold red") if status.sla_breached else Text("on track"))
    return grid


def _milestones(status: CaseStatus) -> Table:
    table = Table(title="Milestones", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    for name in ("milestone", "target", "due", "verified", "state"):
        table.add_column(name)
    for ms in status.milestones:
        verified = stamp(ms.verified_at) + (f" by {ms.verified_by}" if ms.verified_by else "")
        due = "paused" if status.paused and ms.due_at is None else stamp(ms.due_at)
        table.add_row(
            ms.name.value,
            span(ms.target),
            due,
            Text(verified if ms.verified_at else "-"),
            Text(ms.state.value, style=MILESTONE_STYLE[ms.state]),
        )
    return table


def _escalations(status: CaseStatus) -> Table:
    table = Table(title="Escalations", title_justify="left", box=box.SIMPLE_HEAD, expand=False)
    for name in ("level", "engagement", "raised", "ticket", "notified", "acknowledged"):
        table.add_column(name)
    for e in status.escalations:
        table.add_row(
            Text(e.level, style="bold red"),
            str(e.engagement),
            stamp(e.raised_at),
            Text(e.ticket_key),
            ", ".join(e.notified),
            _acknowledgement(e),
        )
    return table


def _acknowledgement(e: Escalation) -> Text:
    """Who took the level on, or who it waits for and how often they were told again."""
    if e.acknowledged_at is not None:
        return Text(f"by {e.acknowledged_by} {stamp(e.acknowledged_at)}", style="green")
    if not e.awaits_acknowledgement:
        return Text("-", style="dim")
    return Text(f"waiting for {e.owner or '-'} ({e.repeats} reminders)", style="bold yellow")


def card(status: CaseStatus, now: datetime | None = None) -> Panel:
    """The case at a glance: who, what, where it stands, what is due next, milestones and escalations."""
    now = now or datetime.now(UTC)
    parts: list[Table | Text] = [_facts(status, now), Text()]
    if status.milestones:
        parts.append(_milestones(status))
    parts.append(_escalations(status) if status.escalations else Text("No escalations.", style="dim"))
    title = Text(f"{status.workflow_id} · ", style="bold")
    title.append(status.priority.value, style=PRIORITY_STYLE.get(status.priority.value, ""))
    title.append(" · ")
    title.append(status.phase.value, style=PHASE_STYLE.get(status.phase.value, ""))
    return Panel(Group(*parts), title=title, title_align="left", box=box.ROUNDED, expand=False)


def history(status: CaseStatus) -> Table:
    """The timeline in order; refused actions stand out, since they are what engineers must redo."""
    table = Table(
        title=f"Timeline of {status.workflow_id} ({len(status.timeline)} entries)",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    table.add_column("seq", justify="right")
    table.add_column("at", no_wrap=True)
    table.add_column("type", no_wrap=True)
    table.add_column("actor")
    table.add_column("detail", overflow="fold")
    for entry in status.timeline:
        rejected = entry.type == "rejected"
        kind = f"rejected {entry.data['action']}" if rejected and entry.data.get("action") else entry.type
        detail = Text(entry.detail)
        note = entry.data.get("note")
        if note:
            detail.append(f" · note: {note}", style="italic")
        table.add_row(
            str(entry.seq),
            stamp(entry.at),
            Text(kind, style="bold red" if rejected else "bold"),
            _styled(entry.actor),
            detail,
            style="red" if rejected else None,
        )
    return table


def _flag(value: bool, style: str) -> Text:
    return Text("yes", style=style) if value else Text("-", style="dim")


def case_list(rows: list[CaseRow], query: str | None = None) -> Table:
    """A visibility listing, one line per case; the query is the caption so it can be pasted elsewhere."""
    table = Table(
        title=f"{len(rows)} case{'s' if len(rows) != 1 else ''}",
        title_justify="left",
        caption=Text(query) if query else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in ("workflow id", "priority", "phase", "customer", "assignee", "escalated", "breached"):
        table.add_column(name, no_wrap=name in ("workflow id", "phase"))
    table.add_column("opened", no_wrap=True)
    for row in rows:
        table.add_row(
            Text(row.workflow_id),
            _styled(row.priority, PRIORITY_STYLE.get(row.priority or "", "")),
            _styled(row.phase, PHASE_STYLE.get(row.phase or "", "")),
            _styled(row.customer),
            _styled(row.assignee),
            _flag(row.escalated, "bold red"),
            _flag(row.breached, "bold red"),
            stamp(row.opened_at),
        )
    return table


def outbox_rows(rows: list[OutboxRow]) -> Table:
    """Notifications needing an operator, one line each, with the key `settle-notification` takes."""
    table = Table(
        title=f"{len(rows)} notification{'s' if len(rows) != 1 else ''}",
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for name in (
        "dedupe key",
        "state",
        "channel",
        "recipient",
        "subject",
        "attempts",
        "created",
        "last error",
    ):
        table.add_column(name, no_wrap=name in ("dedupe key", "state", "created"))
    for r in rows:
        table.add_row(
            Text(r.dedupe_key),
            _styled(r.state, "bold red" if r.state in ("unknown", "failed") else ""),
            Text(r.channel),
            Text(r.recipient),
            Text(r.subject),
            str(r.attempts),
            stamp(r.created_at),
            _styled(r.last_error),
        )
    return table


def attention(report: AttentionReport) -> Group:
    """Everything stuck: cases retrying something, then the outbox and timeline rows to look at."""
    if report.empty:
        return Group(Text("nothing needs attention", style="green"))
    cases = Table(title=f"{len(report.cases)} case(s) retrying", title_justify="left", box=box.SIMPLE_HEAD)
    for name in ("case", "what", "since", "rounds / attempt", "last error"):
        cases.add_column(name, no_wrap=name in ("case", "since"))
    for c in report.cases:
        for t in c.troubles:
            cases.add_row(Text(c.ticket_id), Text(t.what), stamp(t.since), f"round {t.rounds}", Text(t.error))
        for a in c.activities:
            cases.add_row(
                Text(c.ticket_id),
                Text(f"activity {a.activity_type}"),
                stamp(a.last_attempt_at),
                f"attempt {a.attempt}",
                _styled(a.last_failure),
            )
        if c.note:
            cases.add_row(Text(c.ticket_id), "-", "-", "-", Text(c.note))
    parts: list[Table | Text] = [cases] if report.cases else []
    if report.notifications:
        parts.append(outbox_rows(report.notifications))
    if report.abandoned_sends:
        table = outbox_rows(report.abandoned_sends)
        table.title = f"{len(report.abandoned_sends)} send(s) abandoned mid-way or still retrying"
        parts.append(table)
    if report.damaged_entries:
        damaged = Table(
            title=f"{len(report.damaged_entries)} timeline entr(ies) stored in a safe form",
            title_justify="left",
            box=box.SIMPLE_HEAD,
        )
        for name in ("case", "seq", "type", "recorded", "why"):
            damaged.add_column(name)
        for d in report.damaged_entries:
            damaged.add_row(
                Text(d.workflow_id), str(d.seq), Text(d.type), stamp(d.recorded_at), Text(d.storage_error)
            )
        parts.append(damaged)
    return Group(*parts)
