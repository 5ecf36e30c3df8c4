"""A case's run ends in a workflow task that numbered no timeline entry. Temporal refuses to end a run
while a signal waits, and the retried task takes the signal first; had the refused task stored the
closure, the retry would number its entries afresh over the rows already stored and the e-mails already
sent (`QUIET_END`)."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.cases import awaiting_confirmation, case_worker, round_the_clock_policy, rows, until
from workflows.case import CaseWorkflow


@pytest.mark.timeout(120)
async def test_an_action_sent_while_the_closure_is_stored_is_stored_after_it_and_the_closure_once(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy()) as cases:
        handle = await awaiting_confirmation(cases, ticket_id)

        async def follow_up_stored() -> bool:
            found = await rows(pool, "cases", handle.id)
            return bool(found) and found[0]["phase"] == "awaiting_confirmation"

        await until(follow_up_stored, "the follow-up stored", 30)
        async with pool.acquire() as conn:
            held = conn.transaction()
            await held.start()
            # The case row locked: the closure's local activity waits on it, inside the closing task.
            await conn.execute("SELECT 1 FROM cases WHERE workflow_id = $1 FOR UPDATE", handle.id)
            await handle.signal("customer_confirmed", {})
            await asyncio.sleep(1.5)
            await handle.signal("add_note", {"text": "sent while the closure is stored"})
            await asyncio.sleep(1.0)
            await held.rollback()
        await asyncio.wait_for(handle.result(), 60)
        final = await handle.query(CaseWorkflow.status)

    stored = await rows(pool, "case_events", handle.id)
    assert [(r["seq"], r["type"]) for r in stored] == [(e.seq, e.type) for e in final.timeline]
    assert [e.type for e in final.timeline[-3:]] == ["customer_confirmed", "closed", "rejected"]
    assert "is closed" in final.timeline[-1].detail
    closures = [r for r in await rows(pool, "notifications", handle.id) if r["kind"] == "case_closed"]
    assert len(closures) == 1 and closures[0]["state"] == "sent"
