"""A closed case gives its undelivered notifications a grace before its run ends; what happens to the
case in that grace is stored before the run ends, even while PostgreSQL is down."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from stack.sender_config import senders_from_env
from tests.cases import (
    StoppablePostgres,
    case_worker,
    round_the_clock_policy,
    rows,
    until,
)
from tests.test_outages import SmtpServer, resolved_and_confirmed, smtp, smtp_env
from workflows.case import CaseWorkflow
from workflows.journal import DELIVERY_GRACE

__all__ = ["smtp"]  # the fixture this module borrows


@pytest.mark.timeout(180)
async def test_a_signal_refused_during_the_closing_grace_is_stored_before_the_run_ends(
    dev_env: WorkflowEnvironment,
    own_postgres: StoppablePostgres,
    own_pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    smtp: SmtpServer,
) -> None:
    senders = senders_from_env(smtp_env(smtp.port))  # the mail server never starts: mail stays undelivered
    try:
        async with case_worker(dev_env, own_pool, task_queue, round_the_clock_policy(), senders) as cases:
            handle = await resolved_and_confirmed(cases, ticket_id)

            async def closed_row() -> bool:
                found = await rows(own_pool, "cases", handle.id)
                return bool(found) and found[0]["phase"] == "closed"

            await until(closed_row, "the closed case stored", 30)
            own_postgres.stop()
            await handle.signal("add_note", {"text": "a note after the close"})
            await asyncio.sleep(DELIVERY_GRACE.total_seconds() + 5)
            still = (await handle.describe()).status
            own_postgres.start()
            await asyncio.wait_for(handle.result(), 90)
            final = await handle.query(CaseWorkflow.status)
    finally:
        await senders.aclose()

    assert still is WorkflowExecutionStatus.RUNNING, "the run ended with an entry unstored"
    last = final.timeline[-1]
    assert last.type == "rejected" and "closed" in last.detail
    stored = await own_pool.fetchval("SELECT max(seq) FROM case_events WHERE workflow_id = $1", handle.id)
    assert stored == last.seq
