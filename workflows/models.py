"""The wire contract: what upstream systems send, what engineers send, what operators read.

Every model is additive-only: new fields get defaults so older callers and histories keep working.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import AwareDatetime, BaseModel, ConfigDict, EmailStr, Field, StringConstraints, field_validator

from workflows.safe_text import is_storable, shown

TASK_QUEUE = "abh-cases"
WORKFLOW_TYPE = "CaseWorkflow"


def case_workflow_id(ticket_id: str) -> str:
    return f"case-{ticket_id}"


class Priority(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class Phase(StrEnum):
    TRIAGE = "triage"
    QUEUED = "queued"
    ENGAGED = "engaged"
    AWAITING_CONFIRMATION = "awaiting_confirmation"
    CLOSED = "closed"


class Milestone(StrEnum):
    FIRST_RESPONSE = "first_response"
    DATA_VERIFIED = "data_verified"
    TROUBLESHOOTING = "troubleshooting"


class RecurringMilestone(StrEnum):
    """A milestone met again every interval of the policy's `every`, one cycle at a time."""

    CUSTOMER_UPDATE = "customer_update"


class MilestoneState(StrEnum):
    PENDING = "pending"
    WARNED = "warned"
    BREACHED = "breached"
    MET = "met"
    MET_LATE = "met_late"


class ContactChannel(StrEnum):
    CALL = "call"
    EMAIL = "email"
    CHAT = "chat"
    PORTAL = "portal"


class CloseReason(StrEnum):
    CONFIRMED = "confirmed"
    NO_RESPONSE = "no_response"
    CANCELLED = "cancelled"


class EventType(StrEnum):
    """What a timeline entry records; the `type` of every entry, in the status query and PostgreSQL."""

    OPENED = "opened"
    ASSIGNED = "assigned"
    QUEUED = "queued"
    ENGAGED = "engaged"
    CUSTOMER_CONTACTED = "customer_contacted"
    CUSTOMER_UPDATED = "customer_updated"
    UPDATE_WARNING = "update_warning"
    UPDATE_BREACHED = "update_breached"
    MILESTONE_WARNING = "milestone_warning"
    SLA_BREACHED = "sla_breached"
    MILESTONE_VERIFIED = "milestone_verified"
    ESCALATED = "escalated"
    ESCALATION_REPEATED = "escalation_repeated"
    ESCALATION_ACKNOWLEDGED = "escalation_acknowledged"
    PRIORITY_CHANGED = "priority_changed"
    PAUSED = "paused"
    PAUSE_REMINDER_SENT = "pause_reminder_sent"
    RESUMED = "resumed"
    RESOLVED = "resolved"
    FOLLOW_UP_SENT = "follow_up_sent"
    REMINDER_SENT = "reminder_sent"
    CUSTOMER_CONFIRMED = "customer_confirmed"
    CUSTOMER_REJECTED = "customer_rejected"
    NOTE = "note"
    CANCELLED = "cancelled"
    CLOSED = "closed"
    REJECTED = "rejected"
    SLA_CLOCK = "sla_clock"


class NotificationKind(StrEnum):
    """What a notification is about: its template (`activities/templates/<kind>.txt`) and its routing."""

    CASE_QUEUED = "case_queued"
    CASE_OPENED = "case_opened"
    CUSTOMER_CALL = "customer_call"
    TAM_UPDATE = "tam_update"
    CASE_REOPENED = "case_reopened"
    MILESTONE_WARNING = "milestone_warning"
    MILESTONE_BREACH = "milestone_breach"
    ESCALATION = "escalation"
    ESCALATION_REPEATED = "escalation_repeated"
    PAUSE_REMINDER = "pause_reminder"
    FOLLOW_UP = "follow_up"
    REMINDER = "reminder"
    CASE_CLOSED = "case_closed"
    STANDUP_DIGEST = "standup_digest"


class Strict(BaseModel):
    """Wire models refuse unknown fields so a typo is an error, not a silent no-op."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    @field_validator("*", mode="after")
    @classmethod
    def _storable(cls, value: Any) -> Any:
        """PostgreSQL text holds neither NUL nor lone surrogates: such text is refused here, naming the
        field, rather than accepted and stuck in a retry."""
        if isinstance(value, str) and not is_storable(value):
            raise ValueError("text must not contain NUL (\\x00) or lone surrogate characters")
        return value


EARLIEST_OPENED_AT = datetime(2000, 1, 1, tzinfo=UTC)
LATEST_OPENED_AT = datetime(2200, 1, 1, tzinfo=UTC)
# How far an upstream clock may run ahead of Temporal's before an `opened_at` counts as in the future.
CLOCK_SKEW = timedelta(minutes=5)

TicketId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$")]
SHORT_TEXT_MAX, NOTE_MAX = 200, 10_000
ShortText = Annotated[str, StringConstraints(min_length=1, max_length=SHORT_TEXT_MAX)]
Note = Annotated[str, StringConstraints(max_length=NOTE_MAX)]
Actor = Annotated[str, StringConstraints(min_length=1, max_length=200)]


class Customer(Strict):
    account_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    name: ShortText
    contact_email: EmailStr
    contact_phone: Annotated[str, StringConstraints(pattern=r"^\+?[0-9 ()./-]{3,32}$")] | None = None
    tam_email: EmailStr | None = None
    calendar: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None


class CaseInput(Strict):
    """One ticket, as an upstream system opens it."""

    ticket_id: TicketId
    priority: Priority
    subject: ShortText
    description: Note | None = None
    customer: Customer
    opened_at: AwareDatetime | None = None
    assignee: Actor | None = None
    source: ShortText | None = None

    @field_validator("opened_at", mode="after")
    @classmethod
    def _plausible_and_utc(cls, value: datetime | None) -> datetime | None:
        """Kept in UTC so every rendering is unambiguous; far-off years are typos, not tickets."""
        if value is None:
            return None
        if not EARLIEST_OPENED_AT <= value <= LATEST_OPENED_AT:
            raise ValueError(f"must be between {EARLIEST_OPENED_AT:%Y} and {LATEST_OPENED_AT:%Y}")
        return value.astimezone(UTC)


# Engineer and customer actions: one model per action, so each can grow on its own. A model is the whole
# definition of its action: its name on the wire, the phases that accept it, whether it can move a due
# instant, what it means (its docstring) and any rule of its own (`refusal`). Defining one registers it;
# workflows/actions.py makes every registered action a signal, an update, a CLI command and a README line.

OPEN_PHASES = frozenset({Phase.TRIAGE, Phase.QUEUED, Phase.ENGAGED, Phase.AWAITING_CONFIRMATION})
ENGAGED = frozenset({Phase.ENGAGED})
AWAITING = frozenset({Phase.AWAITING_CONFIRMATION})


class ActionPayload(Strict):
    action: ClassVar[str]
    accepted_in: ClassVar[frozenset[Phase]] = OPEN_PHASES
    while_paused: ClassVar[bool | None] = None
    """Only while paused (True), only while not paused (False), either (None)."""
    moves_clocks: ClassVar[bool] = False
    """Whether it can move a due instant (priority, phase, engagement, pause): a burst of actions that
    cannot costs no calendar arithmetic."""

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        ACTIONS[cls.action] = cls

    def refusal(self, case: CaseStatus) -> str | None:
        """Why `case` cannot take this action now, beyond its phase; None when it can."""
        return None


ACTIONS: dict[str, type[ActionPayload]] = {}
"""Every action of the wire contract by name, in the order they are defined here."""


class Assign(ActionPayload):
    """(Re)assign the case."""

    action = "assign"
    assignee: Actor

    def refusal(self, case: CaseStatus) -> str | None:
        return f"already assigned to {self.assignee}" if self.assignee == case.assignee else None


class CustomerContacted(ActionPayload):
    """First response done: verifies `first_response`."""

    action = "customer_contacted"
    accepted_in = ENGAGED
    channel: ContactChannel
    note: Note | None = None


class CustomerUpdated(ActionPayload):
    """The customer was given a progress update (a call, an e-mail, a post on the bridge): meets the
    current cycle of a recurring `customer_update` milestone."""

    action = "customer_updated"
    accepted_in = ENGAGED
    moves_clocks = True
    note: Note | None = None
    by: Actor | None = None


class MilestoneVerified(ActionPayload):
    """A milestone checkpoint is verified; milestones are verified in order."""

    action = "milestone_verified"
    accepted_in = ENGAGED
    milestone: Milestone
    note: Note | None = None
    by: Actor | None = None

    def refusal(self, case: CaseStatus) -> str | None:
        for ms in case.milestones:
            done = ms.state in (MilestoneState.MET, MilestoneState.MET_LATE)
            if ms.name is self.milestone:
                return f"milestone {self.milestone.value} was already verified" if done else None
            if not done:
                return (
                    f"milestones are verified in order; verify {ms.name.value} before {self.milestone.value}"
                )
        return None


class EscalationAcknowledged(ActionPayload):
    """The owner of a raised escalation level takes it on: its repeats stop and the next level is not
    raised early."""

    action = "escalation_acknowledged"
    accepted_in = ENGAGED
    moves_clocks = True
    level: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    by: Actor
    note: Note | None = None

    def refusal(self, case: CaseStatus) -> str | None:
        raised = [e for e in case.escalations if e.engagement == case.engagement]
        found = next((e for e in raised if e.level == self.level), None)
        if found is None:
            names = ", ".join(e.level for e in raised) or "none"
            return f"no {shown(self.level, 64)} escalation is raised in this engagement (raised: {names})"
        if found.acknowledged_at is not None:
            return f"{found.level} was already acknowledged by {found.acknowledged_by}"
        return None


class Resolved(ActionPayload):
    """The engineer says it is fixed: the customer is sent the follow-up asking to confirm."""

    action = "resolved"
    accepted_in = ENGAGED
    moves_clocks = True
    summary: Annotated[str, StringConstraints(min_length=1, max_length=NOTE_MAX)]
    by: Actor | None = None


class CustomerConfirmed(ActionPayload):
    """The customer confirms the fix: the case closes (after the system-sent follow-up)."""

    action = "customer_confirmed"
    accepted_in = AWAITING
    moves_clocks = True
    note: Note | None = None


class CustomerRejected(ActionPayload):
    """The customer says it is not fixed: the case reopens, a new engagement."""

    action = "customer_rejected"
    accepted_in = AWAITING
    moves_clocks = True
    note: Note | None = None


class ChangePriority(ActionPayload):
    """Re-triage with the new priority, counted from the original `opened_at`."""

    action = "change_priority"
    moves_clocks = True
    priority: Priority
    reason: Note | None = None

    def refusal(self, case: CaseStatus) -> str | None:
        return f"already {self.priority.value}" if self.priority == case.priority else None


class WaitingOnCustomer(ActionPayload):
    """Pause the resolution clocks while the customer owes us an answer."""

    action = "waiting_on_customer"
    accepted_in = ENGAGED
    while_paused = False
    moves_clocks = True
    note: Note | None = None


class CustomerReplied(ActionPayload):
    """The customer answered: the resolution clocks run again."""

    action = "customer_replied"
    accepted_in = ENGAGED
    while_paused = True
    moves_clocks = True
    note: Note | None = None


class AddNote(ActionPayload):
    """A note on the case's timeline."""

    action = "add_note"
    text: Annotated[str, StringConstraints(min_length=1, max_length=NOTE_MAX)]
    by: Actor | None = None


class Cancel(ActionPayload):
    """A duplicate or withdrawn ticket: closes at once, no follow-up, every timer stopped."""

    action = "cancel"
    moves_clocks = True
    reason: Annotated[str, StringConstraints(min_length=1, max_length=2_000)]
    by: Actor | None = None


class TimelineEntry(BaseModel):
    seq: int
    at: datetime
    type: str
    actor: str | None = None
    detail: str = ""
    data: dict[str, Any] = Field(default_factory=dict)


class Pause(BaseModel):
    started_at: datetime
    ended_at: datetime | None = None
    note: str | None = None
    reminder_due_at: datetime | None = None
    reminded_at: datetime | None = None


class ClosedDay(BaseModel):
    day: date
    reason: str


class DueExplanation(BaseModel):
    """How a due instant was reached, so an engineer can check it by hand."""

    due_at: datetime
    clock: str
    starts_at: datetime
    start: str
    target: timedelta
    paused: timedelta = timedelta(0)
    pauses: list[Pause] = Field(default_factory=list)
    closed_days: list[ClosedDay] = Field(default_factory=list)


class MilestoneStatus(BaseModel):
    name: Milestone
    target: timedelta
    due_at: datetime | None = None
    warn_at: datetime | None = None
    warned_at: datetime | None = None
    verified_at: datetime | None = None
    verified_by: str | None = None
    state: MilestoneState = MilestoneState.PENDING
    explanation: DueExplanation | None = None


class Escalation(BaseModel):
    level: str
    engagement: int
    raised_at: datetime
    due_at: datetime
    ticket_key: str
    notified: list[str] = Field(default_factory=list)
    owner: str | None = None
    """Who the level's ticket went to (the person on duty when it was raised)."""
    awaits_acknowledgement: bool = False
    """Raised since escalations are acknowledged; older cases' escalations wait for nobody."""
    acknowledged_at: datetime | None = None
    acknowledged_by: str | None = None
    repeats: int = 0
    """How many times the owner was told again for want of an acknowledgement."""
    repeat_due_at: datetime | None = None
    next_level_due_at: datetime | None = None
    """Unacknowledged by then, the next level is raised early."""

    @property
    def waiting(self) -> bool:
        return self.awaits_acknowledgement and self.acknowledged_at is None


class SlaEventKind(StrEnum):
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    RETARGET = "retarget"
    """A priority change: the clock's start, target and paused time measured anew."""
    FULFIL = "fulfil"
    BREACH = "breach"


ESCALATION_CLOCK = "escalation"


class SlaClockEvent(BaseModel):
    """One moment of one SLA clock (a milestone, or `escalation`: the engagement's clock towards its next
    level), as `sla_clock` timeline entries and the sla_events table keep it. Start and retarget carry
    the clock's start, target and paused time so far; a resume carries the time that pause added; each
    carries the due instant that follows, when the clock is running."""

    clock: str
    event: SlaEventKind
    engagement: int = 0
    level: str | None = None
    starts_at: datetime | None = None
    target: timedelta | None = None
    paused: timedelta = timedelta(0)
    due_at: datetime | None = None
    late: bool = False


class CycleState(StrEnum):
    PENDING = "pending"
    WARNED = "warned"
    MET = "met"
    BREACHED = "breached"
    STOPPED = "stopped"
    """Ended by a pause, the resolution or a change of priority: neither met nor missed."""


class Cycle(BaseModel):
    """One interval of a recurring milestone: met by the first update inside it, else breached at its end."""

    milestone: RecurringMilestone
    number: int
    engagement: int
    starts_at: datetime
    warn_at: datetime
    due_at: datetime
    state: CycleState = CycleState.PENDING
    ended_at: datetime | None = None

    @property
    def open(self) -> bool:
        return self.state in (CycleState.PENDING, CycleState.WARNED)


class Trouble(BaseModel):
    """Something of the case's that keeps failing and is being retried: what, since when, and why."""

    what: str
    since: datetime
    rounds: int = 1
    error: str = ""


class CaseStatus(BaseModel):
    """The whole case, as the `status` query returns it."""

    workflow_id: str
    life: str = ""
    """The first run id of this case's life: a ticket opened again (or a reset) is a new life with rows
    of its own. Empty for cases opened before lives were kept apart."""
    ticket: CaseInput
    priority: Priority
    phase: Phase
    assignee: str | None = None
    opened_at: datetime
    engaged_at: datetime | None = None
    queued_until: datetime | None = None
    engagement: int = 0
    paused: bool = False
    pauses: list[Pause] = Field(default_factory=list)
    escalation_due_at: datetime | None = None
    escalation_explanation: DueExplanation | None = None
    resolved_at: datetime | None = None
    resolution: str | None = None
    follow_up_sent_at: datetime | None = None
    confirmed_at: datetime | None = None
    reminder_due_at: datetime | None = None
    reminder_sent_at: datetime | None = None
    confirmation_due_at: datetime | None = None
    milestones: list[MilestoneStatus] = Field(default_factory=list)
    escalations: list[Escalation] = Field(default_factory=list)
    cycles: list[Cycle] = Field(default_factory=list)
    """The recent cycles of recurring milestones (every cycle is in the timeline)."""
    escalated: bool = False
    on_standup: bool = False
    sla_breached: bool = False
    close_reason: CloseReason | None = None
    closed_at: datetime | None = None
    attention: list[Trouble] = Field(default_factory=list)
    """What is retrying right now (a database or channel outage); empty when all is well."""
    timeline: list[TimelineEntry] = Field(default_factory=list)

    @property
    def needs_attention(self) -> bool:
        return bool(self.attention)

    @property
    def awaiting_acknowledgement(self) -> list[Escalation]:
        """The escalation levels of this engagement whose owners have not acknowledged them yet."""
        if self.phase is not Phase.ENGAGED:
            return []
        return [e for e in self.escalations if e.engagement == self.engagement and e.waiting]


class CaseOutcome(BaseModel):
    """The workflow result: how the case ended."""

    ticket_id: str
    priority: Priority
    close_reason: CloseReason
    closed_at: datetime
    opened_at: datetime
    resolved_at: datetime | None = None
    time_to_resolution: timedelta | None = None
    escalations: list[Escalation] = Field(default_factory=list)
    breached_milestones: list[Milestone] = Field(default_factory=list)
    sla_breached: bool = False
