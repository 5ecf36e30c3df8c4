"""Outages never hold a case's clocks: PostgreSQL stopped across a P1's deadline, SMTP down while a case
continues as new or closes. The case acts on time in Temporal (state, search attributes); the rows and
messages follow when the outage ends, each once. Real dev server, a PostgreSQL of the test's own that it
stops and starts, a loopback SMTP server it stops and starts.

Outages last ABH_TEST_OUTAGE_SECONDS (short by default; the README gives the figures of the full-length
runs: `ABH_TEST_OUTAGE_SECONDS=120` for PostgreSQL, 300 for SMTP)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from activities.notifications import RelayRequest
from stack.sender_config import senders_from_env
from tests.cases import (
    OUTAGE,
    Cases,
    StoppablePostgres,
    awaiting_confirmation,
    case_worker,
    due_in,
    failed_tasks,
    free_port,
    round_the_clock_policy,
    rows,
    settled,
    status_when,
    ticket,
    until,
    visible,
)
from tests.test_senders import Mailbox
from workflows.case import CaseWorkflow
from workflows.models import CloseReason, Phase
from workflows.outbox_relay import OutboxRelayWorkflow

ON_TIME = timedelta(seconds=5)
# The longest a case waits between rounds, plus a round: when the rows must be in after an outage.
CATCH_UP = 300 + 30


async def until_outage_ends(down_at: datetime) -> None:
    left = down_at + timedelta(seconds=OUTAGE) - datetime.now(UTC)
    await asyncio.sleep(max(left.total_seconds(), 0))


def figure(what: str, took: timedelta) -> None:
    """A measured figure, printed for the README (`pytest -s`)."""
    print(f"\nFIGURE (outage {OUTAGE:.0f} s) {what}: {took.total_seconds():.1f} s")


@pytest.mark.timeout(CATCH_UP + 3 * OUTAGE + 120)
async def test_a_database_outage_across_the_deadline_escalates_on_time_and_writes_the_row_after(
    dev_env: WorkflowEnvironment,
    own_postgres: StoppablePostgres,
    own_pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
) -> None:
    lead = min(OUTAGE / 2, 30) + 4
    async with case_worker(dev_env, own_pool, task_queue, round_the_clock_policy()) as cases:
        late = await cases.open(ticket(ticket_id, "P1", opened_at=due_in(timedelta(seconds=lead))))
        withdrawn = await cases.open(
            ticket(f"{ticket_id}-w", "P1", opened_at=due_in(timedelta(seconds=lead + 6)))
        )
        for h in (late, withdrawn):
            await status_when(h, lambda s: s.phase is Phase.ENGAGED)
            await settled(h, own_pool)
        deadline = (await late.query(CaseWorkflow.status)).escalation_due_at
        assert deadline is not None

        own_postgres.stop()
        down_at = datetime.now(UTC)
        await withdrawn.signal("cancel", {"reason": "duplicate of another ticket"})
        # Visibility shows the escalation reached the Web UI, with the dev server's own lag (a figure);
        # on time is the case's own instant below.
        await until(lambda: visible(dev_env.client, late.id, "CaseEscalated = true"), "escalated", 60)
        figure("database down: CaseEscalated visible after the deadline", datetime.now(UTC) - deadline)
        await until(lambda: visible(dev_env.client, late.id, "CaseNeedsAttention = true"), "flagged", 30)
        status = await status_when(late, lambda s: any("PostgreSQL" in t.what for t in s.attention))
        assert status.escalated and status.escalations[0].raised_at - deadline < ON_TIME

        await until_outage_ends(down_at)
        gone = await withdrawn.query(CaseWorkflow.status)
        assert gone.phase is Phase.CLOSED and gone.escalations == [] and not gone.escalated
        own_postgres.start()
        up_at = datetime.now(UTC)

        (row,) = await until(lambda: rows(own_pool, "escalations", late.id), "Tech Lead row", CATCH_UP)
        figure("database back: Tech Lead row written after it returned", datetime.now(UTC) - up_at)
        assert row["raised_at"] - deadline < ON_TIME
        assert row["created_at"] > down_at + timedelta(seconds=OUTAGE)
        await until(lambda: visible(dev_env.client, late.id, "CaseNeedsAttention = false"), "cleared", 30)
        assert await withdrawn.result() is not None
        assert await rows(own_pool, "escalations", withdrawn.id) == []
        (closed,) = await rows(own_pool, "cases", withdrawn.id)
        assert closed["phase"] == "closed"
        assert await failed_tasks(late) == 0
        await cases.terminate_running()


class SmtpServer:
    """aiosmtpd on a fixed loopback port that can go away (connections refused) and come back."""

    def __init__(self) -> None:
        self.box = Mailbox()
        self.port = free_port()
        self._controller: Controller | None = None

    def start(self) -> None:
        self._controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def keys(self, workflow_id: str) -> list[str]:
        """The dedupe keys of the case's e-mails that arrived, one per copy."""
        found = [str(m["X-ABH-Dedupe-Key"]) for m in self.box.messages()]
        return [k for k in found if k.startswith(workflow_id)]


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer()
    yield server
    server.stop()


def smtp_env(port: int) -> dict[str, str]:
    return {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_FROM": "support@abh.example"}


async def emails_sent(pool: asyncpg.Pool, workflow_id: str) -> list[str] | None:
    mail = [r for r in await rows(pool, "notifications", workflow_id) if r["channel"] == "email"]
    return [r["dedupe_key"] for r in mail] if mail and all(r["state"] == "sent" for r in mail) else None


@pytest.mark.timeout(CATCH_UP + 3 * OUTAGE + 120)
async def test_a_mail_outage_never_holds_continue_as_new_or_the_escalation_and_every_email_arrives_once(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str, smtp: SmtpServer
) -> None:
    senders = senders_from_env(smtp_env(smtp.port))
    policy = round_the_clock_policy(continue_as_new_after_events=100)
    lead = min(OUTAGE / 2, 60) + 4
    try:
        async with case_worker(dev_env, pool, task_queue, policy, senders) as cases:
            h = await cases.open(ticket(ticket_id, "P1", opened_at=due_in(timedelta(seconds=lead))))
            first_run = (await h.describe()).run_id
            down_at = datetime.now(UTC)
            await status_when(h, lambda s: s.phase is Phase.ENGAGED)
            for n in range(30):  # one at a time: each a workflow task and a write of its own
                await h.signal("add_note", {"text": f"note {n}"})
                await asyncio.sleep(0.1)

            async def continued() -> bool:
                return (await dev_env.client.get_workflow_handle(h.id).describe()).run_id != first_run

            await until(continued, "continued as new while mail is down", timeout=20)
            figure("mail down: continued as new, since the case opened", datetime.now(UTC) - down_at)
            deadline = (await h.query(CaseWorkflow.status)).escalation_due_at
            assert deadline is not None
            await until(lambda: visible(dev_env.client, h.id, "CaseEscalated = true"), "escalated", lead + 30)
            figure("mail down: CaseEscalated visible after the deadline", datetime.now(UTC) - deadline)
            status = await h.query(CaseWorkflow.status)
            assert status.escalated and status.escalations[0].raised_at - deadline < ON_TIME
            assert smtp.keys(h.id) == []

            await until_outage_ends(down_at)
            smtp.start()
            up_at = datetime.now(UTC)
            sent = await until(lambda: emails_sent(pool, h.id), "every e-mail delivered", CATCH_UP)
            figure(f"mail back: all {len(sent)} e-mails delivered", datetime.now(UTC) - up_at)
            assert sorted(smtp.keys(h.id)) == sorted(sent)
            assert len(sent) >= 4, "the customer's and the TAM's at opening, the Tech Lead's and TAM's later"
            live = dev_env.client.get_workflow_handle(h.id)
            assert await failed_tasks(live) == 0
            await cases.terminate_running()
    finally:
        await senders.aclose()


async def resolved_and_confirmed(cases: Cases, ticket_id: str) -> WorkflowHandle[CaseWorkflow, Any]:
    """A P2 engaged, resolved, followed up and confirmed: on its way to the close."""
    handle = await awaiting_confirmation(cases, ticket_id)
    await handle.signal("customer_confirmed", {})
    return handle


@pytest.mark.timeout(CATCH_UP + 3 * OUTAGE + 120)
async def test_a_case_closes_during_a_mail_outage_and_the_relay_delivers_what_it_left(
    dev_env: WorkflowEnvironment, own_pool: asyncpg.Pool, task_queue: str, ticket_id: str, smtp: SmtpServer
) -> None:
    """On a PostgreSQL of its own: the relay takes every pending row, and there they are this case's."""
    pool = own_pool
    senders = senders_from_env(smtp_env(smtp.port))
    try:
        async with case_worker(dev_env, pool, task_queue, round_the_clock_policy(), senders) as cases:
            h = await resolved_and_confirmed(cases, ticket_id)
            asked = datetime.now(UTC)
            outcome = await asyncio.wait_for(h.result(), timeout=60)
            figure("mail down: the run completed after the confirmation", datetime.now(UTC) - asked)
            assert outcome.close_reason is CloseReason.CONFIRMED
            assert smtp.keys(h.id) == []
            left = [r for r in await rows(pool, "notifications", h.id) if r["state"] == "pending"]
            assert left, "the case closed with its mail still to deliver"

            smtp.start()
            report = await dev_env.client.execute_workflow(
                OutboxRelayWorkflow.run,
                RelayRequest(idle=timedelta(0)),
                id=f"relay-{ticket_id}",
                task_queue=task_queue,
            )
            assert (report.looked_at, report.delivered, report.retry_later) == (len(left), len(left), 0)
            sent = await until(lambda: emails_sent(pool, h.id), "every e-mail delivered", 30)
            assert sorted(smtp.keys(h.id)) == sorted(sent)
    finally:
        await senders.aclose()
