"""Throughput of the case engine on this machine: `python -m bench.throughput [--cases 200]`.

Starts a Temporal dev server and an embedded PostgreSQL in a temporary folder, runs one worker in this
process, opens N cases at once (round-the-clock calendar, so none waits for an opening), drives each
through contact, resolution and confirmation with updates, and prints what it measured.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import resource
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from activities.database import connect, migrate
from activities.policy_source import PolicySource
from stack import logs
from stack.cases import open_case, update_action
from stack.embedded import start_dev_server, start_postgres
from stack.samples import round_the_clock_policy, ticket
from worker import build_worker, pin_zone_rules
from workflows.models import Phase


async def one_case(client, task_queue: str, latencies: list[float]) -> None:  # type: ignore[no-untyped-def]
    t = ticket(f"B-{uuid.uuid4().hex[:10]}", "P2")
    handle = await open_case(client, t, task_queue=task_queue)
    while (await handle.query("status"))["phase"] != Phase.ENGAGED.value:
        await asyncio.sleep(0.5)
    for action, payload in (
        ("customer_contacted", {"channel": "email"}),
        ("milestone_verified", {"milestone": "data_verified"}),
        ("resolved", {"summary": "fixed"}),
    ):
        started = time.perf_counter()
        await update_action(client, t.ticket_id, action, payload)
        latencies.append(time.perf_counter() - started)
    while (await handle.query("status"))["follow_up_sent_at"] is None:
        await asyncio.sleep(0.5)
    await update_action(client, t.ticket_id, "customer_confirmed", {})
    await handle.result()


async def main(cases: int) -> None:
    pin_zone_rules()
    logs.configure(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as tmp:
        pool = await connect(start_postgres(Path(tmp) / "pg"), max_size=20)
        await migrate(pool)
        env = await start_dev_server(None, port=7377, ui=False)
        task_queue = "bench"
        source = PolicySource(policy=round_the_clock_policy())
        latencies: list[float] = []
        async with build_worker(env.client, pool, task_queue=task_queue, policy=source):
            started = time.perf_counter()
            await asyncio.gather(*(one_case(env.client, task_queue, latencies) for _ in range(cases)))
            elapsed = time.perf_counter() - started
        events = await pool.fetchval("SELECT count(*) FROM case_events")
        sent = await pool.fetchval("SELECT count(*) FROM notifications WHERE state = 'sent'")
        await env.shutdown()
        await pool.close()
    latencies.sort()
    print(f"cases opened and closed: {cases} in {elapsed:.1f} s = {cases / elapsed:.1f} cases/s")
    print(
        f"updates: {len(latencies)}, latency p50 {statistics.median(latencies) * 1000:.0f} ms, "
        f"p95 {latencies[int(len(latencies) * 0.95) - 1] * 1000:.0f} ms"
    )
    print(f"timeline entries stored: {events}, notifications delivered: {sent}")
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process (worker + client): {peak_mib:.0f} MiB")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=200)
    asyncio.run(main(parser.parse_args().cases))
