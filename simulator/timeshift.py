"""Moving recorded instants to where the time-skipping server's clock can reach them, and back.

Temporal's test server starts its clock at the present and only moves it forward, so a month of past
tickets is replayed some whole number of 28-year cycles later: between 1901 and 2099 the Gregorian
calendar repeats every 28 years, date for date and weekday for weekday, so business hours, weekends,
holidays and time-zone rules fall on the same local days and hours. The policy's dates (holidays,
closures, rotation start days) move with the tickets; every figure is reported back on the recorded dates.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import TypeVar

from workflows.calendar import CalendarSpec
from workflows.policy import Policy
from workflows.rotation import Rotation

CYCLE_YEARS = 28
D = TypeVar("D", date, datetime)


def cycles_needed(earliest: datetime, now: datetime) -> int:
    """The fewest 28-year cycles that put `earliest` after `now`."""
    years = 0
    while moved(earliest, years) <= now:
        years += CYCLE_YEARS
    return years


def moved(t: D, years: int) -> D:
    """`t` on the same date and time `years` later (UTC for instants); 29 February stays a leap day."""
    if isinstance(t, datetime):
        u = t.astimezone(UTC)
        return u.replace(year=u.year + years)
    return t.replace(year=t.year + years)


def moved_policy(policy: Policy, years: int) -> Policy:
    """The policy with every date it names moved by `years`."""
    if not years:
        return policy
    calendars = {name: _moved_calendar(spec, years) for name, spec in policy.calendars.items()}
    roster = policy.roster.model_copy(
        update={
            role: _moved_person(getattr(policy.roster, role), years)
            for role in ("on_call", "tech_lead", "engineering_manager")
        }
    )
    moved_copy = policy.model_copy(update={"calendars": calendars, "roster": roster})
    return Policy.model_validate(moved_copy.model_dump())


def _moved_calendar(spec: CalendarSpec, years: int) -> CalendarSpec:
    return spec.model_copy(
        update={
            "holidays": [moved(d, years) for d in spec.holidays],
            "holidays_by_year": {year + years: days for year, days in spec.holidays_by_year.items()},
            "closures": [c.model_copy(update={"date": moved(c.date, years)}) for c in spec.closures],
        }
    )


def _moved_person(person: str | Rotation, years: int) -> str | Rotation:
    if isinstance(person, Rotation):
        return person.model_copy(update={"starting": moved(person.starting, years)})
    return person
