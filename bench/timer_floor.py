"""The floor under the simulator: `python -m bench.timer_floor --workflows 200 --timers 25`.

Workflows that do nothing but sleep, each through `--timers` timers at instants of their own over a
month, on one time-skipping server with an unsandboxed worker, as the simulator runs its replays. No
workflow code, no payloads, no local activity: what is left is the cost of one timer-driven workflow task
on this SDK, server and machine. Prints the wall-clock time and the CPU time of this process and the
server per workflow task.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from datetime import timedelta

from temporalio import workflow
from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from bench.stack import cpu_seconds, header
from simulator.run import quiet_runtime
from stack.embedded import bundled_binary

MONTH = timedelta(days=30)


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, waits: list[float]) -> int:
        for seconds in waits:
            await workflow.sleep(seconds)
        return len(waits)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workflows", type=int, default=200)
    parser.add_argument("--timers", type=int, default=25)
    args = parser.parse_args()
    header()
    rnd = random.Random(7)
    span = MONTH.total_seconds() / args.timers
    cpu_before = cpu_seconds()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=bundled_binary("temporal-test-server"), runtime=quiet_runtime()
    )
    try:
        async with Worker(
            env.client,
            task_queue="floor",
            workflows=[Sleeper],
            workflow_runner=UnsandboxedWorkflowRunner(),
            max_cached_workflows=10_000,
        ):
            began = time.monotonic()
            with env.auto_time_skipping_disabled():
                handles = await asyncio.gather(
                    *(
                        env.client.start_workflow(
                            Sleeper.run,
                            [rnd.uniform(60, span) for _ in range(args.timers)],
                            id=f"sleeper-{n}",
                            task_queue="floor",
                        )
                        for n in range(args.workflows)
                    )
                )
                await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
                await asyncio.gather(*(h.result() for h in handles))
            wall = time.monotonic() - began
    finally:
        await env.shutdown()
    cpu = cpu_seconds() - cpu_before
    tasks = args.workflows * (args.timers + 1)
    print(f"workflows: {args.workflows}, each through {args.timers} timers; workflow tasks: {tasks}")
    print(
        f"wall: {wall:.1f} s ({wall / args.workflows * 1000:.0f} ms a workflow, {tasks / wall:.0f} tasks/s)"
    )
    print(f"CPU, worker and server: {cpu:.1f} s ({cpu / tasks * 1000:.2f} ms a workflow task)")


if __name__ == "__main__":
    asyncio.run(main())
