"""Property tests of the business-calendar engine over random calendars, instants and durations.

Random weekly windows (lunch breaks, split shifts, windows over midnight and over Sunday night, whole
days), holidays and partial closures, in zones with one-hour, half-hour and no DST shifts. Instants are
drawn near each zone's 2026 transitions as often as elsewhere. A slow reference model, written apart from
the engine, checks `is_open` and `between` on the 15-minute grid every boundary lies on.
"""

from datetime import UTC, date, datetime, time, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflows.calendar import BusinessCalendar, CalendarSpec, Closure

ZONES = ("America/New_York", "Europe/London", "Australia/Lord_Howe", "Asia/Kolkata")
TRANSITIONS = {
    "America/New_York": (datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)),
    "Europe/London": (datetime(2026, 3, 29, 1, tzinfo=UTC), datetime(2026, 10, 25, 1, tzinfo=UTC)),
    "Australia/Lord_Howe": (datetime(2026, 4, 4, 15, tzinfo=UTC), datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    "Asia/Kolkata": (datetime(2026, 6, 1, tzinfo=UTC),),
}
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
STEP = 15
WEEK_STEPS = 7 * 24 * 60 // STEP
SUNDAY = 6 * 24 * 60 // STEP
EPSILON = timedelta(microseconds=1)
GRID = timedelta(minutes=STEP)

Scenario = tuple[CalendarSpec, datetime]
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


@st.composite
def weekly_hours(draw: st.DrawFn, *, dst_nights: bool = False) -> dict[str, list[str]]:
    """Non-overlapping windows on the weekly circle, some touching, some over midnight or Sunday night.

    With `dst_nights`, every boundary lies between Saturday 20:00 and Sunday 03:30, where the sampled
    zones skip or repeat local time; otherwise some do.
    """
    anywhere = st.integers(0, WEEK_STEPS - 1)
    dst_night = st.integers(SUNDAY - 16, SUNDAY + 14)
    point = dst_night if dst_nights else st.one_of(anywhere, dst_night)
    points = sorted(draw(st.sets(point, min_size=2, max_size=16)))
    rotation = 0 if dst_nights else draw(st.one_of(st.just(0), anywhere)) * STEP
    hours: dict[str, list[str]] = {}
    i = 0
    while i + 1 < len(points):
        start = points[i] * STEP
        whole_day_allowed = (start + rotation) % 1440 == 0
        length = min((points[i + 1] - points[i]) * STEP, 1440 if whole_day_allowed else 1440 - STEP)
        day, at = divmod((start + rotation) % (7 * 1440), 1440)
        end = at + length
        hours.setdefault(DAYS[day], []).append(f"{_hhmm(at)}-{_hhmm(end if end <= 1440 else end - 1440)}")
        i += draw(st.sampled_from((1, 2, 2)))
    return hours


@st.composite
def scenarios(draw: st.DrawFn, *, on_grid: bool = False, dst: bool = False) -> Scenario:
    """A random calendar and an instant near its interesting dates (with `dst`, a clock change)."""
    zone = draw(st.sampled_from(ZONES[:3] if dst else ZONES))
    anchors = TRANSITIONS[zone] if dst else (*TRANSITIONS[zone], datetime(2027, 1, 4, tzinfo=UTC))
    anchor = draw(st.sampled_from(anchors))
    reach = 2 if dst else 4
    if on_grid:
        t = anchor + GRID * draw(st.integers(-reach * 96, reach * 96))
    else:
        t = anchor + timedelta(seconds=draw(st.integers(-reach * 86400, reach * 86400)))
    base = t.astimezone(ZoneInfo(zone)).date()
    offsets = st.integers(-3, 30)
    holidays = [base + timedelta(days=n) for n in draw(st.lists(offsets, max_size=4))]
    yearly_offsets = draw(st.lists(offsets, max_size=2))
    yearly = {base.year: [(base + timedelta(days=n)).strftime("%m-%d") for n in yearly_offsets]}
    closures = []
    for n in draw(st.lists(offsets, max_size=4)):
        a, b = sorted(draw(st.sets(st.integers(0, 96), min_size=2, max_size=2)))
        closures.append(Closure(date=base + timedelta(days=n), start=_hhmm(a * STEP), end=_hhmm(b * STEP)))
    hours = draw(weekly_hours(dst_nights=dst))
    spec = CalendarSpec(
        timezone=zone, hours=hours, holidays=holidays, holidays_by_year=yearly, closures=closures
    )
    shown_in = draw(st.sampled_from((UTC, ZoneInfo(zone), timezone(timedelta(hours=-3, minutes=-30)))))
    return spec, t.astimezone(shown_in)


durations = st.one_of(
    st.integers(0, 3 * 3600).map(lambda s: timedelta(seconds=s)),
    st.integers(0, 21 * 24 * 60).map(lambda m: timedelta(minutes=m)),
)


def _is_utc(t: datetime) -> bool:
    return t.tzinfo is UTC


@SETTINGS
@given(scenarios(), durations)
def test_between_undoes_add(scenario: Scenario, d: timedelta) -> None:
    spec, t = scenario
    cal = BusinessCalendar(spec)
    u = cal.add(t, d)
    assert _is_utc(u)
    assert u >= t
    assert cal.between(t, u) == d


@SETTINGS
@given(scenarios(), durations, durations)
def test_add_is_monotonic(scenario: Scenario, d1: timedelta, d2: timedelta) -> None:
    spec, t = scenario
    cal = BusinessCalendar(spec)
    short, long = sorted((d1, d2))
    assert cal.add(t, short) <= cal.add(t, long)


@SETTINGS
@given(scenarios(), durations.filter(bool))
def test_add_lands_in_open_time_or_at_a_window_end(scenario: Scenario, d: timedelta) -> None:
    spec, t = scenario
    cal = BusinessCalendar(spec)
    u = cal.add(t, d)
    assert cal.is_open(u - EPSILON)
    assert cal.between(t, u - EPSILON) == d - EPSILON
    if not cal.is_open(u):
        assert any(end == u for _, end in cal.open_intervals(t, u + GRID))


@SETTINGS
@given(scenarios())
def test_next_open_is_the_first_open_instant(scenario: Scenario) -> None:
    spec, t = scenario
    cal = BusinessCalendar(spec)
    n = cal.next_open(t)
    assert _is_utc(n)
    assert n >= t
    assert cal.is_open(n)
    assert cal.between(t, n) == timedelta(0)
    assert (n == t.astimezone(UTC)) == cal.is_open(t)


@SETTINGS
@given(scenarios(), durations, durations)
def test_between_is_additive(scenario: Scenario, d1: timedelta, d2: timedelta) -> None:
    spec, a = scenario
    cal = BusinessCalendar(spec)
    b = a.astimezone(UTC) + d1
    c = b + d2
    assert cal.between(a, c) == cal.between(a, b) + cal.between(b, c)
    assert cal.between(c, a) == timedelta(0) or a == c
    assert cal.between(a, c) <= c - a


@SETTINGS
@given(scenarios(), durations)
def test_open_intervals_are_maximal_and_sum_to_between(scenario: Scenario, d: timedelta) -> None:
    spec, a = scenario
    cal = BusinessCalendar(spec)
    b = a.astimezone(UTC) + d
    spans = list(cal.open_intervals(a, b))
    assert sum((end - start for start, end in spans), timedelta(0)) == cal.between(a, b)
    for start, end in spans:
        assert _is_utc(start) and _is_utc(end)
        assert a <= start < end <= b
        assert cal.is_open(start) and cal.is_open(end - EPSILON)
        assert end == b or not cal.is_open(end)
    for (_, end), (start, _) in pairwise(spans):
        assert end < start


def _reference_instant(zone: ZoneInfo, day: date, minutes: int) -> datetime:
    """Local wall time to instant: fold=0 when ambiguous, the first existing minute after a gap."""
    wall = datetime.combine(day, time()) + timedelta(minutes=minutes)
    while True:
        u = wall.replace(tzinfo=zone).astimezone(UTC)
        if u.astimezone(zone).replace(tzinfo=None) == wall:
            return u
        wall += timedelta(minutes=1)


def _reference_window(text: str) -> tuple[int, int]:
    start, end = (int(part[:2]) * 60 + int(part[3:]) for part in text.split("-"))
    return start, end if end > start else end + 1440


def _reference_is_open(spec: CalendarSpec, x: datetime) -> bool:
    zone = ZoneInfo(spec.timezone)
    holidays = set(spec.holidays) | {
        date(year, int(md[:2]), int(md[3:])) for year, mds in spec.holidays_by_year.items() for md in mds
    }
    for closure in spec.closures:
        start, end = _reference_window(f"{closure.start}-{closure.end}")
        if _reference_instant(zone, closure.date, start) <= x < _reference_instant(zone, closure.date, end):
            return False
    local_day = x.astimezone(zone).date()
    for day in (local_day - timedelta(days=1), local_day, local_day + timedelta(days=1)):
        if day in holidays:
            continue
        for window in spec.hours.get(DAYS[day.weekday()], []):
            start, end = _reference_window(window)
            if _reference_instant(zone, day, start) <= x < _reference_instant(zone, day, end):
                return True
    return False


def _check_against_reference(spec: CalendarSpec, a: datetime, steps: int) -> None:
    cal = BusinessCalendar(spec)
    expected = timedelta(0)
    for i in range(steps):
        x = a.astimezone(UTC) + GRID * i
        is_open = _reference_is_open(spec, x)
        assert cal.is_open(x) == is_open, x
        expected += GRID if is_open else timedelta(0)
    assert cal.between(a, a.astimezone(UTC) + GRID * steps) == expected


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(on_grid=True), st.integers(0, 2 * 96))
def test_matches_reference_model_on_the_grid(scenario: Scenario, steps: int) -> None:
    _check_against_reference(*scenario, steps)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios(on_grid=True, dst=True), st.integers(0, 2 * 96))
def test_matches_reference_model_across_clock_changes(scenario: Scenario, steps: int) -> None:
    _check_against_reference(*scenario, steps)
