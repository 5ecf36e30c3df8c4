"""How the standup digest reads: one line per case, a section per list, and the facts the
`standup_digest.txt` template fills in. Pure, so the digest workflow words it in its own sandbox and the
tests check the wording without Temporal."""

from __future__ import annotations

from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from workflows import formats
from workflows.safe_text import one_line

if TYPE_CHECKING:
    from activities.standup import DigestCase, DigestSection, StandupDigest


def age(d: timedelta) -> str:
    """How long a case has been open, coarse on purpose: to the minute within the hour, then the hour."""
    step = timedelta(minutes=1) if d < timedelta(hours=1) else timedelta(hours=1)
    return formats.duration(max(d, timedelta(0)), rounded_to=step)


SEPARATOR = " | "
"""Between a case line's cells: the e-mail form splits the lines into table cells on it."""


def cell(text: str) -> str:
    """What a person typed, as one cell: on one line, and never holding the separator (`¦` for its bar),
    so a subject can neither add a case line nor shift the cells after it."""
    return one_line(text).replace(SEPARATOR, " ¦ ")


def case_line(case: DigestCase, as_of: datetime, zone: tzinfo) -> str:
    """One case on one line, with what makes it standup-worthy at the end."""
    opened = case.opened_at.astimezone(zone)
    state = f"{case.phase.value}, paused" if case.paused else case.phase.value
    since = age(as_of - case.opened_at)
    cells = [
        f"- {case.priority.value} {case.ticket_id}",
        cell(case.customer_name),
        cell(case.subject),
        state,
        cell(case.assignee or "unassigned"),
        f"opened {opened:%a %d %b %H:%M %Z} ({since} ago)",
    ]
    line = SEPARATOR.join(cells)
    if case.escalation_levels:
        line += f" | escalated: {', '.join(case.escalation_levels)}"
    elif case.escalated or case.on_standup:
        line += " | escalated"
    if case.breached_milestones:
        line += f" | breached: {', '.join(case.breached_milestones)}"
    return line


def section_text(section: DigestSection, as_of: datetime, zone: tzinfo) -> str:
    if not section.cases:
        return "- none"
    lines = [case_line(c, as_of, zone) for c in section.cases]
    if section.more:
        lines.append(f"- ... and {section.more} more")
    return "\n".join(lines)


def digest_facts(digest: StandupDigest, zone: tzinfo, calendar: str) -> dict[str, str]:
    """The template's facts; the outbox renders `standup_digest.txt` with them."""
    local = digest.as_of.astimezone(zone)
    facts = {
        "day": f"{local:%Y-%m-%d}",
        "weekday": f"{local:%A}",
        "as_of": f"{local:%H:%M %Z}",
        "calendar": calendar,
        "open_count": str(digest.open_cases),
    }
    for name, section in digest.sections().items():
        facts[name] = section_text(section, digest.as_of, zone)
        facts[f"{name}_count"] = str(section.total)
    return facts


def ticket_ids(digest: StandupDigest) -> dict[str, list[str]]:
    return {name: s.ticket_ids() for name, s in digest.sections().items()}
