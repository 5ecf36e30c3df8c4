"""Zendesk: a trigger's webhook for ticket created, solved and reopened.

Zendesk signs each request: `X-Zendesk-Webhook-Signature` is base64(HMAC-SHA256(secret, timestamp + body))
with the timestamp sent in `X-Zendesk-Webhook-Signature-Timestamp`. The trigger's JSON body is the one the
README gives (placeholders such as `{{ticket.id}}`); Zendesk fills a missing value with an empty string.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, StringConstraints

from api.responses import WebhookResult
from api.webhooks.deliveries import refused, same, within_window
from api.webhooks.events import WEBHOOK_ANSWERS, Event, Open, action, deliver, ticket
from stack.settings import Settings
from workflows.models import NOTE_MAX, SHORT_TEXT_MAX
from workflows.safe_text import clipped

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

SOURCE = "zendesk"
TICKET_PREFIX = "ZD-"
PRIORITIES = {"urgent": "P1", "high": "P2", "normal": "P3", "low": "P4"}
"""Zendesk's priorities; a ticket without one is P3 (Zendesk's `normal`)."""


def _blank_is_none(value: Any) -> Any:
    return None if isinstance(value, str) and not value.strip() else value


Filled = Annotated[str | None, BeforeValidator(_blank_is_none)]


class Loose(BaseModel):
    """Zendesk sends what the trigger's template says: extra placeholders are allowed and ignored."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class Person(Loose):
    name: Filled = None
    email: Filled = None
    phone: Filled = None


class Organization(Loose):
    id: Filled = None
    name: Filled = None


class ZendeskTicket(Loose):
    id: Annotated[
        str,
        BeforeValidator(lambda v: v if v is None else str(v).strip()),
        StringConstraints(min_length=1),
    ]
    title: Filled = None
    description: Filled = None
    priority: Filled = None
    created_at: Filled = None
    latest_comment: Filled = None
    requester: Person = Person()
    organization: Organization = Organization()
    assignee: Person = Person()


class ZendeskEvent(Loose):
    event: Literal["ticket_created", "ticket_solved", "ticket_reopened"]
    ticket: ZendeskTicket


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """What Zendesk sends in X-Zendesk-Webhook-Signature."""
    digest = hmac.new(secret.encode(), timestamp.encode() + body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def case_input(t: ZendeskTicket) -> dict[str, Any]:
    email = t.requester.email or ""
    account = t.organization.id or email.rpartition("@")[2] or None
    return {
        "ticket_id": f"{TICKET_PREFIX}{t.id}",
        "priority": PRIORITIES.get((t.priority or "normal").lower(), "P3"),
        "subject": clipped(t.title or "", SHORT_TEXT_MAX),
        "description": t.description and clipped(t.description, NOTE_MAX),
        "customer": {
            "account_id": account,
            "name": t.organization.name or t.requester.name or account,
            "contact_email": t.requester.email,
            "contact_phone": t.requester.phone,
        },
        "opened_at": t.created_at,
        "assignee": t.assignee.email,
        "source": SOURCE,
    }


def event_of(e: ZendeskEvent) -> Event:
    ticket_id = f"{TICKET_PREFIX}{e.ticket.id}"
    if e.event == "ticket_created":
        return Open(ticket=ticket({k: v for k, v in case_input(e.ticket).items() if v is not None}))
    if e.event == "ticket_solved":
        summary = clipped(e.ticket.latest_comment or "solved in Zendesk", NOTE_MAX)
        return action(ticket_id, "resolved", {"summary": summary, "by": e.ticket.assignee.email})
    comment = e.ticket.latest_comment
    return action(ticket_id, "customer_rejected", {"note": comment and clipped(comment, NOTE_MAX)})


async def signed(
    request: Request,
    x_zendesk_webhook_signature: Annotated[str | None, Header()] = None,
    x_zendesk_webhook_signature_timestamp: Annotated[str | None, Header()] = None,
) -> list[str]:
    """The delivery's key (its signature) once it holds and its timestamp is inside the window; 401 otherwise.
    A dependency, so it runs before the body is read as an event: a forged event is a 401, not a 422 (a
    body that is not JSON at all is a 422 before any dependency runs)."""
    settings: Settings = request.app.state.settings
    if not settings.zendesk_secret:
        raise refused("no Zendesk signing secret is configured (ABH_ZENDESK_SECRET)")
    given, stamp = x_zendesk_webhook_signature, x_zendesk_webhook_signature_timestamp
    if not given or not stamp:
        raise refused("X-Zendesk-Webhook-Signature and X-Zendesk-Webhook-Signature-Timestamp are required")
    if not same(signature(settings.zendesk_secret, stamp, await request.body()), given):
        raise refused("the signature does not match the body")
    try:
        sent_at = datetime.fromisoformat(stamp)
    except ValueError:
        raise refused("X-Zendesk-Webhook-Signature-Timestamp is not an ISO 8601 instant") from None
    if sent_at.tzinfo is None:
        raise refused("X-Zendesk-Webhook-Signature-Timestamp has no offset")
    within_window(sent_at, timedelta(seconds=settings.replay_window))
    return [given]


@router.post(
    "/zendesk",
    response_model=WebhookResult,
    responses=WEBHOOK_ANSWERS,
    summary="Zendesk trigger webhook: ticket created, solved, reopened",
)
async def zendesk_webhook(
    request: Request, delivery: Annotated[list[str], Depends(signed)], body: ZendeskEvent
) -> JSONResponse:
    return await deliver(request, SOURCE, delivery, event_of(body))
