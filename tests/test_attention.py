"""Notifications an operator must look at: listed from PostgreSQL, and an e-mail in doubt settled by hand."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import pytest
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.testing import WorkflowEnvironment

import starter
from console.attention import stuck_cases
from console.outbox import NotSettled, needing_attention, settle
from tests.cases import ticket
from workflows import search
from workflows.models import WORKFLOW_TYPE, case_workflow_id

STATES = ("pending", "sending", "sent", "failed", "unknown")


async def outbox(pool: asyncpg.Pool, workflow_id: str | None = None) -> str:
    """One case with a row in every state, created a second apart; returns the workflow id."""
    workflow_id = workflow_id or f"case-T-{uuid.uuid4().hex[:10]}"
    for n, state in enumerate(STATES, start=1):
        await pool.execute(
            "INSERT INTO notifications (dedupe_key, workflow_id, seq, kind, channel, role, recipient,"
            " subject, body, state, last_error, created_at)"
            " VALUES ($1, $2, $3, 'tam_update', 'email', 'tam', 'tam@acme.example', $4, 'body', $5, $6,"
            " now() - make_interval(secs => $7))",
            f"{workflow_id}:{n}:{state}",
            workflow_id,
            n,
            f"subject {state}",
            state,
            "SMTP 550 mailbox unavailable" if state == "failed" else None,
            float(10 - n),
        )
    return workflow_id


async def test_unknown_and_failed_rows_are_listed_oldest_first(pool: asyncpg.Pool) -> None:
    workflow_id = await outbox(pool)
    await outbox(pool)  # another case's rows stay out of a listing for this one

    rows = await needing_attention(pool, workflow_id=workflow_id)
    assert [(r.state, r.last_error) for r in rows] == [
        ("failed", "SMTP 550 mailbox unavailable"),
        ("unknown", None),
    ]
    stuck = await needing_attention(pool, ("sending", "pending"), workflow_id=workflow_id)
    assert [r.state for r in stuck] == ["pending", "sending"]


async def test_an_operator_settles_an_email_in_doubt_once(pool: asyncpg.Pool) -> None:
    workflow_id = await outbox(pool)
    key = f"{workflow_id}:5:unknown"

    row = await settle(pool, key, "sent", by="dana", note="in the provider's log at 14:02")

    assert (row.state, row.settled_at is not None) == ("sent", True)
    stored = await pool.fetchrow("SELECT attempt_log, sent_at FROM notifications WHERE dedupe_key = $1", key)
    assert stored is not None and stored["sent_at"] is not None
    entry = json.loads(stored["attempt_log"])[-1]
    assert (entry["claim"], entry["outcome"], entry["by"]) == ("operator", "settled sent", "dana")
    assert [r.state for r in await needing_attention(pool, workflow_id=workflow_id)] == ["failed"]
    with pytest.raises(NotSettled, match="is sent; only an unknown one takes a verdict"):
        await settle(pool, key, "failed", by="dana")
    with pytest.raises(NotSettled, match="no notification with dedupe key"):
        await settle(pool, "case-T-none:1:x", "sent", by="dana")


async def test_a_verdict_of_failed_records_who_and_why(pool: asyncpg.Pool) -> None:
    workflow_id = await outbox(pool)
    row = await settle(pool, f"{workflow_id}:5:unknown", "failed", by="dana", note="bounced")
    assert (row.state, row.last_error) == ("failed", "settled failed by dana: bounced")


def test_the_starter_lists_and_settles(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", database_url)
    ticket = f"T-{uuid.uuid4().hex[:10]}"
    key = f"case-{ticket}:5:unknown"

    async def seed() -> None:
        pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
        try:
            await outbox(pool, f"case-{ticket}")
        finally:
            await pool.close()

    asyncio.run(seed())
    assert starter.main(["notifications", "--ticket", ticket, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(r["dedupe_key"], r["state"]) for r in listed] == [
        (f"case-{ticket}:4:failed", "failed"),
        (key, "unknown"),
    ]
    assert starter.main(["settle-notification", key, "--sent", "--by", "dana"]) == 0
    assert capsys.readouterr().out.strip() == f"{key} is now sent"
    assert starter.main(["settle-notification", key, "--failed", "--by", "dana"]) == 2
    assert "only an unknown one takes a verdict" in capsys.readouterr().err
    assert starter.main(["notifications", "--ticket", ticket]) == 0
    table = capsys.readouterr().out
    assert "1 notification" in table and "SMTP 550 mailbox unavailable" in table


async def test_a_row_still_pending_after_several_attempts_is_listed(pool: asyncpg.Pool) -> None:
    from console.outbox import abandoned_sends

    workflow_id = await outbox(pool)
    key = f"{workflow_id}:1:pending"
    assert key not in [r.dedupe_key for r in await abandoned_sends(pool, limit=1000)]
    await pool.execute("UPDATE notifications SET attempts = 3 WHERE dedupe_key = $1", key)
    assert key in [r.dedupe_key for r in await abandoned_sends(pool, limit=1000)]


async def test_all_running_still_lists_a_flagged_case_between_its_rounds(
    dev_env: WorkflowEnvironment, task_queue: str, ticket_id: str
) -> None:
    """A case flagged CaseNeedsAttention that waits on its round's timer has no pending activity: plain
    `attention` lists it, and `--all-running`, which adds cases, must too."""
    handle = await dev_env.client.start_workflow(
        WORKFLOW_TYPE,
        ticket(ticket_id, "P1"),
        id=case_workflow_id(ticket_id),
        task_queue=task_queue,  # no worker: the case never runs, and nothing of it is pending
        search_attributes=TypedSearchAttributes([SearchAttributePair(search.CASE_NEEDS_ATTENTION, True)]),
    )
    try:
        query = f'WorkflowId = "{handle.id}" AND CaseNeedsAttention = true'
        for _ in range(100):
            if [e async for e in dev_env.client.list_workflows(query)]:
                break
            await asyncio.sleep(0.1)
        listed = [c.workflow_id for c in await stuck_cases(dev_env.client, all_running=True)]
    finally:
        await handle.terminate("test over")
    assert handle.id in listed
