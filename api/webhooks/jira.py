"""Jira Service Management: issue created and issue transitioned, from a Jira admin webhook.

Jira signs a webhook registered with a secret: `X-Hub-Signature: sha256=<hex HMAC-SHA256(secret, body)>`.
The body's `timestamp` (milliseconds since the epoch) is covered by the signature, so it bounds the replay
window; `X-Atlassian-Webhook-Identifier`, when sent, names the delivery.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.responses import WebhookResult
from api.webhooks.deliveries import refused, same, within_window
from api.webhooks.events import WEBHOOK_ANSWERS, Event, Ignore, Open, action, deliver, ticket
from stack.settings import Settings
from workflows.models import NOTE_MAX, SHORT_TEXT_MAX
from workflows.safe_text import clipped

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

SOURCE = "jira"
PRIORITIES = {
    "blocker": "P1",
    "highest": "P1",
    "critical": "P1",
    "high": "P2",
    "major": "P2",
    "medium": "P3",
    "low": "P4",
    "lowest": "P4",
    "minor": "P4",
    "trivial": "P4",
}
"""Jira's priority names; an issue without one is P3."""
TRANSITIONS = {
    "resolved": "resolved",
    "done": "resolved",
    "closed": "customer_confirmed",
    "reopened": "customer_rejected",
}
"""The status an issue moves to, and the action that move is for the case."""


class Loose(BaseModel):
    """Jira sends much more than a case needs (custom fields, apps): the rest is ignored."""

    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class Named(Loose):
    name: str | None = None


class JiraUser(Loose):
    displayName: str | None = None
    emailAddress: str | None = None


class Fields(Loose):
    summary: str | None = None
    description: str | None = None
    priority: Named | None = None
    reporter: JiraUser | None = None
    assignee: JiraUser | None = None
    created: str | None = None
    resolution: Named | None = None


class Issue(Loose):
    key: str
    fields: Fields = Fields()


class ChangeItem(Loose):
    field: str
    toString: str | None = None


class Changelog(Loose):
    items: list[ChangeItem] = Field(default_factory=list)


class JiraEvent(Loose):
    timestamp: int = Field(description="milliseconds since the epoch, when Jira sent it")
    webhookEvent: Literal["jira:issue_created", "jira:issue_updated"]
    user: JiraUser | None = None
    issue: Issue
    changelog: Changelog | None = None


def signature(secret: str, body: bytes) -> str:
    """What Jira sends in X-Hub-Signature."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def opened_at(created: str | None) -> str | None:
    """Jira writes `2026-12-03T14:00:00.000+0000`; the wire contract wants RFC 3339."""
    if not created:
        return None
    try:
        return datetime.strptime(created, "%Y-%m-%dT%H:%M:%S.%f%z").isoformat()
    except ValueError:
        return created


def case_input(issue: Issue) -> dict[str, Any]:
    f = issue.fields
    reporter = f.reporter or JiraUser()
    domain = (reporter.emailAddress or "").rpartition("@")[2] or None
    data = {
        "ticket_id": issue.key,
        "priority": PRIORITIES.get(((f.priority and f.priority.name) or "medium").lower(), "P3"),
        "subject": clipped(f.summary or "", SHORT_TEXT_MAX),
        "description": f.description and clipped(f.description, NOTE_MAX),
        "customer": {
            "account_id": domain,
            "name": domain,
            "contact_email": reporter.emailAddress,
        },
        "opened_at": opened_at(f.created),
        "assignee": f.assignee.emailAddress if f.assignee else None,
        "source": SOURCE,
    }
    return {k: v for k, v in data.items() if v is not None}


def event_of(e: JiraEvent) -> Event:
    key = e.issue.key
    if e.webhookEvent == "jira:issue_created":
        return Open(ticket=ticket(case_input(e.issue)))
    moves = [i.toString for i in (e.changelog.items if e.changelog else []) if i.field == "status"]
    if not moves or not moves[-1]:
        return Ignore(ticket_id=key, reason="no status transition in this update")
    name = TRANSITIONS.get(moves[-1].lower())
    if name is None:
        return Ignore(ticket_id=key, reason=f"status {moves[-1]!r} means nothing to a case")
    by = e.user.emailAddress if e.user else None
    if name == "resolved":
        resolution = e.issue.fields.resolution
        summary = f"{(resolution and resolution.name) or moves[-1]} in Jira"
        return action(key, name, {"summary": summary, "by": by})
    return action(key, name, {"note": f"moved to {moves[-1]} in Jira"})


async def signed(
    request: Request,
    x_hub_signature: Annotated[str | None, Header()] = None,
    x_atlassian_webhook_identifier: Annotated[str | None, Header()] = None,
) -> list[str]:
    """The delivery's keys once its signature holds and its timestamp is inside the window; 401 otherwise.
    The signature is a key whatever the identifier header says (the signature does not cover it), so a
    delivery sent again with that header changed or dropped is still a replay.
    A dependency, so it runs before the body is read as an event: a forged event is a 401, not a 422 (a
    body that is not JSON at all is a 422 before any dependency runs)."""
    settings: Settings = request.app.state.settings
    if not settings.jira_secret:
        raise refused("no Jira webhook secret is configured (ABH_JIRA_SECRET)")
    if not x_hub_signature:
        raise refused("X-Hub-Signature is required")
    raw = await request.body()
    if not same(signature(settings.jira_secret, raw), x_hub_signature):
        raise refused("the signature does not match the body")
    try:
        sent_ms = JiraStamp.model_validate_json(raw).timestamp
        sent_at = datetime.fromtimestamp(sent_ms / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        raise refused("the body has no readable `timestamp` (milliseconds since the epoch)") from None
    within_window(sent_at, timedelta(seconds=settings.replay_window))
    if x_atlassian_webhook_identifier:
        return [x_hub_signature, x_atlassian_webhook_identifier]
    return [x_hub_signature]


class JiraStamp(Loose):
    timestamp: int


@router.post(
    "/jira",
    response_model=WebhookResult,
    responses=WEBHOOK_ANSWERS,
    summary="Jira Service Management webhook: issue created, issue transitioned",
)
async def jira_webhook(
    request: Request, delivery: Annotated[list[str], Depends(signed)], body: JiraEvent
) -> JSONResponse:
    return await deliver(request, SOURCE, delivery, event_of(body))
