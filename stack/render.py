"""Text renderings of a case for the terminal."""

from __future__ import annotations

from datetime import datetime, timedelta

from workflows.models import CaseStatus, DueExplanation


def when(instant: datetime | None) -> str:
    return "-" if instant is None else f"{instant:%a %Y-%m-%d %H:%M} UTC"


def span(d: timedelta) -> str:
    total = int(d.total_seconds())
    days, rest = divmod(total, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    text = "".join(parts) or f"{seconds}s"
    return text if not seconds or not parts else f"{text}{seconds}s"


def explanation(name: str, e: DueExplanation) -> list[str]:
    """One due instant, step by step: where the clock started, what it counted, what it skipped."""
    lines = [
        f"{name}: due {when(e.due_at)}",
        f"  clock    {e.clock}",
        f"  start    {e.start} {when(e.starts_at)}",
        f"  target   {span(e.target)}",
    ]
    if e.paused:
        pauses = ", ".join(
            f"{when(p.started_at)} - {when(p.ended_at) if p.ended_at else 'now'}" for p in e.pauses
        )
        lines.append(f"  paused   +{span(e.paused)} ({pauses})")
    if e.closed_days:
        lines.append("  skipped  " + ", ".join(f"{d.day:%a %Y-%m-%d} ({d.reason})" for d in e.closed_days))
    return lines


def explain(status: CaseStatus) -> str:
    """Every due instant of the case with how it was reached."""
    lines: list[str] = []
    for ms in status.milestones:
        if ms.explanation is not None:
            lines += explanation(f"milestone {ms.name.value} ({ms.state.value})", ms.explanation)
    if status.escalation_explanation is not None:
        lines += explanation("next escalation", status.escalation_explanation)
    if status.queued_until is not None:
        lines.append(f"queued until the next opening: {when(status.queued_until)}")
    return "\n".join(lines) or f"case {status.ticket.ticket_id} has no running clocks ({status.phase.value})"
