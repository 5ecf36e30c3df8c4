"""Worked examples of the business calendar, with every expected instant written out (UTC unless noted)."""

import tomllib
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from workflows.calendar import (
    MAX_CLOSED_DAYS,
    AlwaysOpen,
    BusinessCalendar,
    CalendarSpec,
    Clock,
    default_calendar_spec,
)

NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def hours(n: float) -> timedelta:
    return timedelta(hours=n)


def calendar(
    zone: str, windows: list[str], days: tuple[str, ...] = WEEKDAYS, **extra: object
) -> BusinessCalendar:
    """A calendar with the same windows on each of `days`."""
    hours = {day: list(windows) for day in days}
    return BusinessCalendar(CalendarSpec.model_validate({"timezone": zone, "hours": hours} | extra))


OFFICE = BusinessCalendar(default_calendar_spec())
XMAS = calendar(
    "Europe/London",
    ["09:00-17:00"],
    holidays=["2026-12-25"],
    holidays_by_year={"2026": ["12-28"]},
    closures=[{"date": "2026-12-23", "start": "13:00", "end": "24:00"}],
)
LUNCH = calendar("Europe/London", ["09:00-12:30", "13:30-17:00"])
NIGHTS_NY = calendar("America/New_York", ["22:00-06:00"], days=(*WEEKDAYS, "sat"), holidays=["2026-03-04"])
DAYS_NY = calendar("America/New_York", ["09:00-17:00"])
NIGHTS_LONDON = calendar("Europe/London", ["22:00-06:00"], days=("sat",))


ADD_CASES = [
    pytest.param(OFFICE, utc(2026, 3, 5, 8), hours(1), utc(2026, 3, 5, 10), id="before opening"),
    pytest.param(OFFICE, utc(2026, 3, 5, 18), hours(1), utc(2026, 3, 6, 10), id="after closing"),
    pytest.param(OFFICE, utc(2026, 3, 7, 12), hours(2), utc(2026, 3, 9, 11), id="on a weekend"),
    pytest.param(
        OFFICE, utc(2026, 3, 6, 16), hours(1), utc(2026, 3, 6, 17), id="Friday 16:00 + 1h is Friday 17:00"
    ),
    pytest.param(
        OFFICE,
        utc(2026, 3, 6, 16),
        timedelta(minutes=61),
        utc(2026, 3, 9, 9, 1),
        id="one minute more is Monday",
    ),
    pytest.param(
        OFFICE, utc(2026, 3, 7, 12), timedelta(0), utc(2026, 3, 7, 12), id="zero while closed stays put"
    ),
    pytest.param(
        OFFICE,
        utc(2026, 3, 2, 10),
        hours(32),
        utc(2026, 3, 6, 10),
        id="P4 troubleshooting: 32 business hours",
    ),
    pytest.param(OFFICE, utc(2026, 3, 2, 9), hours(40), utc(2026, 3, 6, 17), id="five business days"),
    pytest.param(
        XMAS, utc(2026, 12, 24, 16), hours(2), utc(2026, 12, 29, 10), id="holiday then holidays_by_year"
    ),
    pytest.param(XMAS, utc(2026, 12, 23, 12), hours(2), utc(2026, 12, 24, 10), id="partial-day closure"),
    pytest.param(LUNCH, utc(2026, 6, 1, 11), hours(1), utc(2026, 6, 1, 13), id="across a lunch break (BST)"),
    pytest.param(
        NIGHTS_NY, utc(2026, 3, 3, 4), hours(8), utc(2026, 3, 4, 4), id="night shift across midnight"
    ),
    pytest.param(
        NIGHTS_NY, utc(2026, 3, 4, 12), hours(1), utc(2026, 3, 6, 4), id="night window on a holiday is closed"
    ),
    pytest.param(
        NIGHTS_NY, utc(2026, 3, 8, 3), hours(7), utc(2026, 3, 8, 10), id="NY spring-forward night holds 7h"
    ),
    pytest.param(
        NIGHTS_NY,
        utc(2026, 3, 8, 3),
        hours(8),
        utc(2026, 3, 10, 3),
        id="NY spring-forward: 8h spills to Monday night",
    ),
    pytest.param(
        NIGHTS_NY, utc(2026, 11, 1, 2), hours(9), utc(2026, 11, 1, 11), id="NY fall-back night holds 9h"
    ),
    pytest.param(
        DAYS_NY, utc(2026, 3, 6, 21), hours(2), utc(2026, 3, 9, 14), id="NY: 09:00 EST, then 09:00 EDT"
    ),
    pytest.param(
        DAYS_NY, utc(2026, 10, 30, 20), hours(2), utc(2026, 11, 2, 15), id="NY: 09:00 EDT, then 09:00 EST"
    ),
    pytest.param(
        NIGHTS_LONDON,
        utc(2026, 3, 28, 22),
        hours(7),
        utc(2026, 3, 29, 5),
        id="London spring-forward night holds 7h",
    ),
    pytest.param(
        NIGHTS_LONDON,
        utc(2026, 10, 24, 21),
        hours(9),
        utc(2026, 10, 25, 6),
        id="London fall-back night holds 9h",
    ),
    pytest.param(
        LUNCH, utc(2026, 3, 27, 16), hours(2), utc(2026, 3, 30, 9), id="London: 09:00 GMT, then 09:00 BST"
    ),
    pytest.param(
        LUNCH, utc(2026, 10, 23, 15), hours(2), utc(2026, 10, 26, 10), id="London: 09:00 BST, then 09:00 GMT"
    ),
    pytest.param(AlwaysOpen(), utc(2026, 3, 7, 12), hours(2), utc(2026, 3, 7, 14), id="24x7"),
]


@pytest.mark.parametrize(("calendar", "start", "duration", "expected"), ADD_CASES)
def test_add(calendar: Clock, start: datetime, duration: timedelta, expected: datetime) -> None:
    assert calendar.add(start, duration) == expected
    assert calendar.between(start, expected) == duration


BETWEEN_CASES = [
    pytest.param(
        OFFICE, utc(2026, 3, 6, 16), utc(2026, 3, 9, 10), hours(2), id="Friday 16:00 to Monday 10:00"
    ),
    pytest.param(OFFICE, utc(2026, 3, 9, 10), utc(2026, 3, 6, 16), timedelta(0), id="reversed is zero"),
    pytest.param(OFFICE, utc(2026, 3, 2), utc(2026, 3, 9), hours(40), id="a week"),
    pytest.param(LUNCH, utc(2026, 6, 1), utc(2026, 6, 8), hours(35), id="a week with a lunch break"),
    pytest.param(XMAS, utc(2026, 12, 21), utc(2026, 12, 28), hours(24 + 4), id="Christmas week"),
    pytest.param(
        NIGHTS_NY, utc(2026, 3, 2), utc(2026, 3, 9), hours(4 * 8 + 7), id="NY nights, spring-forward week"
    ),
    pytest.param(
        NIGHTS_NY, utc(2026, 10, 26), utc(2026, 11, 2), hours(6 * 8 + 1), id="NY nights, fall-back week"
    ),
]


@pytest.mark.parametrize(("calendar", "a", "b", "expected"), BETWEEN_CASES)
def test_between(calendar: Clock, a: datetime, b: datetime, expected: timedelta) -> None:
    assert calendar.between(a, b) == expected


NEXT_OPEN_CASES = [
    pytest.param(OFFICE, utc(2026, 3, 5, 12, 34, 56), utc(2026, 3, 5, 12, 34, 56), id="open now"),
    pytest.param(OFFICE, utc(2026, 3, 6, 17), utc(2026, 3, 9, 9), id="closing instant is closed"),
    pytest.param(OFFICE, utc(2026, 3, 7, 12), utc(2026, 3, 9, 9), id="Saturday"),
    pytest.param(XMAS, utc(2026, 12, 24, 17), utc(2026, 12, 29, 9), id="over Christmas"),
    pytest.param(
        NIGHTS_NY, utc(2026, 3, 4, 12), utc(2026, 3, 6, 3), id="NY after the holiday's night window"
    ),
]


@pytest.mark.parametrize(("calendar", "t", "expected"), NEXT_OPEN_CASES)
def test_next_open(calendar: Clock, t: datetime, expected: datetime) -> None:
    assert calendar.next_open(t) == expected


def test_inputs_in_any_zone_and_outputs_in_utc() -> None:
    start = datetime(2026, 3, 6, 11, tzinfo=NEW_YORK)
    result = DAYS_NY.add(start, hours(7))
    assert result == utc(2026, 3, 9, 14) and result.tzinfo is UTC
    assert DAYS_NY.next_open(datetime(2026, 3, 7, tzinfo=LONDON)).tzinfo is UTC
    assert AlwaysOpen().add(start, hours(1)) == utc(2026, 3, 6, 17)


def test_holiday_closes_the_night_window_that_starts_on_it() -> None:
    assert NIGHTS_NY.is_open(datetime(2026, 3, 4, 3, tzinfo=NEW_YORK))
    assert not NIGHTS_NY.is_open(datetime(2026, 3, 4, 23, tzinfo=NEW_YORK))
    assert NIGHTS_NY.is_open(datetime(2026, 3, 5, 23, tzinfo=NEW_YORK))


def test_window_start_in_a_dst_gap_opens_when_the_gap_ends() -> None:
    cal = calendar("America/New_York", ["02:30-04:00"], days=("sun",))
    assert list(cal.open_intervals(utc(2026, 3, 8), utc(2026, 3, 9))) == [
        (utc(2026, 3, 8, 7), utc(2026, 3, 8, 8))
    ]
    assert not cal.is_open(utc(2026, 3, 8, 6, 59))


def test_window_wholly_in_a_dst_gap_is_empty_that_day() -> None:
    cal = calendar("Europe/London", ["01:15-01:45", "12:00-13:00"], days=("sun",))
    assert list(cal.open_intervals(utc(2026, 3, 29), utc(2026, 3, 30))) == [
        (utc(2026, 3, 29, 11), utc(2026, 3, 29, 12))
    ]


def test_ambiguous_window_boundaries_take_the_first_occurrence() -> None:
    cal = calendar("America/New_York", ["01:00-01:30", "01:30-03:00"], days=("sun",))
    first_pass, rest = utc(2026, 11, 1, 5), utc(2026, 11, 1, 8)
    assert list(cal.open_intervals(utc(2026, 11, 1), utc(2026, 11, 2))) == [(first_pass, rest)]
    assert cal.between(utc(2026, 11, 1), utc(2026, 11, 2)) == hours(3)


def test_lord_howe_half_hour_shift() -> None:
    cal = calendar("Australia/Lord_Howe", ["22:00-06:00"], days=("sat",))
    assert cal.between(utc(2026, 10, 3), utc(2026, 10, 5)) == hours(7.5)
    assert cal.between(utc(2026, 4, 4), utc(2026, 4, 6)) == hours(8.5)


def test_open_intervals_join_adjacent_windows_across_midnight() -> None:
    cal = calendar("UTC", ["20:00-24:00"], days=("mon",), closures=[])
    joined = calendar("UTC", ["00:00-24:00"], days=("mon", "tue"))
    assert list(cal.open_intervals(utc(2026, 3, 2), utc(2026, 3, 4))) == [
        (utc(2026, 3, 2, 20), utc(2026, 3, 3))
    ]
    assert list(joined.open_intervals(utc(2026, 3, 1), utc(2026, 3, 5))) == [
        (utc(2026, 3, 2), utc(2026, 3, 4))
    ]
    assert list(AlwaysOpen().open_intervals(utc(2026, 3, 1), utc(2026, 3, 2))) == [
        (utc(2026, 3, 1), utc(2026, 3, 2))
    ]


def test_closed_days_explain_what_was_skipped() -> None:
    assert XMAS.closed_days(utc(2026, 12, 23, 12), utc(2026, 12, 29, 10)) == [
        (date(2026, 12, 23), "closure"),
        (date(2026, 12, 25), "holiday"),
        (date(2026, 12, 26), "weekend"),
        (date(2026, 12, 27), "weekend"),
        (date(2026, 12, 28), "holiday"),
    ]
    assert AlwaysOpen().closed_days(utc(2026, 12, 23), utc(2026, 12, 30)) == []


def test_is_business_day_and_local_date() -> None:
    assert XMAS.is_business_day(date(2026, 12, 24)) and XMAS.is_business_day(date(2026, 12, 23))
    assert not XMAS.is_business_day(date(2026, 12, 25)) and not XMAS.is_business_day(date(2026, 12, 26))
    assert DAYS_NY.local_date(utc(2026, 3, 9, 3)) == date(2026, 3, 8)


def test_both_clocks_satisfy_the_protocol() -> None:
    assert isinstance(OFFICE, Clock) and isinstance(AlwaysOpen(), Clock)
    assert (OFFICE.name, OFFICE.timezone, AlwaysOpen().name) == ("business", "UTC", "24x7")


@pytest.mark.parametrize("clock", [OFFICE, AlwaysOpen()], ids=["business", "24x7"])
def test_naive_instants_and_negative_durations_are_refused(clock: Clock) -> None:
    naive = datetime(2026, 3, 5, 12)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.add(naive, hours(1))
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.between(utc(2026, 3, 5), naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        clock.open_intervals(naive, utc(2026, 3, 6))
    with pytest.raises(ValueError, match="negative"):
        clock.add(utc(2026, 3, 5), -hours(1))


def test_a_calendar_closed_for_years_is_an_error_not_a_hang() -> None:
    mondays = [date(2026, 3, 2) + timedelta(weeks=n) for n in range(MAX_CLOSED_DAYS // 7 + 2)]
    cal = calendar("UTC", ["09:00-17:00"], days=("mon",), holidays=mondays)
    with pytest.raises(ValueError, match="no open time"):
        cal.next_open(utc(2026, 3, 1))
    with pytest.raises(ValueError, match="no open time"):
        cal.add(utc(2026, 3, 1), hours(1))
    assert cal.between(utc(2026, 3, 1), utc(2028, 1, 1)) == timedelta(0)


TOML_EXAMPLE = """
[calendars.emea]
timezone = "Europe/London"
holidays = [2026-12-25, 2026-12-28]
closures = [
  { date = 2026-12-24, start = "13:00", end = "24:00" },
]

[calendars.emea.hours]
mon = ["09:00-12:30", "13:30-17:00"]
tue = ["09:00-12:30", "13:30-17:00"]
wed = ["09:00-12:30", "13:30-17:00"]
thu = ["09:00-12:30", "13:30-17:00"]
fri = ["09:00-12:30", "13:30-16:00"]
sat = ["22:00-06:00"]

[calendars.emea.holidays_by_year]
2027 = ["01-01", "12-27"]
"""


def test_policy_toml_parses_and_round_trips_through_json() -> None:
    spec = CalendarSpec.model_validate(tomllib.loads(TOML_EXAMPLE)["calendars"]["emea"])
    assert spec.holiday_dates() == {
        date(2026, 12, 25),
        date(2026, 12, 28),
        date(2027, 1, 1),
        date(2027, 12, 27),
    }
    assert CalendarSpec.model_validate_json(spec.model_dump_json()) == spec


def test_the_documented_worked_example() -> None:
    """docs/calendar.md: a P4 opened Wednesday 23 December 2026 11:00 London is due 31 December 10:30."""
    cal = BusinessCalendar(CalendarSpec.model_validate(tomllib.loads(TOML_EXAMPLE)["calendars"]["emea"]))
    opened = datetime(2026, 12, 23, 11, tzinfo=LONDON)
    due = cal.add(opened, hours(32))
    assert due == utc(2026, 12, 31, 10, 30)
    assert cal.closed_days(opened, due) == [
        (date(2026, 12, 24), "closure"),
        (date(2026, 12, 25), "holiday"),
        (date(2026, 12, 27), "weekend"),
        (date(2026, 12, 28), "holiday"),
    ]
    assert cal.between(opened, utc(2026, 12, 24)) == hours(5)
    assert cal.between(utc(2026, 12, 26), utc(2026, 12, 28)) == hours(8)


BAD_SPECS = [
    pytest.param(
        {"timezone": "Mars/Olympus_Mons"}, ("timezone",), "unknown IANA time zone", id="unknown zone"
    ),
    pytest.param({"timezone": "localtime"}, ("timezone",), "IANA", id="host zone"),
    pytest.param({"timezone": "America"}, ("timezone",), "unknown IANA time zone", id="zone folder"),
    pytest.param({"hours": {"mon": ["25:00-26:00"]}}, ("hours",), "mon: '25:00' is outside", id="hour 25"),
    pytest.param(
        {"hours": {"tue": ["9-17"]}}, ("hours",), "tue: window '9-17' is not HH:MM-HH:MM", id="not a window"
    ),
    pytest.param(
        {"hours": {"mon": ["24:00-06:00"]}}, ("hours",), "outside 00:00..23:59", id="start at 24:00"
    ),
    pytest.param({"hours": {"mon": ["09:00-09:00"]}}, ("hours",), "empty", id="empty window"),
    pytest.param(
        {"hours": {"monday": ["09:00-17:00"]}}, ("hours",), "unknown day 'monday'", id="unknown day"
    ),
    pytest.param({"hours": {}}, ("hours",), "no opening hours", id="no hours"),
    pytest.param(
        {"hours": {"mon": ["09:00-13:00", "12:00-17:00"]}},
        ("hours",),
        "mon 09:00-13:00 and mon 12:00-17:00",
        id="overlap",
    ),
    pytest.param(
        {"hours": {"mon": ["22:00-06:00"], "tue": ["05:00-09:00"]}},
        ("hours",),
        "overlap",
        id="overlap past midnight",
    ),
    pytest.param(
        {"hours": {"sun": ["20:00-02:00"], "mon": ["01:00-09:00"]}},
        ("hours",),
        "overlap",
        id="overlap Sunday night",
    ),
    pytest.param(
        {"holidays_by_year": {2026: ["02-30"]}},
        ("holidays_by_year",),
        "'02-30' is not a date",
        id="no 30 February",
    ),
    pytest.param({"holidays": ["2026-13-01"]}, ("holidays", 0), "date", id="bad holiday"),
    pytest.param(
        {"closures": [{"date": "2026-12-24", "start": "17:00", "end": "13:00"}]},
        ("closures", 0),
        "end 13:00 must be after start",
        id="closure backwards",
    ),
    pytest.param(
        {"closures": [{"date": "2026-12-24", "end": "24:30"}]},
        ("closures", 0, "end"),
        "outside",
        id="closure bad end",
    ),
    pytest.param({"holiday": []}, ("holiday",), "Extra inputs", id="typo in a field"),
]


@pytest.mark.parametrize(("change", "loc", "message"), BAD_SPECS)
def test_bad_spec_names_the_field(change: dict[str, object], loc: tuple[object, ...], message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        CalendarSpec.model_validate({"timezone": "UTC", "hours": {"mon": ["09:00-17:00"]}} | change)
    errors = caught.value.errors()
    assert [e["loc"] for e in errors] == [loc]
    assert message in errors[0]["msg"]


def test_three_weeks_of_business_time_cross_the_spring_clock_change() -> None:
    """From a cold calendar, as a case's first deadline is; what it costs is `python -m bench.calendar`."""
    spec = CalendarSpec(
        timezone="Europe/London", hours={day: ["09:00-12:30", "13:30-17:00"] for day in WEEKDAYS}
    )
    # Friday 20 March: 6 h left; two weeks of 35 h (BST from the 29th); four days of 7 h; 1 h on the
    # Friday after, to 10:00 BST.
    assert BusinessCalendar(spec).add(utc(2026, 3, 20, 10), hours(3 * 35)) == utc(2026, 4, 10, 9)
