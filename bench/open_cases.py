"""Many open cases on one worker: `python -m bench.open_cases [--cases 10000] [--sample 300]`.

Starts a dev server and PostgreSQL, then `worker.py` as its own process (settings from the environment,
so `ABH_MAX_*` tuning applies) with a policy whose targets lie weeks away, so the cases sit open and
idle as most cases do. Opens N P1 cases as fast as the server takes them (prints the rate), waits until
every one is engaged and stored, then prints the worker's RSS and the latency of `add_note` updates on a
random sample of them, one at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from bench.lifecycle import PATIENCE
from bench.stack import PROJECT, bench_stack, header
from stack.cases import open_case, update_action
from stack.samples import ticket
from workflows.policy import DEFAULT_POLICY_FILE


def idle_policy(folder: Path) -> Path:
    """The default policy with every target and escalation a month away."""
    text = DEFAULT_POLICY_FILE.read_text(encoding="utf-8")
    text = re.sub(r'"PT\d+[MH]"', '"P30D"', text)
    path = folder / "idle.toml"
    path.write_text(text, encoding="utf-8")
    return path


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main(cases: int, sample: int, concurrency: int) -> None:
    async with bench_stack() as stack:
        client = stack.env.client
        with tempfile.TemporaryDirectory() as tmp:
            env = os.environ | {
                "TEMPORAL_ADDRESS": stack.temporal_address,
                "DATABASE_URL": stack.database_url,
                "ABH_POLICY_FILE": str(idle_policy(Path(tmp))),
                "ABH_TASK_QUEUE": "bench-open",
            }
            worker = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is measured
                [sys.executable, str(PROJECT / "worker.py"), "--json-logs"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                ids = [f"O-{uuid.uuid4().hex[:10]}" for _ in range(cases)]
                gate = asyncio.Semaphore(concurrency)

                async def start(tid: str) -> None:
                    async with gate:
                        await open_case(client, ticket(tid, "P1"), task_queue="bench-open")

                began = time.perf_counter()
                await asyncio.gather(*(start(tid) for tid in ids))
                opening = time.perf_counter() - began
                query = "SELECT count(*) FROM cases WHERE phase = 'engaged'"
                while (engaged := await stack.pool.fetchval(query)) < cases:
                    if time.perf_counter() - began > 3600:
                        break
                    await asyncio.sleep(1)
                settled = time.perf_counter() - began
                await asyncio.sleep(5)
                rss = rss_mib(worker.pid)
                latencies = []
                for tid in random.sample(ids, min(sample, cases)):
                    t0 = time.perf_counter()
                    note = {"text": "still investigating"}
                    await update_action(client, tid, "add_note", note, wait=PATIENCE)
                    latencies.append((time.perf_counter() - t0) * 1000)
                rss_after = rss_mib(worker.pid)
            finally:
                worker.terminate()
                worker.wait(timeout=30)
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    header()
    rate = cases / opening
    print(f"opened {cases} P1 cases in {opening:.1f} s: {rate:.0f} starts/s ({concurrency} in flight)")
    print(f"all {engaged} engaged and stored {settled:.1f} s after the first start")
    print(f"worker RSS with every case open: {rss:.0f} MiB ({rss_after:.0f} MiB after the sample)")
    print(
        f"add_note updates on {len(latencies)} random open cases, one at a time: "
        f"p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms, "
        f"max {latencies[-1]:.0f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.cases, args.sample, args.concurrency))
