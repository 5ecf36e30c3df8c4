"""Which action a case accepts now, and why not: the same answer for signals and updates."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from workflows.models import ACTIONS, OPEN_PHASES, ActionPayload, CaseStatus, Phase
from workflows.safe_text import one_line, shown


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


def parse_action(name: str, payload: Any, unreadable: str | None = None) -> ActionPayload:
    """The payload as the action's model; Refused with field-level messages when it does not fit, or
    with why it could not be read at all (`unreadable`)."""
    model = ACTIONS.get(name)
    if model is None:
        raise Refused(f"unknown action '{shown(name)}'; actions are: {', '.join(ACTIONS)}")
    if unreadable:
        raise Refused(f"invalid {name} payload: {unreadable}")
    try:
        return model.model_validate({} if payload is None else payload)
    except ValidationError as err:
        raise Refused(f"invalid {name} payload: {field_errors(err)}") from None


def _phase_names(phases: frozenset[Phase]) -> str:
    if phases == OPEN_PHASES:
        return "the case is open"
    return " or ".join(sorted(p.value for p in phases))


def accepts(case: CaseStatus, model: type[ActionPayload]) -> bool:
    """Whether the case's phase and pause state accept actions of this kind at all."""
    paused_ok = model.while_paused is None or model.while_paused == case.paused
    return case.phase in model.accepted_in and paused_ok


def allowed_now(case: CaseStatus) -> list[str]:
    """The actions the case accepts in its current phase and pause state."""
    return [name for name, model in ACTIONS.items() if accepts(case, model)]


def check(case: CaseStatus, action: ActionPayload) -> None:
    """Raise Refused when `case` cannot take `action` now."""
    ticket, name, model = case.ticket.ticket_id, action.action, type(action)
    if case.phase not in model.accepted_in:
        now = ", ".join(allowed_now(case)) or "nothing, the case is closed"
        raise Refused(
            f"case {ticket} is {case.phase.value}; {name} is accepted only while"
            f" {_phase_names(model.accepted_in)} (allowed now: {now})"
        )
    if not accepts(case, model):
        state, wanted = ("", "not ") if case.paused else ("not ", "")
        raise Refused(
            f"case {ticket} is {state}waiting on the customer;"
            f" {name} is accepted only while it is {wanted}waiting"
        )
    reason = action.refusal(case)
    if reason is not None:
        raise Refused(f"case {ticket}: {reason}")
