"""Business calendars: when a support team is open, and how much business time lies between two instants.

Pure and deterministic, so Temporal workflow code can call it: no wall-clock reads, no randomness, no I/O
beyond reading zone rules through `zoneinfo` (tzdata). The only state is a per-calendar cache of computed
days, which never changes a result.

Conventions:

- Every input instant must be timezone-aware (a naive one raises ValueError); every output is in UTC.
- Weekly windows are local wall-clock times in the calendar's zone, half-open `[start, end)`. A window
  whose end is not after its start ("22:00-06:00") crosses midnight and belongs to the day it starts;
  "00:00-24:00" is a whole day. Adjacent windows, also across midnight, form one continuous open span.
- Business time is real elapsed time inside open spans: on the night clocks go forward a 22:00-06:00
  window holds 7 hours, on the night they go back 9.
- A window or closure boundary at a local time that does not exist (inside a DST gap) means the first
  instant after the gap; an ambiguous local time (inside a DST fold) means its first occurrence (fold=0).
  A window lying wholly inside a gap is empty that day.
- Holidays close every window that starts on that local date, including a night window that would run
  into the next morning; a night window that started the day before still runs into the holiday morning.
  Partial-day closures remove their local time span from whichever windows it overlaps.
- `add(t, d)` is the earliest instant `u >= t` with `between(t, u) == d`: Friday 16:00 + 1h is Friday
  17:00, `add(t, 0)` is `t` even when closed, and a positive duration starting in closed time is counted
  from the next opening.
- A search for open time gives up with ValueError after `MAX_CLOSED_DAYS` consecutive closed days.
"""

import datetime as _dt
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

DAY_KEYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_CLOSED_DAYS = 800
"""About two years: a calendar closed this long in a row is treated as misconfigured, not waited on."""

Interval = tuple[datetime, datetime]

_DAY_MINUTES = 24 * 60
_WEEK_MINUTES = 7 * _DAY_MINUTES
_ONE_DAY = timedelta(days=1)
_ZERO = timedelta(0)
_CACHE_LIMIT = 4096
_HHMM = re.compile(r"(\d{2}):(\d{2})")
_WINDOW = re.compile(r"(\d{2}:\d{2})-(\d{2}:\d{2})")
_MONTH_DAY = re.compile(r"(\d{2})-(\d{2})")
_ZONES: dict[str, ZoneInfo] = {}


def parse_time(text: str, *, allow_24: bool = False) -> int:
    """Minutes after local midnight for "HH:MM"; "24:00" (the end of the day) only where allowed."""
    m = _HHMM.fullmatch(text)
    if m is None:
        raise ValueError(f"{text!r} is not a time of day as HH:MM")
    hours, minutes = int(m[1]), int(m[2])
    if allow_24 and (hours, minutes) == (24, 0):
        return _DAY_MINUTES
    if hours > 23 or minutes > 59:
        limit = "00:00..24:00" if allow_24 else "00:00..23:59"
        raise ValueError(f"{text!r} is outside {limit}")
    return hours * 60 + minutes


def parse_window(text: str) -> tuple[int, int]:
    """(start, end) in minutes after the start day's midnight; an end past 1440 ran over midnight."""
    m = _WINDOW.fullmatch(text)
    if m is None:
        raise ValueError(f'window {text!r} is not HH:MM-HH:MM (e.g. "09:00-17:00")')
    start = parse_time(m[1])
    end = parse_time(m[2], allow_24=True)
    if end == start:
        raise ValueError(f'window {text!r} is empty; write "00:00-24:00" for a whole day')
    if end < start:
        end += _DAY_MINUTES
    return start, end


def _check_no_overlap(segments: list[tuple[int, int, str]]) -> None:
    """Weekly segments (minutes after Monday 00:00) must not overlap, Sunday night into Monday included."""
    wrapped = [(s - _WEEK_MINUTES, e - _WEEK_MINUTES, label) for s, e, label in segments if e > _WEEK_MINUTES]
    ordered = sorted(segments + wrapped)
    for (_, end, label), (start, _, other) in pairwise(ordered):
        if start < end:
            raise ValueError(f"windows overlap: {label} and {other}")


class Closure(BaseModel):
    """A partial-day closure on one local date, e.g. Christmas Eve afternoon: 13:00-24:00."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    date: _dt.date
    start: str = "00:00"
    end: str = "24:00"

    @field_validator("start")
    @classmethod
    def _valid_start(cls, value: str) -> str:
        parse_time(value)
        return value

    @field_validator("end")
    @classmethod
    def _valid_end(cls, value: str) -> str:
        parse_time(value, allow_24=True)
        return value

    @model_validator(mode="after")
    def _ordered(self) -> "Closure":
        if parse_time(self.end, allow_24=True) <= parse_time(self.start):
            raise ValueError(
                f"closure on {self.date}: end {self.end} must be after start {self.start} "
                "(split a closure over midnight in two)"
            )
        return self

    @property
    def minutes(self) -> tuple[int, int]:
        return parse_time(self.start), parse_time(self.end, allow_24=True)


class CalendarSpec(BaseModel):
    """One named support calendar as written in the policy TOML file (one [calendars.NAME] table)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timezone: str
    hours: dict[str, list[str]]
    holidays: list[date] = []
    holidays_by_year: dict[int, list[str]] = {}
    closures: list[Closure] = []

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value == "localtime":
            raise ValueError("give an IANA zone name such as 'Europe/London', not the host's 'localtime'")
        try:
            _load_zone(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'UTC', 'America/New_York')") from None
        return value

    @field_validator("hours")
    @classmethod
    def _valid_hours(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        segments: list[tuple[int, int, str]] = []
        for key, windows in value.items():
            if key not in DAY_KEYS:
                raise ValueError(f"unknown day {key!r}; use {', '.join(DAY_KEYS)}")
            base = DAY_KEYS.index(key) * _DAY_MINUTES
            for window in windows:
                try:
                    start, end = parse_window(window)
                except ValueError as exc:
                    raise ValueError(f"{key}: {exc}") from None
                segments.append((base + start, base + end, f"{key} {window}"))
        if not segments:
            raise ValueError('no opening hours; give at least one window, e.g. mon = ["09:00-17:00"]')
        _check_no_overlap(segments)
        return value

    @field_validator("holidays_by_year")
    @classmethod
    def _valid_yearly(cls, value: dict[int, list[str]]) -> dict[int, list[str]]:
        for year, days in value.items():
            for text in days:
                _month_day(year, text)
        return value

    def holiday_dates(self) -> frozenset[date]:
        """Every whole-day closure: `holidays` plus each year's `holidays_by_year`."""
        yearly = (_month_day(year, text) for year, days in self.holidays_by_year.items() for text in days)
        return frozenset(self.holidays).union(yearly)


def _month_day(year: int, text: str) -> date:
    m = _MONTH_DAY.fullmatch(text)
    try:
        if m is None:
            raise ValueError("expected MM-DD")
        return date(year, int(m[1]), int(m[2]))
    except ValueError as exc:
        raise ValueError(f"{year}: {text!r} is not a date as MM-DD ({exc})") from None


def default_calendar_spec() -> CalendarSpec:
    """The spec's default: Monday to Friday 09:00-17:00 UTC, no holidays."""
    return CalendarSpec(timezone="UTC", hours={day: ["09:00-17:00"] for day in DAY_KEYS[:5]})


def zone_named(key: str) -> ZoneInfo:
    """An IANA zone by name, loaded as calendars load theirs (also inside the workflow sandbox)."""
    return _load_zone(key)


def _load_zone(key: str) -> ZoneInfo:
    """The zone's rules as a plain ZoneInfo, also inside Temporal's workflow sandbox.

    There `ZoneInfo(key)` returns a proxy (guarding `clear_cache` and friends) that the C datetime code
    refuses as a tzinfo; `ZoneInfo.no_cache` is not proxied. Loaded zones are kept, as ZoneInfo does.
    """
    zone = _ZONES.get(key)
    if zone is None:
        zone = _ZONES[key] = ZoneInfo.no_cache(key)
    return zone


def _utc(t: datetime, what: str = "t") -> datetime:
    if t.tzinfo is None or t.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {t.isoformat()}")
    return t.astimezone(UTC)


def _check_duration(d: timedelta) -> None:
    if d < _ZERO:
        raise ValueError(f"business duration must not be negative, got {d}")


@runtime_checkable
class Clock(Protocol):
    """What SLA arithmetic needs from a clock: a business calendar or the 24x7 clock."""

    @property
    def name(self) -> str: ...

    @property
    def timezone(self) -> str: ...

    def is_open(self, t: datetime) -> bool: ...

    def next_open(self, t: datetime) -> datetime: ...

    def add(self, t: datetime, d: timedelta) -> datetime: ...

    def between(self, a: datetime, b: datetime) -> timedelta: ...

    def open_intervals(self, a: datetime, b: datetime) -> Iterator[Interval]: ...

    def closed_days(self, a: datetime, b: datetime) -> list[tuple[date, str]]: ...


def _cut(spans: list[Interval], lo: datetime, hi: datetime) -> list[Interval]:
    """`spans` without the instants in [lo, hi)."""
    if lo >= hi:
        return spans
    kept: list[Interval] = []
    for start, end in spans:
        if end <= lo or start >= hi:
            kept.append((start, end))
            continue
        if start < lo:
            kept.append((start, lo))
        if end > hi:
            kept.append((hi, end))
    return kept


def _as_offsets(span: tuple[int, int]) -> tuple[timedelta, timedelta]:
    return timedelta(minutes=span[0]), timedelta(minutes=span[1])


def _merged(spans: Iterable[Interval]) -> Iterator[Interval]:
    pending: Interval | None = None
    for start, end in spans:
        if pending is not None and pending[1] == start:
            pending = (pending[0], end)
            continue
        if pending is not None:
            yield pending
        pending = (start, end)
    if pending is not None:
        yield pending


class BusinessCalendar:
    """A weekly-hours calendar with holidays and closures, answering in real elapsed business time."""

    def __init__(self, spec: CalendarSpec, *, name: str = "business") -> None:
        self._spec = spec
        self._name = name
        self._zone = _load_zone(spec.timezone)
        weekly: list[list[tuple[int, int]]] = [[] for _ in DAY_KEYS]
        for key, windows in spec.hours.items():
            weekly[DAY_KEYS.index(key)] = sorted(parse_window(w) for w in windows)
        self._weekly = tuple(tuple(map(_as_offsets, day)) for day in weekly)
        self._holidays = spec.holiday_dates()
        closures: dict[date, list[tuple[int, int]]] = {}
        for closure in spec.closures:
            closures.setdefault(closure.date, []).append(closure.minutes)
        self._closures = {day: tuple(map(_as_offsets, sorted(spans))) for day, spans in closures.items()}
        self._days: dict[date, tuple[Interval, ...]] = {}

    def __repr__(self) -> str:
        return f"BusinessCalendar(name={self._name!r}, timezone={self._spec.timezone!r})"

    @property
    def name(self) -> str:
        return self._name

    @property
    def timezone(self) -> str:
        return self._spec.timezone

    @property
    def zone(self) -> ZoneInfo:
        return self._zone

    @property
    def spec(self) -> CalendarSpec:
        return self._spec

    def is_open(self, t: datetime) -> bool:
        u = _utc(t)
        day = self.local_date(u)
        for d in (day - _ONE_DAY, day, day + _ONE_DAY):
            if any(start <= u < end for start, end in self._day(d)):
                return True
        return False

    def next_open(self, t: datetime) -> datetime:
        """`t` itself when open, else the next instant the calendar opens."""
        u = _utc(t)
        start, _ = next(self._spans_from(u))
        return max(start, u)

    def add(self, t: datetime, d: timedelta) -> datetime:
        """The earliest instant `u >= t` with `between(t, u) == d`."""
        u = _utc(t)
        _check_duration(d)
        if not d:
            return u
        left = d
        for start, end in self._spans_from(u):
            start = max(start, u)
            if left <= end - start:
                return start + left
            left -= end - start
        raise AssertionError("unbounded search for open time ended")

    def between(self, a: datetime, b: datetime) -> timedelta:
        """Business time in [a, b); zero when b <= a."""
        return sum((end - start for start, end in self._clipped(a, b)), _ZERO)

    def open_intervals(self, a: datetime, b: datetime) -> Iterator[Interval]:
        """The open spans clipped to [a, b), adjacent windows joined, in order."""
        return _merged(self._clipped(a, b))

    def closed_days(self, a: datetime, b: datetime) -> list[tuple[date, str]]:
        """Local dates touching [a, b) that are not ordinary working days, for "explain this due date".

        The reason is "holiday", "weekend" (a weekday without weekly windows) or "closure" (part of the
        day closed); a holiday wins over "weekend".
        """
        ua, ub = _utc(a, "a"), _utc(b, "b")
        if ub <= ua:
            return []
        found: list[tuple[date, str]] = []
        day, last = self.local_date(ua), self.local_date(ub - timedelta(microseconds=1))
        while day <= last:
            if day in self._holidays:
                found.append((day, "holiday"))
            elif not self._weekly[day.weekday()]:
                found.append((day, "weekend"))
            elif day in self._closures:
                found.append((day, "closure"))
            day += _ONE_DAY
        return found

    def local_date(self, t: datetime) -> date:
        """The calendar-local date of an instant."""
        return _utc(t).astimezone(self._zone).date()

    def is_business_day(self, day: date) -> bool:
        """Whether any window starting on this local date keeps open time after holidays and closures."""
        return bool(self._day(day))

    def _clipped(self, a: datetime, b: datetime) -> Iterator[Interval]:
        ua, ub = _utc(a, "a"), _utc(b, "b")
        if ub <= ua:
            return iter(())
        return self._clip(ua, ub)

    def _clip(self, ua: datetime, ub: datetime) -> Iterator[Interval]:
        first, last = self.local_date(ua) - _ONE_DAY, self.local_date(ub) + _ONE_DAY
        for start, end in self._spans(first, last):
            if start >= ub:
                return
            lo, hi = max(start, ua), min(end, ub)
            if lo < hi:
                yield lo, hi

    def _spans_from(self, u: datetime) -> Iterator[Interval]:
        """Open spans that end after `u`, in order, without end (bounded by MAX_CLOSED_DAYS)."""
        for start, end in self._spans(self.local_date(u) - _ONE_DAY, None):
            if end > u:
                yield start, end

    def _spans(self, first: date, last: date | None) -> Iterator[Interval]:
        """Open spans of the windows starting on `first` .. `last` (or onward), in time order."""
        day, closed_run = first, 0
        while last is None or day <= last:
            spans = self._day(day)
            if spans:
                closed_run = 0
                yield from spans
            elif last is None:
                closed_run += 1
                if closed_run > MAX_CLOSED_DAYS:
                    raise ValueError(
                        f"calendar {self._name!r} has no open time in the {MAX_CLOSED_DAYS} days "
                        f"after {day - timedelta(days=MAX_CLOSED_DAYS)}"
                    )
            day += _ONE_DAY

    def _day(self, day: date) -> tuple[Interval, ...]:
        """The open spans of the windows that start on this local date."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        spans: list[Interval] = []
        if day not in self._holidays:
            midnight = datetime.combine(day, time(), self._zone)
            for start, end in self._weekly[day.weekday()]:
                lo, hi = self._instant(midnight, start), self._instant(midnight, end)
                if lo < hi:
                    spans.append((lo, hi))
            for closing_day in (day, day + _ONE_DAY):
                closing = datetime.combine(closing_day, time(), self._zone)
                for start, end in self._closures.get(closing_day, ()):
                    spans = _cut(spans, self._instant(closing, start), self._instant(closing, end))
        if len(self._days) >= _CACHE_LIMIT:
            self._days.clear()
        result = self._days[day] = tuple(spans)
        return result

    def _instant(self, midnight: datetime, after: timedelta) -> datetime:
        """The UTC instant of a local wall time: first occurrence in a fold, end of the gap in a gap."""
        wall = midnight + after
        instant = wall.astimezone(UTC)
        if instant.astimezone(self._zone).utcoffset() == wall.utcoffset():
            return instant
        return self._gap_end(wall)

    def _gap_end(self, wall: datetime) -> datetime:
        """The transition instant that skips over the non-existent local time `wall`."""
        before = wall.replace(fold=1).astimezone(UTC)
        old_offset = before.astimezone(self._zone).utcoffset()
        lo, hi = 0, int((wall.astimezone(UTC) - before).total_seconds())
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if (before + timedelta(seconds=mid)).astimezone(self._zone).utcoffset() == old_offset:
                lo = mid
            else:
                hi = mid
        return before + timedelta(seconds=hi)


class AlwaysOpen:
    """The 24x7 clock: always open, business time is real time."""

    @property
    def name(self) -> str:
        return "24x7"

    @property
    def timezone(self) -> str:
        return "UTC"

    def __repr__(self) -> str:
        return "AlwaysOpen()"

    def is_open(self, t: datetime) -> bool:
        _utc(t)
        return True

    def next_open(self, t: datetime) -> datetime:
        return _utc(t)

    def add(self, t: datetime, d: timedelta) -> datetime:
        u = _utc(t)
        _check_duration(d)
        return u + d

    def between(self, a: datetime, b: datetime) -> timedelta:
        return max(_utc(b, "b") - _utc(a, "a"), _ZERO)

    def open_intervals(self, a: datetime, b: datetime) -> Iterator[Interval]:
        ua, ub = _utc(a, "a"), _utc(b, "b")
        return iter([(ua, ub)] if ub > ua else [])

    def closed_days(self, a: datetime, b: datetime) -> list[tuple[date, str]]:
        _utc(a, "a")
        _utc(b, "b")
        return []
