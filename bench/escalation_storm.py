"""Many escalations falling due at the same instant: `python -m bench.escalation_storm [--cases 1000]`.

Opens N P1 cases with the same `opened_at` on the dev server (the default P1 targets, an escalation
`--after` seconds after engagement, one worker in this process) and waits past their shared deadline.
Prints when each Tech Lead row reached PostgreSQL, counted from that deadline.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

from activities.policy_source import PolicySource
from bench.stack import bench_stack, header
from stack.cases import open_case
from stack.samples import round_the_clock_policy, ticket
from worker import build_worker
from workflows.policy import EscalationLevel


async def main(cases: int, after: float) -> None:
    policy = round_the_clock_policy(
        escalations=[EscalationLevel(name="tech_lead", after=timedelta(seconds=after))]
    )
    for prio in policy.priorities.values():
        prio.targets = {m: timedelta(hours=8) for m in prio.targets}
    async with bench_stack(pool_size=20) as stack:
        client, queue = stack.env.client, "bench-storm"
        opened_at = datetime.now(UTC).replace(microsecond=0)
        deadline = opened_at + timedelta(seconds=after)
        async with build_worker(client, stack.pool, task_queue=queue, policy=PolicySource(policy=policy)):
            started = time.perf_counter()
            batch = 100
            for first in range(0, cases, batch):
                await asyncio.gather(
                    *(
                        open_case(
                            client,
                            ticket(f"S-{uuid.uuid4().hex[:10]}", "P1", opened_at=opened_at),
                            task_queue=queue,
                        )
                        for _ in range(first, min(cases, first + batch))
                    )
                )
            opening = time.perf_counter() - started
            if datetime.now(UTC) >= deadline:
                raise SystemExit(f"opening took {opening:.0f} s, past the deadline: raise --after")
            while await stack.pool.fetchval("SELECT count(*) FROM escalations") < cases:
                if datetime.now(UTC) > deadline + timedelta(seconds=max(120, after)):
                    break
                await asyncio.sleep(0.5)
            rows = await stack.pool.fetch("SELECT created_at FROM escalations ORDER BY created_at")
    lags = [(r["created_at"] - deadline).total_seconds() for r in rows]
    header()
    print(f"{cases} P1 cases opened in {opening:.1f} s, all due to escalate at the same instant")
    print(f"Tech Lead rows written: {len(lags)} of {cases}")
    if lags:
        print(
            f"after the deadline: first {lags[0]:.1f} s, median {statistics.median(lags):.1f} s, "
            f"last {lags[-1]:.1f} s"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--after", type=float, default=150.0, help="escalation after engagement, seconds")
    args = parser.parse_args()
    asyncio.run(main(args.cases, args.after))
