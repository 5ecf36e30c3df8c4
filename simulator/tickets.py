"""The ticket file: one recorded ticket a row, as CSV or JSON lines, and the actions it replays.

A row holds the ticket and the instants at which people acted on it (empty: never). Rows are read whole
before anything runs, and a bad one is refused with its row number and field.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)

from workflows.models import (
    ActionPayload,
    CaseInput,
    ChangePriority,
    ContactChannel,
    Customer,
    CustomerConfirmed,
    CustomerContacted,
    CustomerRejected,
    CustomerReplied,
    CustomerUpdated,
    Milestone,
    MilestoneVerified,
    Priority,
    Resolved,
    TicketId,
    WaitingOnCustomer,
)
from workflows.policy import Policy
from workflows.rules import field_errors

ACTOR = "simulation"
CUSTOMER_EMAIL = "customer@simulation.example"


class TicketFileError(ValueError):
    """A ticket file that cannot be replayed; the message names the row and the field."""


# The row's instants in lifecycle order, each with the action it replays.
_ACTIONS: dict[str, Callable[[RecordedTicket], ActionPayload]] = {
    "contacted_at": lambda t: CustomerContacted(
        channel=ContactChannel.CALL if t.priority is Priority.P1 else ContactChannel.EMAIL
    ),
    "data_verified_at": lambda t: MilestoneVerified(milestone=Milestone.DATA_VERIFIED, by=ACTOR),
    "troubleshooting_at": lambda t: MilestoneVerified(milestone=Milestone.TROUBLESHOOTING, by=ACTOR),
    "customer_updates": lambda t: CustomerUpdated(by=ACTOR),
    "paused_at": lambda t: WaitingOnCustomer(),
    "resumed_at": lambda t: CustomerReplied(),
    "priority_changed_at": lambda t: ChangePriority(priority=t.new_priority, reason="as recorded"),
    "resolved_at": lambda t: Resolved(summary="resolved, as recorded", by=ACTOR),
    "rejected_at": lambda t: CustomerRejected(),
    "confirmed_at": lambda t: CustomerConfirmed(),
}
INSTANT_FIELDS = tuple(_ACTIONS)


class RecordedTicket(BaseModel):
    """One row of the ticket file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ticket_id: TicketId
    priority: Priority
    opened_at: AwareDatetime
    account_id: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    calendar: str | None = None
    contacted_at: AwareDatetime | None = None
    data_verified_at: AwareDatetime | None = None
    troubleshooting_at: AwareDatetime | None = None
    resolved_at: AwareDatetime | None = None
    confirmed_at: AwareDatetime | None = None
    rejected_at: AwareDatetime | None = None
    paused_at: AwareDatetime | None = None
    resumed_at: AwareDatetime | None = None
    priority_changed_at: AwareDatetime | None = None
    new_priority: Annotated[Priority | None, Field(validate_default=True)] = None
    customer_updates: list[AwareDatetime] = []
    """Progress updates given to the customer (a P1's recurring milestone); in CSV, separated by `;`."""

    @field_validator("*", mode="before")
    @classmethod
    def _empty_is_never(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("customer_updates", mode="before")
    @classmethod
    def _listed(cls, value: Any) -> Any:
        if value is None:
            return []
        return (
            [part.strip() for part in value.split(";") if part.strip()] if isinstance(value, str) else value
        )

    @field_validator(*INSTANT_FIELDS)
    @classmethod
    def _after_opening(cls, value: Any, info: ValidationInfo) -> Any:
        opened = info.data.get("opened_at")
        for at in value if isinstance(value, list) else [value]:
            if at is not None and opened is not None and at < opened:
                raise ValueError(f"{at.isoformat()} is before opened_at {opened.isoformat()}")
        return value

    @field_validator("data_verified_at")
    @classmethod
    def _after_contact(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return _in_order(value, info, "contacted_at")

    @field_validator("troubleshooting_at")
    @classmethod
    def _after_data_verified(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return _in_order(value, info, "data_verified_at")

    @field_validator("confirmed_at", "rejected_at")
    @classmethod
    def _after_resolution(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        """The customer answers the follow-up, which the resolution sends."""
        return _after(value, info, "resolved_at")

    @field_validator("resumed_at")
    @classmethod
    def _after_pause(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        return _after(value, info, "paused_at")

    @field_validator("new_priority")
    @classmethod
    def _priority_change_is_whole(cls, value: Priority | None, info: ValidationInfo) -> Priority | None:
        """Validated even when absent (`validate_default`), so that a lone priority_changed_at is named."""
        if "priority_changed_at" not in info.data:
            return value  # priority_changed_at is refused on its own account
        changed = info.data["priority_changed_at"]
        if value is None and changed is not None:
            raise ValueError("needed with priority_changed_at")
        if value is not None and changed is None:
            raise ValueError("needs a priority_changed_at")
        if value is not None and value == info.data.get("priority"):
            raise ValueError(f"{value.value} is the ticket's priority already (the case refuses the change)")
        return value

    def instants(self) -> list[tuple[str, datetime]]:
        """Every instant of the row but opened_at, with its field's name, in the lifecycle's order."""
        found = []
        for name in _ACTIONS:
            value = getattr(self, name)
            found += [(name, at) for at in (value if isinstance(value, list) else [value]) if at is not None]
        return found

    def moved(self, shift: Callable[[datetime], datetime]) -> RecordedTicket:
        """The same ticket with every instant passed through `shift`."""
        changes: dict[str, Any] = {"opened_at": shift(self.opened_at)}
        for name in _ACTIONS:
            value = getattr(self, name)
            if isinstance(value, list):
                changes[name] = [shift(at) for at in value]
            elif value is not None:
                changes[name] = shift(value)
        return self.model_copy(update=changes)

    def last_instant(self) -> datetime:
        return max([self.opened_at, *(at for _, at in self.instants())])

    @property
    def left_resolved(self) -> bool:
        """Resolved, and not rejected since: what is left to happen is the case's own follow-up."""
        rejected = self.rejected_at
        return self.resolved_at is not None and (rejected is None or rejected < self.resolved_at)

    def case_input(self, opened_at: datetime) -> CaseInput:
        return CaseInput(
            ticket_id=self.ticket_id,
            priority=self.priority,
            subject=f"Recorded ticket {self.ticket_id}",
            customer=Customer(
                account_id=self.account_id,
                name=self.account_id,
                contact_email=CUSTOMER_EMAIL,
                calendar=self.calendar,
            ),
            opened_at=opened_at,
            source="simulation",
        )

    def actions(self) -> list[tuple[datetime, str, ActionPayload]]:
        """What people did, with the field that says when, in the order they did it (the lifecycle's
        order for equal instants)."""
        done = [(at, rank, name) for rank, (name, at) in enumerate(self.instants())]
        return [(at, name, _ACTIONS[name](self)) for at, _, name in sorted(done)]


def _after(value: datetime | None, info: ValidationInfo, earlier: str) -> datetime | None:
    """`value` needs `earlier` at or before it (equal instants replay in the lifecycle's order)."""
    if value is None or earlier not in info.data:  # a bad `earlier` is refused on its own account
        return value
    before = info.data[earlier]
    if before is None:
        raise ValueError(f"needs an earlier {earlier}")
    if value < before:
        raise ValueError(f"{value.isoformat()} is before {earlier} {before.isoformat()}")
    return value


MILESTONE_ORDER = (
    "milestones are verified in order: first_response (contacted_at), data_verified, troubleshooting"
)


def _in_order(value: datetime | None, info: ValidationInfo, earlier: str) -> datetime | None:
    try:
        return _after(value, info, earlier)
    except ValueError as err:
        raise ValueError(f"{err} ({MILESTONE_ORDER})") from None


FIELDS = ["ticket_id", "priority", "opened_at", "account_id", "calendar", *_ACTIONS, "new_priority"]


JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")


def read_tickets(path: Path, policies: Sequence[Policy] = ()) -> list[RecordedTicket]:
    """The file's tickets: JSON lines when it ends in .jsonl/.ndjson/.json, CSV otherwise; each row's
    calendar must be one of every policy's."""
    text = path.read_text(encoding="utf-8-sig")
    rows = _json_rows(text) if path.suffix.lower() in JSON_SUFFIXES else _csv_rows(text)
    return parse_rows(rows, policies)


@dataclass(frozen=True)
class BadRow:
    """A row that cannot be read as a ticket at all: why, to be listed among the bad rows."""

    reason: str


def parse_rows(rows: Iterable[tuple[int, Any]], policies: Sequence[Policy] = ()) -> list[RecordedTicket]:
    """Every row valid, each ticket once and each calendar known to `policies`, or TicketFileError naming
    each bad row and field. A row is numbered by the line it starts on."""
    tickets: list[RecordedTicket] = []
    errors: list[str] = []
    seen: dict[str, int] = {}
    for number, row in rows:
        if isinstance(row, BadRow):
            errors.append(f"row {number}: {row.reason}")
            continue
        try:
            ticket = RecordedTicket.model_validate(row)
        except ValidationError as err:
            errors.append(f"row {number}: {field_errors(err)}")
            continue
        if ticket.ticket_id in seen:
            errors.append(
                f"row {number}: ticket_id: {ticket.ticket_id} is already on row {seen[ticket.ticket_id]}"
            )
            continue
        unknown = next((p for p in policies if ticket.calendar and ticket.calendar not in p.calendars), None)
        if unknown is not None:
            errors.append(f"row {number}: calendar: {unknown_calendar(ticket.calendar or '', unknown)}")
            continue
        seen[ticket.ticket_id] = number
        tickets.append(ticket)
    if errors:
        raise TicketFileError(
            "; ".join(errors[:20]) + (f"; and {len(errors) - 20} more" if len(errors) > 20 else "")
        )
    if not tickets:
        raise TicketFileError("the file holds no tickets")
    return tickets


def unknown_calendar(calendar: str, policy: Policy) -> str:
    return f"{calendar} not in policy {policy.name!r} (it has {', '.join(sorted(policy.calendars))})"


def _csv_rows(text: str) -> Iterator[tuple[int, dict[str, str] | BadRow]]:
    """Each record with the line it starts on (a quoted cell may span lines); blank lines skipped. A
    column with no name in the header (a trailing comma) is allowed while all its cells are empty."""
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = None
    named: set[int] = set()
    while True:
        first = reader.line_num + 1
        try:
            cells = next(reader, None)
        except csv.Error as err:
            raise TicketFileError(f"row {first}: not readable as CSV ({err})") from None
        if cells is None:
            return
        if not any(cell.strip() for cell in cells):
            continue
        if header is None:
            header = cells
            named = _check_header(header, first)
            continue
        if len(cells) != len(header):
            yield first, BadRow(f"{len(cells)} cells, where the header has {len(header)}")
            continue
        filled = next((i for i, cell in enumerate(cells) if i not in named and cell.strip()), None)
        if filled is not None:
            yield (
                first,
                BadRow(f"column {filled + 1} is an unnamed column (blank in the header) but holds a value"),
            )
            continue
        yield first, {header[i]: cells[i] for i in named}


def _check_header(header: list[str], number: int) -> set[int]:
    """The indices of the named columns, each known and named once."""
    named = {i for i, name in enumerate(header) if name.strip()}
    unknown = [header[i] for i in sorted(named) if header[i] not in FIELDS]
    if unknown:
        raise TicketFileError(
            f"row {number}: unknown columns: {', '.join(unknown)} (known: {', '.join(FIELDS)})"
        )
    twice = next((header[i] for i in sorted(named) if header.count(header[i]) > 1), None)
    if twice is not None:
        at = ", ".join(str(i + 1) for i, name in enumerate(header) if name == twice)
        raise TicketFileError(f"row {number}: {twice} is named more than once in the header (columns {at})")
    return named


_JSON_LINES = "the file must be JSON lines, one ticket's object on each line (not a JSON array)"


def _json_rows(text: str) -> Iterator[tuple[int, Any]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise TicketFileError(f"row {number}: not a JSON object ({err.msg}); {_JSON_LINES}") from None
        if not isinstance(row, dict):
            raise TicketFileError(f"row {number}: not a JSON object; {_JSON_LINES}")
        yield number, row


def write_csv(tickets: Iterable[RecordedTicket]) -> str:
    """The tickets as a ticket file (CSV), e.g. for `--from-db` output kept for later runs."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
    writer.writeheader()
    for t in tickets:
        writer.writerow({k: _text(v) for k, v in t.model_dump().items()})
    return out.getvalue()


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        return ";".join(_text(v) for v in value)
    return value.isoformat() if isinstance(value, datetime) else str(value)
