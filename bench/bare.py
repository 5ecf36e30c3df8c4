"""The yardsticks of `bench.lifecycle`: a bare Temporal workflow of five activities and one signal, and
one that takes five updates, as many as a lifecycle's client sends, each answered at once."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
async def bare_step(n: int) -> int:
    return n


@workflow.defn
class BareWorkflow:
    def __init__(self) -> None:
        self._released = False

    @workflow.signal
    def release(self) -> None:
        self._released = True

    @workflow.run
    async def run(self) -> int:
        for n in range(5):
            await workflow.execute_activity(bare_step, n, start_to_close_timeout=timedelta(seconds=30))
        await workflow.wait_condition(lambda: self._released)
        return 5


STEPS = 5


@workflow.defn
class BareUpdatesWorkflow:
    def __init__(self) -> None:
        self._steps = 0

    @workflow.update
    def step(self, n: int) -> int:
        self._steps += 1
        return n

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._steps == STEPS)
        return self._steps


async def serve(address: str, task_queue: str) -> None:
    """Run the yardsticks' worker alone, as its own process, with the SDK's defaults, until it is stopped."""
    import asyncio

    from temporalio.client import Client
    from temporalio.worker import Worker

    client = await Client.connect(address)
    workflows = [BareWorkflow, BareUpdatesWorkflow]
    async with Worker(client, task_queue=task_queue, workflows=workflows, activities=[bare_step]):
        await asyncio.Event().wait()


if __name__ == "__main__":
    import asyncio
    import sys

    asyncio.run(serve(sys.argv[1], sys.argv[2]))
