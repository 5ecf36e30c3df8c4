"""Which action a case accepts now, and why not: the same answer for signals and updates."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from workflows.actions import ACTIONS, OPEN_PHASES
from workflows.models import (
    Action,
    Assign,
    CaseStatus,
    ChangePriority,
    Milestone,
    MilestoneState,
    MilestoneVerified,
    Phase,
)
from workflows.safe_text import one_line, shown


def moves_clocks(name: str) -> bool:
    """Whether the action `name` can move a due instant."""
    return ACTIONS[name].moves_clocks


class Refused(ValueError):
    """An action the case cannot take now; the message says why and what is allowed."""


# A refusal names what was wrong without repeating a megabyte of it: a few fields, each name bounded.
ERRORS_SHOWN = 5
FIELD_NAME_LIMIT = 80
ERROR_TEXT_LIMIT = 200


def field_errors(err: ValidationError) -> str:
    """'field: message' for each bad field, the way an engineer wants to read it; bounded in size, and
    names escaped, whatever the sender put in them."""
    errors = err.errors(include_url=False, include_input=False)
    parts = []
    for e in errors[:ERRORS_SHOWN]:
        where = ".".join(shown(str(p), FIELD_NAME_LIMIT) for p in e["loc"]) or "payload"
        parts.append(f"{where}: {one_line(e['msg'], ERROR_TEXT_LIMIT)}")
    if len(errors) > ERRORS_SHOWN:
        parts.append(f"and {len(errors) - ERRORS_SHOWN} more")
    return "; ".join(parts)


def parse_action(name: str, payload: Any, unreadable: str | None = None) -> Action:
    """The payload as the action's model; Refused with field-level messages when it does not fit, or
    with why it could not be read at all (`unreadable`)."""
    spec = ACTIONS.get(name)
    if spec is None:
        raise Refused(f"unknown action '{shown(name)}'; actions are: {', '.join(ACTIONS)}")
    if unreadable:
        raise Refused(f"invalid {name} payload: {unreadable}")
    try:
        action: Action = spec.model.model_validate({} if payload is None else payload)  # type: ignore[assignment]
        return action
    except ValidationError as err:
        raise Refused(f"invalid {name} payload: {field_errors(err)}") from None


def _phase_names(phases: frozenset[Phase]) -> str:
    if phases == OPEN_PHASES:
        return "the case is open"
    return " or ".join(sorted(p.value for p in phases))


def allowed_now(case: CaseStatus) -> list[str]:
    """The actions the case accepts in its current phase and pause state."""
    names = [name for name, spec in ACTIONS.items() if case.phase in spec.phases]
    skip = "waiting_on_customer" if case.paused else "customer_replied"
    return [n for n in names if n != skip]


def check(case: CaseStatus, name: str, action: Action) -> None:
    """Raise Refused when `case` cannot take `action` now."""
    ticket = case.ticket.ticket_id
    allowed = ACTIONS[name].phases
    if case.phase not in allowed:
        now = ", ".join(allowed_now(case)) or "nothing, the case is closed"
        raise Refused(
            f"case {ticket} is {case.phase.value}; {name} is accepted only while {_phase_names(allowed)}"
            f" (allowed now: {now})"
        )
    if name == "waiting_on_customer" and case.paused:
        raise Refused(f"case {ticket} is already waiting on the customer")
    if name == "customer_replied" and not case.paused:
        raise Refused(f"case {ticket} is not waiting on the customer; customer_replied resumes a paused case")
    if isinstance(action, Assign) and action.assignee == case.assignee:
        raise Refused(f"case {ticket} is already assigned to {action.assignee}")
    if isinstance(action, ChangePriority) and action.priority == case.priority:
        raise Refused(f"case {ticket} is already {action.priority.value}")
    if isinstance(action, MilestoneVerified):
        _check_milestone(case, action.milestone)


def _check_milestone(case: CaseStatus, milestone: Milestone) -> None:
    ticket = case.ticket.ticket_id
    for ms in case.milestones:
        if ms.name is milestone:
            if ms.state in (MilestoneState.MET, MilestoneState.MET_LATE):
                raise Refused(f"case {ticket}: milestone {milestone.value} was already verified")
            return
        if ms.state not in (MilestoneState.MET, MilestoneState.MET_LATE):
            raise Refused(
                f"case {ticket}: milestones are verified in order; "
                f"verify {ms.name.value} before {milestone.value}"
            )
