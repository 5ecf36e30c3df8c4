"""How instants and durations read, in one place: the Web UI card, the timeline, the templates, the CLI,
the digest and the report all say the same thing the same way.

Instants are in UTC ("2026-12-02 14:28 UTC"), to the second where seconds matter (demo policies count in
seconds). Durations are compact and exact ("20s", "15m", "1h30m", "2d4h"), or rounded for a report.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

UNITS = ((86_400, "d"), (3_600, "h"), (60, "m"), (1, "s"))


def instant(t: datetime | None, *, seconds: bool = False, weekday: bool = False) -> str:
    if t is None:
        return "-"
    pattern = ("%a " if weekday else "") + "%Y-%m-%d %H:%M" + (":%S" if seconds else "")
    return f"{t.astimezone(UTC):{pattern}} UTC"


def duration(d: timedelta | None, *, rounded_to: timedelta | None = None) -> str:
    """Every non-zero unit, largest first; `rounded_to` (a minute, say) drops what is finer."""
    if d is None:
        return "-"
    total = round(d.total_seconds())
    if rounded_to is not None:
        step = max(round(rounded_to.total_seconds()), 1)
        total = round(total / step) * step
    sign, total = ("-" if total < 0 else ""), abs(total)
    parts = []
    for size, unit in UNITS:
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return sign + ("".join(parts) or "0s")


def seconds(d: timedelta | None) -> str:
    """A duration as a number of seconds for a CSV cell, exact to the microsecond and never in exponent
    form (`:g` wrote 12 days as 1.04866e+06); blank when nothing was measured."""
    if d is None:
        return ""
    return f"{d.total_seconds():.6f}".rstrip("0").rstrip(".")
