"""The demo `make run` plays: three cases that walk the lifecycle in a few minutes, on the demo policy."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from temporalio.client import Client

from stack.cases import CaseAlreadyExists, case_status, open_case, signal_action
from stack.settings import PROJECT_DIR, Settings
from stack.web_ui import case_url
from workflows.calendar import CalendarSpec
from workflows.models import CaseInput, Customer, Priority
from workflows.policy import Policy, load_policy

log = structlog.get_logger("demo")

DEMO_POLICY = PROJECT_DIR / "policies" / "demo.toml"
AFTER_HOURS = "after-hours-demo"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def demo_policy(now: datetime | None = None) -> Policy:
    """The demo policy plus a calendar that is closed now and opens in two minutes, to show queueing."""
    policy = load_policy(DEMO_POLICY)
    start = (now or datetime.now(UTC)).replace(second=0, microsecond=0) + timedelta(minutes=3)
    end = start + timedelta(hours=1)
    window = f"{start:%H:%M}-{end:%H:%M}"
    policy.calendars[AFTER_HOURS] = CalendarSpec(timezone="UTC", hours={WEEKDAYS[start.weekday()]: [window]})
    return policy


def demo_tickets(stamp: str) -> dict[str, CaseInput]:
    def customer(account: str, name: str, **extra: Any) -> Customer:
        return Customer(account_id=account, name=name, contact_email=f"ops@{account}.example", **extra)

    return {
        "escalated": CaseInput(
            ticket_id=f"DEMO-{stamp}-1",
            priority=Priority.P1,
            subject="Checkout API down",
            customer=customer(
                "acme", "Acme Corp", contact_phone="+1 555 0100", tam_email="tam-acme@support.example"
            ),
            source="monitoring",
        ),
        "queued": CaseInput(
            ticket_id=f"DEMO-{stamp}-2",
            priority=Priority.P3,
            subject="Report export is slow",
            customer=customer("globex", "Globex", calendar=AFTER_HOURS),
            source="email intake",
        ),
        "reopened": CaseInput(
            ticket_id=f"DEMO-{stamp}-3",
            priority=Priority.P2,
            subject="SSO login loop",
            customer=customer("initech", "Initech", tam_email="tam-initech@support.example"),
            source="helpdesk",
        ),
    }


async def _act(client: Client, ticket: CaseInput, action: str, **payload: Any) -> None:
    await signal_action(client, ticket.ticket_id, action, payload)
    log.info("demo action", ticket_id=ticket.ticket_id, action=action)


async def _escalated_then_closed(client: Client, t: CaseInput) -> None:
    await asyncio.sleep(5)
    await _act(client, t, "customer_contacted", channel="call", note="bridge opened with Acme ops")
    await asyncio.sleep(10)
    await _act(client, t, "milestone_verified", milestone="data_verified", by="alice")
    await _act(client, t, "customer_updated", note="rollback of the gateway release under way", by="alice")
    while not (await case_status(client, t.ticket_id)).escalated:
        await asyncio.sleep(2)
    await _act(client, t, "escalation_acknowledged", level="tech_lead", by="tech-lead", note="on the bridge")
    await _act(client, t, "customer_updated", note="tech lead on the bridge", by="alice")
    await _act(client, t, "milestone_verified", milestone="troubleshooting", by="tech-lead")
    await _act(client, t, "resolved", summary="Rolled back the faulty gateway release", by="tech-lead")
    await asyncio.sleep(5)
    await _act(client, t, "customer_confirmed", note="Checkout is back")


async def _rejected_then_reopened(client: Client, t: CaseInput) -> None:
    await asyncio.sleep(5)
    await _act(client, t, "customer_contacted", channel="email")
    await asyncio.sleep(10)
    await _act(client, t, "resolved", summary="Cleared the stale session cookie", by="bob")
    await asyncio.sleep(10)
    await _act(client, t, "customer_rejected", note="Still looping for some users")
    await asyncio.sleep(10)
    await _act(client, t, "milestone_verified", milestone="data_verified", by="bob")
    await asyncio.sleep(5)
    await _act(client, t, "resolved", summary="Fixed the IdP clock skew", by="bob")
    await asyncio.sleep(5)
    await _act(client, t, "customer_confirmed")


async def run_demo(client: Client, settings: Settings) -> None:
    stamp = datetime.now(UTC).strftime("%m%d%H%M%S")
    tickets = demo_tickets(stamp)
    for name, ticket in tickets.items():
        try:
            handle = await open_case(client, ticket, task_queue=settings.task_queue, ui_url=settings.ui_url)
        except CaseAlreadyExists as exists:
            log.warning("demo case exists", detail=str(exists))
            continue
        log.info("demo case opened", story=name, link=case_url(settings.ui_url, client.namespace, handle.id))
    await asyncio.gather(
        _escalated_then_closed(client, tickets["escalated"]),
        _rejected_then_reopened(client, tickets["reopened"]),
    )
    log.info("demo actions done; the queued case engages at its opening", web_ui=settings.ui_url)
