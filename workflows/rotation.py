"""Weekly rotations: who of a roster role is on duty at an instant.

A role such as the tech lead may be a rotation: people in order, each on duty for a week from a handoff
at a local weekday and time in an IANA zone. The handoff follows the zone's wall clock, so a 09:00 London
handoff stays at 09:00 through the clock changes; the weeks are counted on local dates from `starting`.
"""

from __future__ import annotations

import datetime as _dt
from datetime import datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from workflows.calendar import DAY_KEYS, zone_named

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_WEEK = timedelta(days=7)


class Rotation(BaseModel):
    """People taking turns a week at a time; `starting` is a handoff day on which the first takes over."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    people: list[str] = Field(min_length=1)
    handoff_day: Weekday
    handoff_time: _dt.time
    timezone: str
    starting: _dt.date

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            zone_named(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown IANA time zone {value!r} (e.g. 'Europe/London')") from None
        return value

    @model_validator(mode="after")
    def _starts_on_a_handoff_day(self) -> Rotation:
        if DAY_KEYS[self.starting.weekday()] != self.handoff_day:
            raise ValueError(
                f"starting {self.starting} is a {DAY_KEYS[self.starting.weekday()]}, "
                f"not the handoff day {self.handoff_day}"
            )
        return self

    def handoff(self, day: _dt.date) -> datetime:
        """The handoff instant on the local date `day` (a wall-clock time the zone skips reads as the
        offset before the change, as zoneinfo does)."""
        return datetime.combine(day, self.handoff_time, tzinfo=zone_named(self.timezone))

    def on_duty(self, at: datetime) -> str:
        """The person on duty at `at`: the one who took over at the latest handoff not after it."""
        local = at.astimezone(zone_named(self.timezone))
        day = local.date() - timedelta(days=(local.weekday() - DAY_KEYS.index(self.handoff_day)) % 7)
        if self.handoff(day) > at:
            day -= _WEEK
        weeks = (day - self.starting).days // 7
        return self.people[weeks % len(self.people)]


Person = str | Rotation


def person_at(who: Person, at: datetime) -> str:
    """The address of a roster entry at `at`: a fixed address, or the rotation's person on duty."""
    return who if isinstance(who, str) else who.on_duty(at)
