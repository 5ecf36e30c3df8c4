"""Shared test vocabulary: a worker on its own queue, moving the test server's clock, rows; the samples
the benchmarks share too (tickets, policies, notes) live in stack/samples.py and are re-exported here."""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, UpdateWorkflowExecutionLifecycleStage
from temporalio.api.update.v1 import UpdateRef, WaitPolicy
from temporalio.api.workflowservice.v1 import PollWorkflowExecutionUpdateRequest
from temporalio.client import (
    Client,
    Interceptor,
    OutboundInterceptor,
    StartWorkflowInput,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowHistory,
)
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from activities.notifications import Sender, log_sink
from activities.policy_source import PolicySource
from console.views import add_commands
from simulator.replay import SCRIPT_MEMO
from stack.cases import open_case
from stack.embedded import start_postgres
from stack.encryption import ENCODING
from stack.samples import default_policy as default_policy
from stack.samples import notes_stored as notes_stored
from stack.samples import round_the_clock_policy as round_the_clock_policy
from stack.samples import send_notes as send_notes
from stack.samples import ticket as ticket
from worker import build_worker, workflow_runner
from workflows.case import CaseWorkflow
from workflows.models import WORKFLOW_TYPE, CaseInput, CaseStatus, Phase
from workflows.policy import Policy

OUTAGE = float(os.environ.get("ABH_TEST_OUTAGE_SECONDS", "15"))
"""Seconds the outage tests keep a component down: short by default, so the suite stays quick (the README
gives the figures of the full-length runs)."""
ESCALATION = timedelta(minutes=60)
"""A P1's Tech Lead escalation, after engagement, in the shipped policies."""
UPDATE_ADMITTED = UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ADMITTED


def due_in(lead: timedelta) -> datetime:
    """An `opened_at` that puts a P1's 60-minute escalation `lead` from now."""
    return datetime.now(UTC) - ESCALATION + lead


class StoppablePostgres:
    """A PostgreSQL of the test's own (pgserver), stopped and started like a real outage."""

    def __init__(self, data_dir: Path) -> None:
        import pgserver

        self.url = start_postgres(data_dir)
        self._server: Any = pgserver.get_server(str(data_dir))  # type: ignore[attr-defined]

    def stop(self) -> None:
        from pgserver import _commands

        _commands.pg_ctl(  # type: ignore[attr-defined]
            ["-w", "stop", "-m", "fast"], pgdata=self._server.pgdata, user=self._server.system_user
        )

    def start(self) -> None:
        self._server.ensure_postgres_running()


class Cases:
    """Opens cases on a test's own task queue, and can end the ones still running."""

    def __init__(self, env: WorkflowEnvironment, task_queue: str) -> None:
        self.env = env
        self.task_queue = task_queue
        self.handles: list[WorkflowHandle[CaseWorkflow, Any]] = []

    async def open(self, t: CaseInput) -> WorkflowHandle[CaseWorkflow, Any]:
        handle = await open_case(self.env.client, t, task_queue=self.task_queue)
        self.handles.append(handle)
        return handle

    async def terminate_running(self) -> None:
        """Tidy a shared dev server; time-skipping servers are per test and need none of this."""
        for handle in self.handles:
            if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")


@asynccontextmanager
async def case_worker(
    env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    policy: Policy | None = None,
    sender: Sender = log_sink,
) -> AsyncIterator[Cases]:
    """A worker on `task_queue` and the cases opened through it. A test that fails inside leaves none of
    them running on the shared dev server; one that ends normally may keep them for another worker."""
    source = PolicySource(policy=policy or default_policy())
    cases = Cases(env, task_queue)
    async with build_worker(
        env.client, pool, task_queue=task_queue, policy=source, sender=sender, strict_sandbox=True
    ):
        try:
            yield cases
        except BaseException:
            await cases.terminate_running()
            raise


def free_port() -> int:
    """A loopback port nothing listens on now, for a server a test starts."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def console_args(*argv: str) -> argparse.Namespace:
    """The operator commands' arguments (list, status, history...) as `starter.py` parses them."""
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(list(argv))


async def advance_to(env: WorkflowEnvironment, weekday: int, at: time) -> datetime:
    """Skip the test server's clock to the next `weekday` (Monday=0) at `at` UTC."""
    now = await env.get_current_time()
    target = datetime.combine(now.date(), at, tzinfo=UTC)
    target += timedelta(days=(weekday - now.weekday()) % 7)
    if target <= now:
        target += timedelta(days=7)
    await env.sleep(target - now)
    return await env.get_current_time()


async def status_when(
    handle: WorkflowHandle[CaseWorkflow, Any], ready: Callable[[CaseStatus], bool], timeout: float = 15
) -> CaseStatus:
    """The case's status once `ready` holds (the worker runs its activities in real time)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        status = await handle.query(CaseWorkflow.status)
        if ready(status):
            return status
        if asyncio.get_running_loop().time() > deadline:
            if (await handle.describe()).status is WorkflowExecutionStatus.FAILED:
                try:
                    await handle.result()
                except WorkflowFailureError as failed:  # a restricted call, in the strict sandbox
                    raise AssertionError(f"the case failed: {failed.cause}") from failed
            raise AssertionError(f"case never reached the expected state: {status.model_dump_json(indent=1)}")
        await asyncio.sleep(0.05)


async def settled(handle: WorkflowHandle[CaseWorkflow, Any], pool: asyncpg.Pool) -> CaseStatus:
    """Status once every timeline entry the case holds has reached PostgreSQL and its notifications
    have gone out (no activity in flight)."""

    async def stored(life: str) -> int:
        query = "SELECT coalesce(max(seq), 0) FROM case_events WHERE workflow_id = $1 AND life = $2"
        return int(await pool.fetchval(query, handle.id, life))

    deadline = asyncio.get_running_loop().time() + 15
    while True:
        status = await handle.query(CaseWorkflow.status)
        last = status.timeline[-1].seq if status.timeline else 0
        if await stored(status.life) >= last:
            await quiet(handle)
            return await handle.query(CaseWorkflow.status)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timeline not stored: {last} in state")
        await asyncio.sleep(0.05)


ORDER = {
    "cases": "workflow_id",
    "case_events": "seq",
    "escalations": "raised_at",
    "notifications": "seq, dedupe_key",
}


async def awaiting_confirmation(cases: Cases, ticket_id: str) -> WorkflowHandle[CaseWorkflow, Any]:
    """A P2 engaged, resolved and followed up: one confirmation from its close."""
    handle = await cases.open(ticket(ticket_id, "P2"))
    await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
    await handle.execute_update("resolved", {"summary": "config fixed"})
    await status_when(handle, lambda s: s.follow_up_sent_at is not None)
    return handle


async def rows(pool: asyncpg.Pool, table: str, workflow_id: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        f"SELECT * FROM {table} WHERE workflow_id = $1 ORDER BY {ORDER[table]}", workflow_id
    )


async def quiet(handle: WorkflowHandle[CaseWorkflow, Any], timeout: float = 15) -> None:
    """Until the case waits on nothing but its timers: no activity or workflow task in flight."""
    deadline = asyncio.get_running_loop().time() + timeout
    calm = 0
    while calm < 2:
        raw = (await handle.describe()).raw_description
        busy = bool(raw.pending_activities) or raw.HasField("pending_workflow_task")
        calm = 0 if busy else calm + 1
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the case never went quiet")
        await asyncio.sleep(0.05)


async def failed_tasks(handle: WorkflowHandle[Any, Any]) -> int:
    """Workflow tasks that failed in the case's current run."""
    failed = EventType.EVENT_TYPE_WORKFLOW_TASK_FAILED
    return len([e async for e in handle.fetch_history_events() if e.event_type == failed])


async def highest_attempt(handle: WorkflowHandle[Any, Any]) -> int:
    """The highest attempt among the case's pending activities (0 when none is pending)."""
    raw = (await handle.describe()).raw_description
    return max((a.attempt for a in raw.pending_activities), default=0)


async def until(check: Callable[[], Any], what: str, timeout: float = 30, every: float = 0.2) -> Any:
    """Poll the async `check` until it returns something truthy; fails naming `what` after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await check()
        if found:
            return found
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        await asyncio.sleep(every)


async def visible(client: Client, workflow_id: str, condition: str) -> bool:
    """Whether visibility lists the case under `condition` (a query over the case search attributes)."""
    query = f'WorkflowId = "{workflow_id}" AND {condition}'
    return bool([e async for e in client.list_workflows(query, limit=1)])


async def updates_admitted(client: Client, workflow_id: str, update_ids: list[str]) -> bool:
    """Whether the server holds every one of the updates (none is accepted without a worker)."""
    for update_id in update_ids:
        ref = UpdateRef(workflow_execution=WorkflowExecution(workflow_id=workflow_id), update_id=update_id)
        request = PollWorkflowExecutionUpdateRequest(
            namespace=client.namespace,
            update_ref=ref,
            wait_policy=WaitPolicy(lifecycle_stage=UPDATE_ADMITTED),
        )
        try:
            await client.workflow_service.poll_workflow_execution_update(
                request, timeout=timedelta(seconds=5)
            )
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return False
            raise
    return True


class StartedCases(Interceptor):
    """Remembers the id of every case its client starts: the time-skipping server cannot list them."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def intercept_client(self, next: OutboundInterceptor) -> OutboundInterceptor:
        ids = self.ids

        class Remember(OutboundInterceptor):
            async def start_workflow(self, input: StartWorkflowInput) -> WorkflowHandle[Any, Any]:
                if input.workflow == WORKFLOW_TYPE:
                    ids.append(input.id)
                return await super().start_workflow(input)

        return Remember(next)


async def replay_every_case(client: Client, ids: list[str] | None = None) -> dict[str, str]:
    """Replay every case the server holds (or the latest run of each of `ids`) against the code as it
    is, as workers run it: a workflow task that would issue other commands on replay (a query, or a
    worker taking over the case) shows here. Left out: cases whose payloads are encrypted (their keys
    belonged to their tests) and simulated ones (the simulator's worker plays their script)."""

    async def held() -> AsyncIterator[WorkflowHistory]:
        if ids is None:
            async for history in client.list_workflows(f'WorkflowType="{WORKFLOW_TYPE}"').map_histories():
                yield history
            return
        for workflow_id in dict.fromkeys(ids):
            yield await client.get_workflow_handle(workflow_id).fetch_history()

    async def replayable() -> AsyncIterator[WorkflowHistory]:
        async for history in held():
            started = history.events[0].workflow_execution_started_event_attributes
            encrypted = any(p.metadata.get("encoding") == ENCODING for p in started.input.payloads)
            if not encrypted and SCRIPT_MEMO not in started.memo.fields:
                yield history

    replayer = Replayer(
        workflows=[CaseWorkflow], data_converter=pydantic_data_converter, workflow_runner=workflow_runner()
    )
    results = await replayer.replay_workflows(replayable(), raise_on_replay_failure=False)
    return {run_id: str(err) for run_id, err in results.replay_failures.items()}
