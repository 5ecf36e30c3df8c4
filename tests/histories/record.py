"""Record the event histories the replay test replays: `python -m tests.histories.record [NAME...]`.

Run it after a deliberate, patched change to the case workflow, and commit the new JSON files next to
the old ones (keep the old ones: they are the cases still running in production).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.client import WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.database import connect, migrate
from stack.cases import open_case, signal_action, update_action
from stack.client import register_search_attributes
from stack.embedded import bundled_binary, start_dev_server, start_postgres, temporary_postgres
from tests.cases import (
    advance_to,
    case_worker,
    round_the_clock_policy,
    status_when,
    ticket,
    until,
    updates_admitted,
)
from worker import pin_zone_rules
from workflows.case import CaseWorkflow
from workflows.models import Phase

HERE = Path(__file__).parent
Handle = WorkflowHandle[CaseWorkflow, Any]


async def p1_escalated_and_closed(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    await advance_to(env, 6, time(3, 0))
    async with case_worker(env, pool, "record") as cases:
        h = await cases.open(ticket(f"R1-{uuid.uuid4().hex[:6]}", "P1"))
        tid = h.id.removeprefix("case-")
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(env.client, tid, "customer_contacted", {"channel": "call"})
        await env.sleep(timedelta(minutes=61))
        await status_when(h, lambda s: s.escalated)
        await signal_action(env.client, tid, "resolved", {"summary": "rolled back"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await signal_action(env.client, tid, "customer_confirmed", {})
        await h.result()
    return h


async def p3_queued_paused_reopened(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    await advance_to(env, 4, time(18, 0))
    async with case_worker(env, pool, "record") as cases:
        h = await cases.open(ticket(f"R2-{uuid.uuid4().hex[:6]}", "P3"))
        tid = h.id.removeprefix("case-")
        await status_when(h, lambda s: s.phase is Phase.QUEUED)
        await env.sleep(timedelta(days=2, hours=16))
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(env.client, tid, "waiting_on_customer", {"note": "need logs"})
        await status_when(h, lambda s: s.paused)
        await env.sleep(timedelta(hours=3))
        await signal_action(env.client, tid, "customer_replied", {})
        await signal_action(env.client, tid, "milestone_verified", {"milestone": "data_verified"})
        await signal_action(env.client, tid, "resolved", {"summary": "driver upgraded"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await signal_action(env.client, tid, "customer_rejected", {"note": "still slow"})
        await status_when(h, lambda s: s.engagement == 2)
        await env.sleep(timedelta(hours=2))
        await signal_action(env.client, tid, "resolved", {"summary": "index rebuilt"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await signal_action(env.client, tid, "customer_confirmed", {})
        await h.result()
    return h


async def p1_acknowledged_and_updated(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    """A P1 whose tech lead acknowledges after one reminder, with customer updates, a missed update cycle
    and a pause: the acknowledgement, recurring-milestone and SLA-event patches."""
    await advance_to(env, 1, time(10, 0))
    async with case_worker(env, pool, "record") as cases:
        h = await cases.open(ticket(f"R6-{uuid.uuid4().hex[:6]}", "P1"))
        tid = h.id.removeprefix("case-")
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(env.client, tid, "customer_contacted", {"channel": "call"})
        await env.sleep(timedelta(minutes=20))
        await signal_action(env.client, tid, "customer_updated", {"note": "bridge open"})
        await env.sleep(timedelta(minutes=58))
        await status_when(h, lambda s: bool(s.escalations) and s.escalations[0].repeats == 1)
        await signal_action(env.client, tid, "escalation_acknowledged", {"level": "tech_lead", "by": "ana"})
        await signal_action(env.client, tid, "waiting_on_customer", {"note": "need a trace"})
        await env.sleep(timedelta(minutes=30))
        await signal_action(env.client, tid, "customer_replied", {})
        await signal_action(env.client, tid, "customer_updated", {"note": "trace read"})
        await signal_action(env.client, tid, "resolved", {"summary": "rolled back"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await signal_action(env.client, tid, "customer_confirmed", {})
        await h.result()
    return h


async def raised_to_p1_while_queued(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    """A P3 sent on a Friday night by a clock two minutes fast, queued, then raised to P1: it is engaged
    at once and moves to on-call (the opened-at and P1-owner patches)."""
    now = await advance_to(env, 4, time(20, 0))
    async with case_worker(env, pool, "record") as cases:
        ahead = now.replace(microsecond=0) + timedelta(minutes=2)
        h = await cases.open(ticket(f"R7-{uuid.uuid4().hex[:6]}", "P3", opened_at=ahead))
        tid = h.id.removeprefix("case-")
        await status_when(h, lambda s: s.phase is Phase.QUEUED)
        await env.sleep(timedelta(minutes=30))
        await signal_action(env.client, tid, "change_priority", {"priority": "P1", "reason": "site down"})
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(env.client, tid, "customer_contacted", {"channel": "call"})
        await signal_action(env.client, tid, "resolved", {"summary": "failed over"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await signal_action(env.client, tid, "customer_confirmed", {})
        await h.result()
    return h


async def cancelled(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    await advance_to(env, 1, time(10, 0))
    async with case_worker(env, pool, "record") as cases:
        h = await cases.open(ticket(f"R3-{uuid.uuid4().hex[:6]}", "P2"))
        tid = h.id.removeprefix("case-")
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        await signal_action(env.client, tid, "milestone_verified", {"milestone": "troubleshooting"})
        await signal_action(env.client, tid, "cancel", {"reason": "duplicate of R-1"})
        await h.result()
    return h


async def continued_as_new(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    """The first run of a case that continued as new: its history ends in the hand-over."""
    policy = round_the_clock_policy(continue_as_new_after_events=100, timeline_window=20)
    async with case_worker(env, pool, "record", policy) as cases:
        h = await cases.open(ticket(f"R4-{uuid.uuid4().hex[:6]}", "P3"))
        tid = h.id.removeprefix("case-")
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        for n in range(80):
            await signal_action(env.client, tid, "add_note", {"text": f"note {n}"})
        await signal_action(env.client, tid, "cancel", {"reason": "load test over"})
        await h.result()
    return env.client.get_workflow_handle_for(CaseWorkflow.run, h.id, run_id=h.first_execution_run_id)


async def updates_on_the_dev_server(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    async with case_worker(env, pool, "record", round_the_clock_policy()) as cases:
        h = await cases.open(ticket(f"R5-{uuid.uuid4().hex[:6]}", "P2"))
        tid = h.id.removeprefix("case-")
        await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        await update_action(env.client, tid, "assign", {"assignee": "alice@support.example"})
        await update_action(env.client, tid, "customer_contacted", {"channel": "email"})
        await update_action(env.client, tid, "change_priority", {"priority": "P1"})
        await signal_action(env.client, tid, "milestone_verified", {"milestone": "troubleshooting"})
        await update_action(env.client, tid, "resolved", {"summary": "fixed"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await update_action(env.client, tid, "customer_confirmed", {})
        await h.result()
    return h


async def updates_while_opened(env: WorkflowEnvironment, pool: asyncpg.Pool) -> Handle:
    """Updates sent before any worker took the case: accepted in its opening, they wait for the triage."""
    tid = f"R6-{uuid.uuid4().hex[:6]}"
    h = await open_case(env.client, ticket(tid, "P2"), task_queue="record")
    early = {
        "early-contact": ("customer_contacted", {"channel": "call"}),
        "early-confirm": ("customer_confirmed", {}),
    }
    answers = [
        asyncio.ensure_future(update_action(env.client, tid, action, payload, update_id=update_id))
        for update_id, (action, payload) in early.items()
    ]
    await until(lambda: updates_admitted(env.client, h.id, list(early)), "the updates wait for a worker")
    async with case_worker(env, pool, "record", round_the_clock_policy()):
        await asyncio.gather(*answers, return_exceptions=True)
        await update_action(env.client, tid, "resolved", {"summary": "fixed"})
        await status_when(h, lambda s: s.follow_up_sent_at is not None)
        await update_action(env.client, tid, "customer_confirmed", {})
        await h.result()
    return h


TIME_SKIPPING: dict[str, Callable[[WorkflowEnvironment, asyncpg.Pool], Awaitable[Handle]]] = {
    "p1_escalated_and_closed": p1_escalated_and_closed,
    "p3_queued_paused_reopened": p3_queued_paused_reopened,
    "cancelled": cancelled,
    "continued_as_new": continued_as_new,
    "p1_acknowledged_and_updated": p1_acknowledged_and_updated,
    "raised_to_p1_while_queued": raised_to_p1_while_queued,
}
DEV_SERVER = {
    "updates_on_the_dev_server": updates_on_the_dev_server,
    "updates_while_opened": updates_while_opened,
}


async def save(name: str, handle: Handle) -> None:
    history = await handle.fetch_history()
    (HERE / f"{name}.json").write_text(history.to_json(), encoding="utf-8")
    print(f"recorded {name}: {len(history.events)} events")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", help="the cases to record (default: all of them)")
    only = set(parser.parse_args().names) or set(TIME_SKIPPING) | set(DEV_SERVER)
    if unknown := only - set(TIME_SKIPPING) - set(DEV_SERVER):
        parser.error(f"no such case: {', '.join(sorted(unknown))}")
    pin_zone_rules()
    with temporary_postgres() as data_dir:
        pool = await connect(start_postgres(data_dir))
        await migrate(pool)
        for name, scenario in TIME_SKIPPING.items():
            if name not in only:
                continue
            env = await WorkflowEnvironment.start_time_skipping(
                data_converter=pydantic_data_converter,
                test_server_existing_path=bundled_binary("temporal-test-server"),
            )
            await register_search_attributes(env.client)
            await save(name, await scenario(env, pool))
            await env.shutdown()
        if only & set(DEV_SERVER):
            env = await start_dev_server(None, port=7399, ui=False)
            for name, scenario in DEV_SERVER.items():
                if name in only:
                    await save(name, await scenario(env, pool))
            await env.shutdown()
        await pool.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
