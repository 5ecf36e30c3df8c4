"""Sample tickets and policies, and a steady stream of notes: shared by the tests and the benchmarks.

Kept outside `tests/`, so a benchmark never imports the test suite.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from stack.cases import open_case, signal_action
from workflows.calendar import CalendarSpec
from workflows.case import CaseWorkflow
from workflows.models import CaseInput, CaseOutcome, CaseStatus, Customer, Phase, Priority
from workflows.policy import Policy, load_policy


def ticket(ticket_id: str, priority: str = "P3", **overrides: Any) -> CaseInput:
    customer = Customer(
        account_id="acme",
        name="Acme Corp",
        contact_email="ops@acme.example",
        contact_phone="+1 555 0100",
        tam_email="tam@support.example",
    )
    fields: dict[str, Any] = {
        "ticket_id": ticket_id,
        "priority": Priority(priority),
        "subject": "Checkout API down",
        "customer": customer,
        "source": "tests",
    }
    return CaseInput(**(fields | overrides))


def round_the_clock_policy(**changes: Any) -> Policy:
    """Default targets, but a calendar that never closes: real-time tests never wait for an opening."""
    policy = default_policy(**changes)
    always = {day: ["00:00-24:00"] for day in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    policy.calendars["business"] = CalendarSpec(timezone="UTC", hours=always)
    return policy


def default_policy(**changes: Any) -> Policy:
    policy = load_policy()
    return policy.model_copy(update=changes) if changes else policy


async def send_notes(client: Client, workflow_id: str, numbers: range, text: str | None = None) -> None:
    """One add_note signal per number (`text`, or "note <n>"), 100 in flight at a time."""
    live = client.get_workflow_handle(workflow_id)
    for start in range(0, len(numbers), 100):
        await asyncio.gather(
            *(live.signal("add_note", {"text": text or f"note {n}"}) for n in numbers[start:][:100])
        )


async def notes_stored(pool: asyncpg.Pool, workflow_id: str, count: int, timeout: float = 120) -> None:
    """Until `count` notes of the case are in PostgreSQL; fails after `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    query = "SELECT count(*) FROM case_events WHERE workflow_id = $1 AND type = 'note'"
    while await pool.fetchval(query, workflow_id) < count:
        assert asyncio.get_running_loop().time() < deadline, "the notes never all reached PostgreSQL"
        await asyncio.sleep(0.05)


async def escalated_p1_lifecycle(env: WorkflowEnvironment, ticket_id: str, *, task_queue: str) -> CaseOutcome:
    """On a time-skipping server: a P1 opened, the customer called, left unresolved past its 60-minute
    escalation, then resolved and confirmed after the follow-up. The case `bench.history` counts."""
    handle = await open_case(env.client, ticket(ticket_id, "P1"), task_queue=task_queue)

    async def until(ready: Callable[[CaseStatus], bool]) -> None:
        while not ready(await handle.query(CaseWorkflow.status)):
            await asyncio.sleep(0.05)

    await until(lambda s: s.phase is Phase.ENGAGED)
    await signal_action(env.client, ticket_id, "customer_contacted", {"channel": "call"})
    await env.sleep(timedelta(minutes=61))
    await until(lambda s: s.escalated)
    await signal_action(env.client, ticket_id, "resolved", {"summary": "rolled back"})
    await until(lambda s: s.follow_up_sent_at is not None)
    await signal_action(env.client, ticket_id, "customer_confirmed", {})
    outcome: CaseOutcome = await handle.result()
    return outcome
