"""What a helpdesk event asks of ABH (open a case, send an action, or nothing) and doing it."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from api.actions import act
from api.cases import open_ticket
from api.responses import Refusal, WebhookResult, documented
from api.webhooks.deliveries import remember, seen_before
from stack.settings import Settings
from workflows.models import ActionPayload, CaseInput
from workflows.rules import Refused, parse_action

WEBHOOK_ANSWERS: dict[int | str, dict[str, Any]] = {
    201: {"model": WebhookResult},
    202: {"model": WebhookResult},
    **documented(400, 401, 404, 503, r409=Refusal),
}
"""What every helpdesk webhook route answers, for its OpenAPI description."""


class Open(BaseModel):
    ticket: CaseInput


class Act(BaseModel):
    ticket_id: str
    action: ActionPayload


class Ignore(BaseModel):
    ticket_id: str
    reason: str


Event = Open | Act | Ignore


def invalid(err: ValidationError, where: tuple[str | int, ...] = ("body",)) -> RequestValidationError:
    """A 422 naming each bad field, the shape FastAPI gives a bad body."""
    errors = err.errors(include_url=False, include_input=False)
    return RequestValidationError([{**e, "loc": (*where, *e["loc"])} for e in errors])


def ticket(data: dict[str, Any]) -> CaseInput:
    """The case input a helpdesk's ticket maps to; 422 naming the ticket's fields when it does not fit."""
    try:
        return CaseInput.model_validate(data)
    except ValidationError as err:
        raise invalid(err, ("body", "mapped ticket")) from None


def action(ticket_id: str, name: str, payload: dict[str, Any]) -> Act:
    try:
        model = parse_action(name, {k: v for k, v in payload.items() if v is not None})
    except Refused as refused:
        raise RequestValidationError(
            [{"loc": ("body", "mapped action"), "msg": str(refused), "type": "value_error"}]
        ) from None
    return Act(ticket_id=ticket_id, action=model)


async def deliver(request: Request, source: str, keys: list[str], event: Event) -> JSONResponse:
    """Do what the event asks, once per delivery: one any of whose keys was taken is refused before
    anything, and one is kept as taken once it was answered for good (a 503 is not: the helpdesk's retry
    is taken). Its action's idempotency key comes from the delivery, so two copies racing, or a retry of
    one cut off midway, apply it once."""
    settings: Settings = request.app.state.settings
    pool = request.app.state.pool
    deliveries = [hashlib.sha256(key.encode()).hexdigest() for key in keys]
    await seen_before(pool, source, deliveries)
    answer = await _apply(request, event, f"{source}-{deliveries[0][:40]}")
    if answer.status_code < 500:
        await remember(pool, source, deliveries, timedelta(seconds=settings.replay_window))
    return answer


async def _apply(request: Request, event: Event, key: str) -> JSONResponse:
    if isinstance(event, Ignore):
        return _answer(202, WebhookResult(ticket_id=event.ticket_id, outcome="ignored", detail=event.reason))
    if isinstance(event, Open):
        case, new = await open_ticket(request, event.ticket)
        outcome = "opened" if new else "exists"
        body = WebhookResult(ticket_id=case.ticket_id, outcome=outcome, case=case.case)
        return _answer(201 if new else 200, body, {"Location": case.case})
    answer = await act(request, event.ticket_id, event.action, key)
    if isinstance(answer, JSONResponse):
        return answer
    body = WebhookResult(
        ticket_id=event.ticket_id, outcome=event.action.action, case=f"/cases/{event.ticket_id}"
    )
    return _answer(200, body)


def _answer(status: int, body: WebhookResult, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(body.model_dump(exclude_none=True), status_code=status, headers=headers)
