"""End to end: worker.py as its own process on the dev server and PostgreSQL, one case to closure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from stack.cases import CaseAlreadyExists, case_status, handle_for, open_case, signal_action
from tests.cases import rows, ticket, until
from tests.worker_process import worker_process
from workflows.models import CloseReason, Phase

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def fast_policy(tmp_path: Path) -> Path:
    """The demo policy with a 3-second Tech Lead escalation, so the test escalates in real time."""
    text = (ROOT / "policies" / "demo.toml").read_text().replace("after = 60", "after = 3")
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def test_worker_process_drives_a_case_to_closure(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    database_url: str,
    task_queue: str,
    ticket_id: str,
    fast_policy: Path,
) -> None:
    env = {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DATABASE_URL": database_url,
        "ABH_TASK_QUEUE": task_queue,
        "ABH_POLICY_FILE": str(fast_policy),
    }
    client = dev_env.client
    async with worker_process(env):
        await open_case(client, ticket(ticket_id, "P1"), task_queue=task_queue)
        with pytest.raises(CaseAlreadyExists, match=f"ticket {ticket_id} already has a case"):
            await open_case(client, ticket(ticket_id, "P1"), task_queue=task_queue)

        await until(lambda: _phase_is(client, ticket_id, Phase.ENGAGED), "engaged")
        await signal_action(client, ticket_id, "customer_contacted", {"channel": "call"})
        escalated = await until(lambda: _escalated(client, ticket_id), "escalated")
        assert [e.level for e in escalated.escalations] == ["tech_lead"]

        found = await until(
            lambda: _visible(
                client, f'CasePriority="P1" AND CaseEscalated=true AND WorkflowId="case-{ticket_id}"'
            ),
            "listed as escalated",
        )
        assert found == [f"case-{ticket_id}"]

        await signal_action(client, ticket_id, "resolved", {"summary": "rolled back", "by": "alice"})
        await until(lambda: _follow_up_sent(client, ticket_id), "follow-up sent")
        await signal_action(client, ticket_id, "customer_confirmed", {})
        outcome = await asyncio.wait_for(handle_for(client, ticket_id).result(), 30)
        assert outcome.close_reason is CloseReason.CONFIRMED
        closed = await until(
            lambda: _visible(client, f'CasePhase="closed" AND WorkflowId="case-{ticket_id}"'),
            "listed as closed",
        )
        assert closed == [f"case-{ticket_id}"]

    wf = f"case-{ticket_id}"
    case = (await rows(pool, "cases", wf))[0]
    assert (case["phase"], case["close_reason"], case["escalated"]) == ("closed", "confirmed", True)
    assert len(await rows(pool, "escalations", wf)) == 1
    # The SLA clocks' moments fall between (tests/test_sla_events.py); the lifecycle reads without them.
    events = [e["type"] for e in await rows(pool, "case_events", wf) if e["type"] != "sla_clock"]
    assert events[:3] == ["opened", "assigned", "engaged"] and events[-1] == "closed"
    assert {"escalated", "resolved", "follow_up_sent", "customer_confirmed"} <= set(events)
    sent = {(n["kind"], n["channel"]) for n in await rows(pool, "notifications", wf)}
    assert {("customer_call", "call"), ("case_opened", "email"), ("follow_up", "email")} <= sent
    assert all(n["state"] == "sent" for n in await rows(pool, "notifications", wf))


async def _phase_is(client, ticket_id: str, phase: Phase) -> bool:  # type: ignore[no-untyped-def]
    return (await case_status(client, ticket_id)).phase is phase


async def _escalated(client, ticket_id: str):  # type: ignore[no-untyped-def]
    status = await case_status(client, ticket_id)
    return status if status.escalated else None


async def _follow_up_sent(client, ticket_id: str) -> bool:  # type: ignore[no-untyped-def]
    return (await case_status(client, ticket_id)).follow_up_sent_at is not None


async def _visible(client, query: str) -> list[str]:  # type: ignore[no-untyped-def]
    return [wf.id async for wf in client.list_workflows(query)]
