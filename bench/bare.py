"""The yardsticks of `bench.lifecycle`:

- a bare Temporal workflow of five activities and one signal (the issue's yardstick);
- one that takes five updates, as many as a lifecycle's client sends, each answered at once;
- one whose five updates are each answered only after a local activity that does nothing: the shape
  Temporal gives any workflow that records an action outside itself before it confirms it, as a case does;
- the case's footprint: what Temporal carries for a P1 lifecycle as the bench drives it (start input
  and search attributes, markers, upserts, timers, answers the size of the case's status, a last task of
  its own), with none of the case's work: no rules, no PostgreSQL, no notifications.

`bench.lifecycle` runs the first two with the SDK's defaults, as the issue's yardstick does, and the last
two as the cases' workers run theirs (`as-cases`: unsandboxed), so that the footprint is the lifecycle
less the case's work."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from workflows.search import (
        CASE_ASSIGNEE,
        CASE_CUSTOMER,
        CASE_ESCALATED,
        CASE_OPENED_AT,
        CASE_PHASE,
        CASE_PRIORITY,
        CASE_SLA_BREACHED,
    )


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


@workflow.defn
class BareRecordedUpdatesWorkflow:
    def __init__(self) -> None:
        self._steps = 0

    @workflow.update
    async def step(self, n: int) -> int:
        await workflow.execute_local_activity(bare_step, n, start_to_close_timeout=timedelta(seconds=30))
        self._steps += 1
        return n

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self._steps == STEPS)
        return self._steps


@activity.defn
async def bare_record(entry: str, answer: int) -> str:
    """Stands for a change stored (`entry` is its size in bytes, and is not read) or for the policy
    snapshot read (`answer` bytes)."""
    return "x" * answer


FOOTPRINT = {
    "ticket": 310,
    "policy": 2_200,
    "change": 230,
    "answer": 4_500,
    "entry": 370,
    "outcome": 300,
}
"""Bytes, as measured in a lifecycle's history: the ticket it is opened with, the policy snapshot, a
stored change, the status the first action answers with and what each later one adds, the outcome."""
RESTARTS = (0, 3)
"""The actions after which a lifecycle's next deadline moves (contacted, resolved): a timer cancelled
and another started."""
UPSERTS = (3, 4)
"""The actions that change what an operator filters on (resolved, confirmed and closed)."""


async def record(entry: int, answer: int = 0) -> None:
    """A local activity taking `entry` bytes and answering `answer`."""
    await workflow.execute_local_activity(
        bare_record, args=["x" * entry, answer], start_to_close_timeout=timedelta(seconds=30)
    )


@workflow.defn
class CaseFootprintWorkflow:
    """The case's footprint (above). Its input stands for the ticket, and is not read."""

    def __init__(self) -> None:
        self._steps = 0
        self._deadline: asyncio.Future[None] | None = None

    def _restart_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = asyncio.ensure_future(workflow.sleep(timedelta(hours=1)))

    @workflow.update
    async def step(self, n: int) -> str:
        await record(FOOTPRINT["change"])
        if n in RESTARTS:
            self._restart_deadline()
        if n in UPSERTS:
            workflow.upsert_search_attributes([CASE_PHASE.value_set(f"step-{n}")])
        self._steps += 1
        return "x" * (FOOTPRINT["answer"] + FOOTPRINT["entry"] * n)

    @workflow.run
    async def run(self, ticket: str) -> str:
        workflow.patched("case-footprint")
        await record(0, FOOTPRINT["policy"])
        workflow.upsert_search_attributes(
            [
                CASE_PRIORITY.value_set("P1"),
                CASE_PHASE.value_set("engaged"),
                CASE_CUSTOMER.value_set("acme"),
                CASE_ASSIGNEE.value_set("oncall@support.example"),
                CASE_ESCALATED.value_set(False),
                CASE_SLA_BREACHED.value_set(False),
                CASE_OPENED_AT.value_set(workflow.now()),
            ]
        )
        self._restart_deadline()
        await record(FOOTPRINT["change"])
        await workflow.wait_condition(lambda: self._steps == STEPS)
        await workflow.sleep(timedelta(milliseconds=1))
        return "x" * FOOTPRINT["outcome"]


async def serve(address: str, task_queue: str, *, as_cases: bool = False) -> None:
    """Run the yardsticks' worker alone, as its own process, until it is stopped: with the SDK's defaults,
    or with `as_cases` as the cases' workers run their workflows (unsandboxed)."""
    from temporalio.client import Client
    from temporalio.worker import Worker

    from worker import workflow_runner

    client = await Client.connect(address)
    workflows = [BareWorkflow, BareUpdatesWorkflow, BareRecordedUpdatesWorkflow, CaseFootprintWorkflow]
    options: dict[str, Any] = {"workflow_runner": workflow_runner()} if as_cases else {}
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=workflows,
        activities=[bare_step, bare_record],
        **options,
    ):
        await asyncio.Event().wait()


if __name__ == "__main__":
    import sys

    asyncio.run(serve(sys.argv[1], sys.argv[2], as_cases=sys.argv[3:] == ["as-cases"]))
