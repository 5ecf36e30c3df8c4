"""The support policy: calendars, per-priority clocks and targets, escalation levels, rosters.

A policy is data, read from a TOML file by an activity and snapshotted into the case at ingestion, so a
running case keeps the rules it started with while new cases pick up a changed file.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from workflows.calendar import CalendarSpec
from workflows.models import ContactChannel, Milestone, Priority, RecurringMilestone
from workflows.rotation import Person, person_at

DEFAULT_POLICY_FILE = Path(__file__).resolve().parent.parent / "policies" / "default.toml"


class ClockKind(StrEnum):
    ALWAYS = "24x7"
    BUSINESS = "business"


class Role(StrEnum):
    """Who a notification is for; the policy's roster turns a role into an address."""

    CUSTOMER = "customer"
    ASSIGNEE = "assignee"
    TAM = "tam"
    TECH_LEAD = "tech_lead"
    TEAM = "team"
    ENGINEERING_MANAGER = "engineering_manager"


Duration = Annotated[timedelta, Field(gt=timedelta(0))]
TamMoment = Literal["open", "escalation", "resolution"]
Channel = Literal["email", "call", "page", "chat"]


class PolicyModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PriorityPolicy(PolicyModel):
    clock: ClockKind
    contact: list[ContactChannel]
    targets: dict[Milestone, Duration]
    tam_told: list[TamMoment] = Field(default_factory=list)
    every: dict[RecurringMilestone, Duration] = Field(default_factory=dict)
    """Recurring milestones: one cycle per interval while engaged and not paused (e.g. a P1 customer
    update every 30 minutes)."""

    @model_validator(mode="after")
    def _every_milestone_has_a_target(self) -> PriorityPolicy:
        missing = [m.value for m in Milestone if m not in self.targets]
        if missing:
            raise ValueError(f"targets missing for milestones: {', '.join(missing)}")
        return self


class EscalationLevel(PolicyModel):
    """A level is raised once per engagement when the case is still unresolved `after` engagement.

    With `ack_within`, its owner must acknowledge it: unacknowledged, the owner is told again every
    `ack_within`, `repeat` times, and then the next level is raised early (one more `ack_within` on).
    """

    name: str
    after: Duration
    owner: Role = Role.TECH_LEAD
    notify: list[Role] = Field(default_factory=lambda: [Role.TECH_LEAD, Role.TAM])
    priorities: list[Priority] = Field(default_factory=lambda: list(Priority))
    ack_within: Duration | None = None
    repeat: int = Field(default=0, ge=0, le=20)

    @model_validator(mode="after")
    def _repeats_need_a_deadline(self) -> EscalationLevel:
        if self.repeat and self.ack_within is None:
            raise ValueError(f"escalation {self.name}: repeat needs ack_within (how long to wait each time)")
        return self


class FollowUpPolicy(PolicyModel):
    """How long a resolved case waits for the customer's confirmation.

    Counted in business days of the customer's calendar, unless `window` (real time) is given.
    """

    window_business_days: int = Field(default=5, ge=1)
    reminder_after_business_days: int = Field(default=3, ge=1)
    window: timedelta | None = None
    reminder_after: timedelta | None = None


# Who hears of each routed message kind when the policy does not say.
DEFAULT_ROUTES: Mapping[str, tuple[Role, ...]] = {
    "case_opened": (Role.CUSTOMER,),
    "case_queued": (Role.CUSTOMER,),
    "milestone_warning": (Role.ASSIGNEE,),
    "milestone_breach": (Role.ASSIGNEE, Role.TAM),
    "pause_reminder": (Role.CUSTOMER,),
    "follow_up": (Role.CUSTOMER,),
    "reminder": (Role.CUSTOMER,),
    "case_reopened": (Role.ASSIGNEE, Role.TAM),
    "case_closed": (Role.CUSTOMER,),
}


def _default_routes() -> dict[str, list[Role]]:
    return {kind: list(roles) for kind, roles in DEFAULT_ROUTES.items()}


def _default_channels() -> dict[Role, list[Channel]]:
    return {
        Role.ASSIGNEE: ["email"],
        Role.TAM: ["email"],
        Role.TECH_LEAD: ["page", "email"],
        Role.ENGINEERING_MANAGER: ["page", "email"],
        Role.TEAM: ["chat"],
    }


class Routing(PolicyModel):
    """Who hears about what: the roles told of each message kind, and the channels each role is reached on.

    Escalations notify their level's `notify` roles, the TAM hears what `tam_told` says, and the customer
    is reached by the priority's `contact` channels at engagement; everything else is routed here.
    """

    kinds: dict[str, list[Role]] = Field(default_factory=_default_routes)
    channels: dict[Role, list[Channel]] = Field(default_factory=_default_channels)

    def roles_for(self, kind: str, default: Sequence[Role] = ()) -> list[Role]:
        """The roles told of `kind`: the policy's, else the built-in route, else `default`."""
        if kind in self.kinds:
            return self.kinds[kind]
        return list(DEFAULT_ROUTES.get(kind, default))

    def channels_for(self, role: Role) -> list[Channel]:
        return self.channels.get(role, ["email"])


class Roster(PolicyModel):
    """Addresses of the support organisation; the people roles may each be a weekly rotation."""

    on_call: Person = "oncall@support.example"
    team_queue: str = "support-queue@support.example"
    tech_lead: Person = "tech-lead@support.example"
    engineering_manager: Person = "eng-manager@support.example"
    team_channel: str = "#support-standup"
    team_email: str = "support-team@support.example"

    def on_call_at(self, at: datetime) -> str:
        return person_at(self.on_call, at)

    def tech_lead_at(self, at: datetime) -> str:
        return person_at(self.tech_lead, at)

    def engineering_manager_at(self, at: datetime) -> str:
        return person_at(self.engineering_manager, at)


class Policy(PolicyModel):
    name: str = "default"
    default_calendar: str = "business"
    calendars: dict[str, CalendarSpec]
    priorities: dict[Priority, PriorityPolicy]
    escalations: list[EscalationLevel]
    follow_up: FollowUpPolicy = Field(default_factory=FollowUpPolicy)
    roster: Roster = Field(default_factory=Roster)
    routing: Routing = Field(default_factory=Routing)
    warn_at: float = Field(default=0.75, gt=0, lt=1)
    pause_reminder_business_days: int = Field(default=2, ge=1)
    # Long-lived cases start a fresh history past this many events (or when the server suggests it).
    continue_as_new_after_events: int = Field(default=10_000, ge=100)
    # How many recent timeline entries a case keeps in its state; the full timeline is in PostgreSQL.
    timeline_window: int = Field(default=200, ge=10)

    @model_validator(mode="after")
    def _complete(self) -> Policy:
        if self.default_calendar not in self.calendars:
            raise ValueError(f"default_calendar {self.default_calendar!r} is not among the calendars")
        missing = [p.value for p in Priority if p not in self.priorities]
        if missing:
            raise ValueError(f"priorities missing: {', '.join(missing)}")
        names = [level.name for level in self.escalations]
        if len(names) != len(set(names)):
            raise ValueError(f"escalation level names must be unique: {', '.join(names)}")
        return self

    def calendar_spec(self, name: str | None) -> CalendarSpec:
        return self.calendars[name or self.default_calendar]

    def for_priority(self, priority: Priority) -> PriorityPolicy:
        return self.priorities[priority]

    def levels_for(self, priority: Priority) -> list[EscalationLevel]:
        return sorted((lv for lv in self.escalations if priority in lv.priorities), key=lambda lv: lv.after)


def load_policy(path: Path | str | None = None) -> Policy:
    """Read and validate a policy file; errors name the bad field."""
    with Path(path or DEFAULT_POLICY_FILE).open("rb") as f:
        return Policy.model_validate(tomllib.load(f))
