"""No case stalls on ordinary bad data or a refusing provider: real dev server, PostgreSQL, loopback SMTP
and HTTP receivers. Outage lengths come from ABH_TEST_OUTAGE_SECONDS (short by default, so the suite
stays quick; the README gives the figures of the full-length runs)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.testing import WorkflowEnvironment

from activities.senders import Senders
from console import render
from console.attention import attention_report
from tests.cases import (
    ESCALATION,
    OUTAGE,
    case_worker,
    due_in,
    failed_tasks,
    highest_attempt,
    quiet,
    round_the_clock_policy,
    rows,
    settled,
    status_when,
    ticket,
    until,
    visible,
)
from tests.test_senders import Mailbox, Receiver
from workflows.case import CaseWorkflow
from workflows.models import CloseReason, Phase

REJECTION_LIMIT = 1_000


@pytest.mark.timeout(120)
async def test_poison_signals_are_rejected_bounded_and_the_escalation_fires_on_time(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy()) as cases:
        opened_at = due_in(timedelta(seconds=10))
        h = await cases.open(ticket(ticket_id, "P1", opened_at=opened_at))
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        megabyte = {f"unknown-key-{n:06d}-{'x' * 32}": "v" for n in range(20_000)}
        await h.signal("add_note", {"te\x00xt": "x"})
        await h.signal("add\x00note", {"text": "x"})
        await h.signal("add_note", megabyte)

        deadline = opened_at + ESCALATION
        await until(lambda: visible(dev_env.client, h.id, "CaseEscalated = true"), "escalated", timeout=40)
        seen = datetime.now(UTC)
        status = await settled(h, pool)
        # On time as the case recorded it (its clock when the escalation fired) and as PostgreSQL did;
        # the visibility poll above only shows it reached the Web UI, with the dev server's own lag.
        fired = next(e.at for e in status.timeline if e.type == "escalated")
        [row] = await rows(pool, "escalations", h.id)
        late = {"escalated": fired, "row": row["created_at"], "visible": seen}
        figures = ", ".join(f"{k} {(t - deadline).total_seconds():.1f} s" for k, t in late.items())
        print(f"\nFIGURE poison signals, after the deadline: {figures}")
        assert fired - deadline < timedelta(seconds=5), f"escalated {fired - deadline} after its deadline"
        assert row["created_at"] - deadline < timedelta(seconds=5), f"row {row['created_at'] - deadline} late"

        rejected = [e for e in status.timeline if e.type == "rejected"]
        assert len(rejected) == 3
        assert all(len(e.detail) < REJECTION_LIMIT for e in rejected), [len(e.detail) for e in rejected]
        assert "te\\x00xt: Extra inputs are not permitted" in rejected[0].detail
        assert "unknown action 'add\\x00note'" in rejected[1].detail
        assert "and 19996 more" in rejected[2].detail
        stored = [r for r in await rows(pool, "case_events", h.id) if r["type"] == "rejected"]
        assert [r["detail"] for r in stored] == [e.detail for e in rejected]
        assert await failed_tasks(h) == 0
        assert await highest_attempt(h) <= 3
        await cases.terminate_running()


@pytest.mark.timeout(120)
async def test_line_breaks_in_subject_and_summary_reach_every_channel_once_on_one_line(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    wired: tuple[Senders, Receiver, Mailbox],
) -> None:
    real_channels, receiver, box = wired
    subject = "Checkout\nAPI\r\ndown\u2028since 09:00"
    summary = "Rolled back the release.\nCleared the cache.\nCheckout answers again."
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy(), real_channels) as cases:
        h = await cases.open(
            ticket(ticket_id, "P1", subject=subject, opened_at=due_in(-timedelta(minutes=1)))
        )
        await status_when(h, lambda s: s.escalated)
        await h.execute_update("resolved", {"summary": summary, "by": "alice"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await h.execute_update("customer_confirmed", {})
        outcome = await h.result()
        assert outcome.close_reason is CloseReason.CONFIRMED

    outbox = await until(lambda: _all_settled(pool, h.id), "every notification settled", timeout=30)
    assert {r["state"] for r in outbox} == {"sent"}, [(r["dedupe_key"], r["state"]) for r in outbox]
    mails = [m for m in box.messages() if str(m["X-ABH-Dedupe-Key"]).startswith(h.id)]
    mail_keys = [str(m["X-ABH-Dedupe-Key"]) for m in mails]
    assert sorted(mail_keys) == sorted(r["dedupe_key"] for r in outbox if r["channel"] == "email")
    for m in mails:
        raw_subject = m.get_all("Subject")
        assert raw_subject is not None and len(raw_subject) == 1
        assert not any(c in str(m["Subject"]) for c in "\r\n\u2028"), m["Subject"]
    tam = [m for m in mails if "resolved:" in str(m["Subject"])]
    assert tam and "Rolled back the release. Cleared the cache." in str(tam[0]["Subject"])
    hooks = [r["dedupe_key"] for r in outbox if r["channel"] != "email"]
    assert hooks and all(len([x for x in receiver.hits_for(k) if x.path]) == 1 for k in hooks)
    assert "down since 09:00" in receiver.hits_for(hooks[0])[0].body.decode()


async def _all_settled(pool: asyncpg.Pool, workflow_id: str) -> list[asyncpg.Record] | None:
    found = await rows(pool, "notifications", workflow_id)
    return found if found and all(r["state"] not in ("pending", "sending") for r in found) else None


@pytest.mark.timeout(180)
async def test_a_refused_page_key_is_retried_shown_to_operators_and_delivered_once_it_works(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    wired: tuple[Senders, Receiver, Mailbox],
) -> None:
    real_channels, receiver, _ = wired
    receiver.refusing["/page"] = 401
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy(), real_channels) as cases:
        h = await cases.open(ticket(ticket_id, "P1", opened_at=due_in(-timedelta(minutes=1))))
        await status_when(h, lambda s: s.escalated)
        await until(lambda: visible(dev_env.client, h.id, "CaseNeedsAttention = true"), "flagged", timeout=30)

        report = await attention_report(dev_env.client, pool)
        (stuck,) = [c for c in report.cases if c.workflow_id == h.id]
        assert any("CredentialsRefused" in t.error and "401" in t.error for t in stuck.troubles), stuck
        metadata = await h.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "**Needs attention:** delivering" in metadata.current_details
        render.attention(report)
        await asyncio.sleep(max(OUTAGE - 5, 0))
        del receiver.refusing["/page"]
        works_at = datetime.now(UTC)

        pages = await until(
            lambda: _sent_on(pool, h.id, "page"), "the page delivered after the key works", timeout=120
        )
        took = (datetime.now(UTC) - works_at).total_seconds()
        print(f"\nFIGURE (refused {OUTAGE:.0f} s) page delivered after the key worked again: {took:.1f} s")
        for key in pages:
            delivered = [x for x in receiver.hits_for(key) if x.key in receiver.delivered]
            assert receiver.delivered[key].key == key and len(delivered) >= 1
            assert sum(1 for x in receiver.hits_for(key)) - _refused_count(receiver, key) == 1
        await until(
            lambda: visible(dev_env.client, h.id, "CaseNeedsAttention = false"), "cleared", timeout=30
        )
        await quiet(h)
        assert h.id not in [c.workflow_id for c in (await attention_report(dev_env.client, pool)).cases]
        assert await failed_tasks(h) == 0
        status = await h.query(CaseWorkflow.status)
        assert status.attention == []
        await cases.terminate_running()


async def _sent_on(pool: asyncpg.Pool, workflow_id: str, channel: str) -> list[str] | None:
    found = [r for r in await rows(pool, "notifications", workflow_id) if r["channel"] == channel]
    return [r["dedupe_key"] for r in found] if found and all(r["state"] == "sent" for r in found) else None


def _refused_count(receiver: Receiver, key: str) -> int:
    """Requests for `key` answered before the provider took it (the refusals)."""
    hits = receiver.hits_for(key)
    first = receiver.delivered[key]
    return next(i for i, x in enumerate(hits) if x is first)
