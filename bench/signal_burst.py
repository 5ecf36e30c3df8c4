"""How a case takes a burst of signals: `python -m bench.signal_burst [--signals 5000]`.

Two bursts of `add_note` signals to one engaged case, on a dev server and an embedded PostgreSQL in a
temporary folder:

- piled up: sent while no worker runs (a worker outage), so the returning worker gets all of them in one
  workflow task. The SDK fails a workflow task whose code runs longer than 2 s without yielding, so the
  time of that one task is the figure that bounds how big a pile a case can absorb.
- live: sent 100 at a time to a case whose worker runs. When more than 100 events arrive while a workflow
  task is in flight, the server fails that task itself (cause FORCE_CLOSE_COMMAND) and the next one takes
  everything since the last completed task, so the same bound applies.

It prints, for each, the time until every note is in PostgreSQL, the longest workflow task and the
workflow task failures by cause.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
import uuid
from collections import Counter

import asyncpg
from temporalio.api.enums.v1 import EventType, TimeoutType, WorkflowTaskFailedCause
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.database import connect, migrate
from activities.policy_source import PolicySource
from stack import logs
from stack.cases import case_status, open_case
from stack.embedded import start_dev_server, start_postgres, temporary_postgres
from stack.samples import notes_stored, round_the_clock_policy, send_notes, ticket
from worker import build_worker, pin_zone_rules
from workflows.models import Phase

TASK_QUEUE = "bench-burst"


async def engaged_case(client: Client, source: PolicySource, pool: asyncpg.Pool) -> str:
    t = ticket(f"BB-{uuid.uuid4().hex[:10]}", "P3")
    async with build_worker(client, pool, task_queue=TASK_QUEUE, policy=source):
        handle = await open_case(client, t, task_queue=TASK_QUEUE)
        while (await case_status(client, t.ticket_id)).phase is not Phase.ENGAGED:
            await asyncio.sleep(0.1)
        await asyncio.sleep(1)
    return handle.id


async def workflow_tasks(client: Client, workflow_id: str) -> tuple[float, Counter[str]]:
    """The longest workflow task of every run of the case (seconds) and the failed tasks by cause."""
    longest, failures = 0.0, Counter[str]()
    async for run in client.list_workflows(f'WorkflowId = "{workflow_id}"'):
        started = {}
        history = client.get_workflow_handle(workflow_id, run_id=run.run_id).fetch_history_events()
        async for e in history:
            if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                started[e.event_id] = e.event_time.ToDatetime()
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
                began = started[e.workflow_task_completed_event_attributes.started_event_id]
                longest = max(longest, (e.event_time.ToDatetime() - began).total_seconds())
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                cause = e.workflow_task_failed_event_attributes.cause
                failures[WorkflowTaskFailedCause.Name(cause).removeprefix("WORKFLOW_TASK_FAILED_CAUSE_")] += 1
            elif e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_TIMED_OUT:
                kind = TimeoutType.Name(e.workflow_task_timed_out_event_attributes.timeout_type)
                failures[kind.removeprefix("TIMEOUT_TYPE_") + " timeout"] += 1
    return longest, failures


def report(label: str, signals: int, elapsed: float, longest: float, failures: Counter[str]) -> None:
    failed = ", ".join(f"{cause} x{n}" for cause, n in failures.most_common()) or "none"
    print(
        f"{label}: {signals} notes stored in {elapsed:.1f} s; longest workflow task {longest * 1000:.0f} ms; "
        f"failed workflow tasks: {failed}"
    )


async def piled_up(client: Client, source: PolicySource, pool: asyncpg.Pool, signals: int) -> None:
    piled = await engaged_case(client, source, pool)
    await send_notes(client, piled, range(signals))
    async with build_worker(client, pool, task_queue=TASK_QUEUE, policy=source):
        started = time.perf_counter()
        await notes_stored(pool, piled, signals, timeout=600)
        elapsed = time.perf_counter() - started
    tasks = await workflow_tasks(client, piled)
    report("piled up (timed from the worker's start)", signals, elapsed, *tasks)


async def live_flood(client: Client, source: PolicySource, pool: asyncpg.Pool, signals: int) -> None:
    live = await engaged_case(client, source, pool)
    async with build_worker(client, pool, task_queue=TASK_QUEUE, policy=source):
        started = time.perf_counter()
        await send_notes(client, live, range(signals))
        await notes_stored(pool, live, signals, timeout=600)
        elapsed = time.perf_counter() - started
    tasks = await workflow_tasks(client, live)
    report("live, 100 at a time (timed from the first signal)", signals, elapsed, *tasks)


async def main(signals: int, bursts: str) -> None:
    pin_zone_rules()
    logs.configure(level=logging.WARNING)
    with temporary_postgres() as data_dir:
        pool = await connect(start_postgres(data_dir), max_size=20)
        await migrate(pool)
        env: WorkflowEnvironment = await start_dev_server(None, port=7378, ui=False)
        client = env.client
        source = PolicySource(policy=round_the_clock_policy())

        if bursts in ("piled", "both"):
            await piled_up(client, source, pool, signals)
        if bursts in ("live", "both"):
            await live_flood(client, source, pool, signals)
        await env.shutdown()
        await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signals", type=int, default=5000)
    parser.add_argument("--bursts", choices=("piled", "live", "both"), default="both")
    args = parser.parse_args()
    asyncio.run(main(args.signals, args.bursts))
