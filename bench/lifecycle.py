"""A full P1 lifecycle beside a bare Temporal workflow: `python -m bench.lifecycle [--cases 50] [--rounds 4]`.

With `--cases 200 --rounds 1` it is also the measure of 200 concurrent lifecycles' update latency.

All run on the same dev server, the cases' worker and the yardsticks' each in a process of its own
(`worker.py` with the default policy, and `bench.bare`), the clients in this one, in interleaved rounds:
`--cases` at once of each yardstick in `bench.bare` (the bare workflow of 5 activities and 1 signal, one
of 5 updates answered at once, one of 5 updates each answered after a local activity, and the case's
footprint), then `--cases` P1 lifecycles at once (open, contact, two milestones, resolve, the system's
follow-up, confirm, each action an update), and again.
Prints each kind's rate and the lifecycle's rate as a multiple of the bare workflow's, the CPU each kind
costs its worker, the dev server, PostgreSQL and the clients, a workflow (on a machine whose cores are
all busy, those are what bound the rates), and the update latency of every kind that takes updates, at
the same concurrency.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import TypedSearchAttributes

from bench.bare import (
    FOOTPRINT,
    BareRecordedUpdatesWorkflow,
    BareUpdatesWorkflow,
    BareWorkflow,
    CaseFootprintWorkflow,
)
from bench.bare import STEPS as BARE_STEPS
from bench.stack import PROJECT, bench_stack, header, process_cpu
from stack.cases import details_of, open_case, preview_of, summary_of, update_action
from stack.samples import ticket
from workflows import search

STEPS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("customer_contacted", {"channel": "call"}),
    ("milestone_verified", {"milestone": "data_verified"}),
    ("milestone_verified", {"milestone": "troubleshooting"}),
    ("resolved", {"summary": "rolled back"}),
    ("customer_confirmed", {}),
)


async def bare(client: Client, task_queue: str) -> None:
    handle = await client.start_workflow(
        BareWorkflow.run, id=f"bare-{uuid.uuid4().hex[:10]}", task_queue=task_queue
    )
    await handle.signal(BareWorkflow.release)
    await handle.result()


async def bare_updates(
    client: Client, task_queue: str, kind: type[BareUpdatesWorkflow | BareRecordedUpdatesWorkflow]
) -> None:
    handle = await client.start_workflow(
        kind.run, id=f"bare-updates-{uuid.uuid4().hex[:10]}", task_queue=task_queue
    )
    await steps(handle, UPDATES[kind])


async def footprint(client: Client, task_queue: str) -> None:
    t = ticket(f"F-{uuid.uuid4().hex[:10]}", "P1")
    handle = await client.start_workflow(
        CaseFootprintWorkflow.run,
        "x" * FOOTPRINT["ticket"],
        id=f"footprint-{t.ticket_id}",
        task_queue=task_queue,
        search_attributes=TypedSearchAttributes(search.pairs_at_start(preview_of(t))),
        static_summary=summary_of(t),
        static_details=details_of(t),
    )
    await steps(handle, "case footprint")


async def steps(handle: WorkflowHandle[Any, Any], kind: str) -> None:
    for n in range(BARE_STEPS):
        started = time.perf_counter()
        await handle.execute_update("step", n)
        LATENCIES[kind].append((n, time.perf_counter() - started))
    await handle.result()


UPDATES = {BareUpdatesWorkflow: "bare updates", BareRecordedUpdatesWorkflow: "bare recorded updates"}


PATIENCE = timedelta(minutes=10)
"""Longer than any answer under load: the bench measures the wait, so it never gives up on one."""
LATENCIES: dict[str, list[tuple[int, float]]] = {
    "lifecycle": [],
    "bare updates": [],
    "bare recorded updates": [],
    "case footprint": [],
}
"""Each update's place in its workflow and the seconds it took, from its sending to the answer."""


async def act(client: Client, ticket_id: str, action: str, payload: dict[str, Any]) -> float:
    """An update's seconds from its sending to the answer (one sent while the case is still being opened
    waits in the case for its triage)."""
    started = time.perf_counter()
    await update_action(client, ticket_id, action, payload, wait=PATIENCE)
    return time.perf_counter() - started


async def lifecycle(client: Client, task_queue: str) -> None:
    t = ticket(f"L-{uuid.uuid4().hex[:10]}", "P1")
    handle = await open_case(client, t, task_queue=task_queue)
    for n, (action, payload) in enumerate(STEPS):
        LATENCIES["lifecycle"].append((n, await act(client, t.ticket_id, action, payload)))
    await handle.result()


async def timed(n: int, one: Any) -> float:
    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(n)))
    return time.perf_counter() - started


SIDES = ("worker", "server", "postgres", "client")


def cpu(pids: dict[str, int]) -> dict[str, float]:
    """The clients are this process alone; its children are the servers and workers."""
    return {side: process_cpu(pid, children=side != "client") for side, pid in pids.items()}


async def main(cases: int, rounds: int) -> None:
    async with bench_stack() as stack:
        client, queue = stack.env.client, "bench-lifecycle"
        env = os.environ | {
            "TEMPORAL_ADDRESS": stack.temporal_address,
            "DATABASE_URL": stack.database_url,
            "ABH_TASK_QUEUE": queue,
        }
        cases_worker = [sys.executable, str(PROJECT / "worker.py"), "--json-logs"]
        bare_worker = [sys.executable, "-m", "bench.bare", stack.temporal_address, f"{queue}-bare"]
        as_cases_worker = [*bare_worker[:-1], f"{queue}-as-cases", "as-cases"]
        workers = [
            subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
                command, env=env, cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
            for command in (cases_worker, bare_worker, as_cases_worker)
        ]
        shared = {"server": stack.server_pid, "postgres": stack.postgres_pid, "client": os.getpid()}
        runs = {
            "bare": (lambda: bare(client, f"{queue}-bare"), workers[1].pid),
            "bare updates": (
                lambda: bare_updates(client, f"{queue}-bare", BareUpdatesWorkflow),
                workers[1].pid,
            ),
            "bare recorded updates": (
                lambda: bare_updates(client, f"{queue}-as-cases", BareRecordedUpdatesWorkflow),
                workers[2].pid,
            ),
            "case footprint": (lambda: footprint(client, f"{queue}-as-cases"), workers[2].pid),
            "lifecycle": (lambda: lifecycle(client, queue), workers[0].pid),
        }
        spent = dict.fromkeys(runs, 0.0)
        busy = {kind: dict.fromkeys(SIDES, 0.0) for kind in runs}
        try:
            for _ in range(rounds):
                for kind, (one, worker_pid) in runs.items():
                    pids = shared | {"worker": worker_pid}
                    before = cpu(pids)
                    spent[kind] += await timed(cases, one)
                    for side, seconds in cpu(pids).items():
                        busy[kind][side] += seconds - before[side]
        finally:
            for process in workers:
                process.terminate()
                process.wait(timeout=30)
    header()
    total = cases * rounds
    rate = {kind: total / seconds for kind, seconds in spent.items()}
    ratio = {kind: r / rate["bare"] for kind, r in rate.items()}
    print(f"{rounds} interleaved rounds of {cases} at once, {total} of each kind")
    print(f"bare workflow (5 activities, 1 signal): {rate['bare']:.1f} workflows/s")
    print(f"bare workflow of {BARE_STEPS} updates: {rate['bare updates']:.1f} workflows/s")
    print(
        f"bare workflow of {BARE_STEPS} updates, each answered after a local activity: "
        f"{rate['bare recorded updates']:.1f} workflows/s ({ratio['bare recorded updates']:.2f}x)"
    )
    print(
        "the case's footprint (a lifecycle's events and payloads, none of its work): "
        f"{rate['case footprint']:.1f} workflows/s ({ratio['case footprint']:.2f}x)"
    )
    print(
        "full P1 lifecycle (open, contact, 2 milestones, resolve, follow-up, confirm): "
        f"{rate['lifecycle']:.1f} cases/s"
    )
    print(f"lifecycle rate / bare rate: {ratio['lifecycle']:.2f}x")
    print(f"CPU a workflow, ms ({' / '.join(SIDES)}):")
    for kind, sides in busy.items():
        print(f"  {kind}: " + " / ".join(f"{1000 * sides[side] / total:.0f}" for side in SIDES))
    for kind, latencies in LATENCIES.items():
        ms = sorted(seconds * 1000 for _, seconds in latencies)
        first = statistics.median(seconds * 1000 for n, seconds in latencies if n == 0)
        later = statistics.median(seconds * 1000 for n, seconds in latencies if n > 0)
        print(
            f"{kind} ({cases} workflows at once): {len(ms)} updates, p50 {statistics.median(ms):.0f} ms, "
            f"p95 {ms[int(len(ms) * 0.95) - 1]:.0f} ms; the first of each workflow p50 {first:.0f} ms, "
            f"the later ones p50 {later:.0f} ms"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.cases, args.rounds))
