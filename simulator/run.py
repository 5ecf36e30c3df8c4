"""Running a simulation: one replay for each ticket and policy, on a time-skipping server with a worker
over the in-memory books (a large file in shards, a server each, over a process per core), and the books
read back as each policy's simulated cases and figures."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio.api.testservice.v1 import UnlockTimeSkippingRequest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from simulator.books import Books, CaseBook, case_id
from simulator.figures import Simulation, changed_outcomes, run_figures
from simulator.outcomes import SimulatedCase, simulated_case
from simulator.replay import HORIZON, SCRIPT_MEMO, RecordedActions, Replay, Replayed
from simulator.schedule import replay_of
from simulator.tickets import RecordedTicket, TicketFileError, unknown_calendar
from simulator.timeshift import cycles_needed, moved, moved_policy
from stack.client import register_search_attributes
from stack.embedded import bundled_binary
from worker import pin_zone_rules
from workflows.case import CaseWorkflow
from workflows.models import WORKFLOW_TYPE, CaseOutcome
from workflows.policy import Policy

TASK_QUEUE = "abh-simulation"
# The server's clock is moved to this long before the first ticket opens, and the replays started there.
LEAD = timedelta(hours=1)
STARTING_AT_ONCE = 50
# Replays per time-skipping server: its one clock stops at every instant any of its replays needs, and
# one server that ran 300 replays at the rate of 100 did not finish 2,000 in 16 minutes (docs/performance.md).
SHARD_REPLAYS = 250
BASELINE, CANDIDATE = "baseline", "candidate"


@functools.cache
def quiet_runtime() -> Runtime:
    """The SDK core's warnings about the test server's capabilities would land among the figures."""
    errors_only = TelemetryFilter(core_level="ERROR", other_level="ERROR")
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(filter=errors_only)))


Progress = Callable[[int, int], None]
"""Called with (replays finished, replays in all)."""


async def simulate(
    tickets: Sequence[RecordedTicket],
    baseline: Policy,
    candidate: Policy,
    progress: Progress | None = None,
    *,
    shard_replays: int = SHARD_REPLAYS,
    processes: int | None = None,
) -> Simulation:
    """The tickets under both policies, and their figures side by side; one run when they are the same."""
    began = time.monotonic()
    same = candidate == baseline
    runs = await replay_all(
        tickets,
        {BASELINE: baseline} if same else {BASELINE: baseline, CANDIDATE: candidate},
        progress,
        shard_replays=shard_replays,
        processes=processes,
    )
    start = min(t.opened_at for t in tickets)
    window_end = max(t.last_instant() for t in tickets)
    figures = {
        run: run_figures(policy.name, cases, start, window_end + HORIZON, window_end)
        for run, (policy, cases) in runs.items()
    }
    base_cases = runs[BASELINE][1]
    cand_cases = runs[CANDIDATE][1] if not same else base_cases
    return Simulation(
        tickets=len(tickets),
        baseline=figures[BASELINE],
        candidate=figures[CANDIDATE] if not same else figures[BASELINE],
        changed=changed_outcomes(base_cases, cand_cases),
        seconds=round(time.monotonic() - began, 1),
    )


def check_calendars(tickets: Sequence[RecordedTicket], policies: Sequence[Policy]) -> None:
    """A file's rows are checked as it is read (`read_tickets`); this names the tickets of any source."""
    for policy in policies:
        for t in tickets:
            if t.calendar and t.calendar not in policy.calendars:
                raise TicketFileError(
                    f"ticket {t.ticket_id}: calendar: {unknown_calendar(t.calendar, policy)}"
                )


T = TypeVar("T")
Pair = tuple[str, RecordedTicket]
"""One replay to run: a ticket under the policy of a run (baseline or candidate)."""


@dataclass
class ShardResult:
    """What one time-skipping server made of its share of the replays."""

    years: int
    ends: dict[str, Replayed]
    books: dict[str, CaseBook]


async def replay_all(
    tickets: Sequence[RecordedTicket],
    policies: dict[str, Policy],
    progress: Progress | None = None,
    *,
    shard_replays: int = SHARD_REPLAYS,
    processes: int | None = None,
) -> dict[str, tuple[Policy, list[SimulatedCase]]]:
    """Every ticket through every policy: in one time-skipping server when they fit in a shard, else
    in shards of consecutive tickets, each on its own server and worker, run by `processes` processes
    (default: one per core)."""
    check_calendars(tickets, list(policies.values()))
    pairs = [(run, t) for t in sorted(tickets, key=lambda t: t.opened_at) for run in policies]
    processes = processes or os.cpu_count() or 1
    shards = split(pairs, shard_replays, processes)
    tally = _Tally(len(pairs), progress)
    window_end = max(t.last_instant() for t in tickets)
    if len(shards) == 1:
        results = [await replay_shard(shards[0], policies, window_end, tally.one)]
    else:
        results = await _in_processes(shards, policies, window_end, tally, processes)
    shard_of = {
        case_id(run, t.ticket_id): result
        for result, shard in zip(results, shards, strict=True)
        for run, t in shard
    }
    out = {}
    for run, policy in policies.items():
        cases = []
        for t in tickets:
            cid = case_id(run, t.ticket_id)
            result = shard_of[cid]
            end = result.ends[cid]
            book = result.books.get(cid, CaseBook())
            cases.append(simulated_case(t, book, policy, result.years, end.closed, end.failure))
        out[run] = (policy, cases)
    return out


def split(pairs: Sequence[T], most: int, processes: int) -> list[Sequence[T]]:
    """Shards of at most `most` consecutive replays, as many as a whole number of rounds of the
    processes, and of equal sizes, so that no process is left with the last long shard alone."""
    if len(pairs) <= most:
        return [pairs]
    count = -(-len(pairs) // most)
    count = -(-count // processes) * processes
    size = -(-len(pairs) // count)
    return [pairs[i : i + size] for i in range(0, len(pairs), size)]


async def replay_shard(
    pairs: Sequence[Pair], policies: dict[str, Policy], window_end: datetime, finished: Callable[[], None]
) -> ShardResult:
    """The replays of one shard on a time-skipping server of its own; `window_end` is the recorded
    window's last instant (of all the tickets, not the shard's); `finished` is called as each ends."""
    pin_zone_rules()  # in every process that replays, as in every worker
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        test_server_existing_path=bundled_binary("temporal-test-server"),
        runtime=quiet_runtime(),
    )
    try:
        await register_search_attributes(env.client)
        now = await env.get_current_time()
        first = min(t.opened_at for _, t in pairs)
        years = cycles_needed(first, now + LEAD)
        books = Books({run: moved_policy(p, years) for run, p in policies.items()})
        await env.sleep(moved(first, years) - LEAD - now)
        with fewer_collections():
            async with replay_worker(env.client, books):
                replays = [
                    replay_of(case_id(run, t.ticket_id), t, books.policy(run), years, window_end)
                    for run, t in pairs
                ]
                ends = await run_replays(env, replays, finished)
    finally:
        await env.shutdown()
    return ShardResult(years=years, ends=ends, books=books.cases)


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a shard replays: reference counting frees
    nearly all of a replay's garbage, and at the default thresholds the collector ran about 600 times
    a shard (docs/performance.md)."""
    before = gc.get_threshold()
    gc.set_threshold(50_000, 50, 1_000)
    try:
        yield
    finally:
        gc.set_threshold(*before)


class _Tally:
    def __init__(self, total: int, progress: Progress | None) -> None:
        self.total, self.done, self._progress = total, 0, progress

    def one(self) -> None:
        self.done += 1
        if self._progress:
            self._progress(self.done, self.total)


async def _in_processes(
    shards: Sequence[Sequence[Pair]],
    policies: dict[str, Policy],
    window_end: datetime,
    tally: _Tally,
    processes: int,
) -> list[ShardResult]:
    """The shards on a pool of fresh processes (spawned: the SDK's runtime threads do not survive a
    fork), each replay's end reported back through a queue for the progress bar."""
    context = multiprocessing.get_context("spawn")
    ended: multiprocessing.Queue[None] = context.Queue()
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(
        max_workers=min(processes, len(shards)),
        mp_context=context,
        initializer=_child_started,
        initargs=(ended,),
    ) as pool:
        runs = asyncio.gather(
            *(loop.run_in_executor(pool, _shard_in_child, s, policies, window_end) for s in shards)
        )
        try:
            while not runs.done():
                await asyncio.wait([runs], timeout=0.2)
                while not ended.empty():
                    ended.get()
                    tally.one()
            results = runs.result()
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # a failed shard fails the run: start no more
            raise
        while tally.done < tally.total:  # the last ends may reach the queue after the results
            await asyncio.to_thread(ended.get, True, 10)
            tally.one()
        return results


_ended: multiprocessing.Queue[None] | None = None


def _child_started(ended: multiprocessing.Queue[None]) -> None:
    global _ended
    _ended = ended


def _shard_in_child(pairs: Sequence[Pair], policies: dict[str, Policy], window_end: datetime) -> ShardResult:
    ended = _ended
    assert ended is not None
    return asyncio.run(replay_shard(pairs, policies, window_end, lambda: ended.put(None)))


def replay_worker(client: Client, books: Books, *, cached_cases: int = 10_000) -> Worker:
    """The case workflow as production runs it, unsandboxed (`worker.workflow_runner`), with its recorded
    actions played from inside and the books for activities. In the SDK's debug mode each activation
    runs on the worker's own event loop instead of being handed to a thread and back: the replays are
    all CPU in one process, so the hand-off only costs (a quarter of the time on 200 tickets). It gives
    up the SDK's deadlock check: a case stuck in a loop (a bug) now holds its shard, where the check would
    have failed its task again and again. `cached_cases` below the replays in flight makes the worker
    replay cases from their histories (the tests do, to show their writes are kept once)."""
    return Worker(
        client,
        task_queue=TASK_QUEUE,
        workflows=[CaseWorkflow],
        activities=[books.current_policy, books.record_and_send],
        interceptors=[RecordedActions(books.local_writes())],
        workflow_runner=UnsandboxedWorkflowRunner(),
        max_cached_workflows=cached_cases,
        max_concurrent_workflow_tasks=200,
        max_concurrent_local_activities=200,
        debug_mode=True,
    )


async def run_replays(
    env: WorkflowEnvironment, replays: list[Replay], finished: Callable[[], None]
) -> dict[str, Replayed]:
    """Every replay's case started, to come to life when its ticket opened, and how each ended."""
    gate = asyncio.Semaphore(STARTING_AT_ONCE)
    ends: dict[str, Replayed] = {}

    async def start(replay: Replay) -> WorkflowHandle[Any, CaseOutcome]:
        async with gate:
            delay = replay.opened_at - await env.get_current_time()
            if delay <= timedelta(0):
                raise RuntimeError(f"{replay.case_id} would start after its ticket opened")
            return await env.client.start_workflow(
                WORKFLOW_TYPE,
                replay.ticket,
                id=replay.case_id,
                task_queue=TASK_QUEUE,
                start_delay=delay,
                memo={SCRIPT_MEMO: replay.script()},
                result_type=CaseOutcome,
            )

    async def ended(replay: Replay, handle: WorkflowHandle[Any, CaseOutcome]) -> None:
        try:
            end = replay.ended(await handle.result())
        except WorkflowFailureError as err:
            end = Replayed(case_id=replay.case_id, closed=False, failure=str(err.cause or err))
        ends[end.case_id] = end
        finished()

    # The server's clock moves only once every case has been started (each delayed until its ticket
    # opened), and then by itself: the SDK's own unlocking for each result waited on would unlock it once
    # per case, and tasks would time out.
    with env.auto_time_skipping_disabled():
        handles = await asyncio.gather(*(start(r) for r in replays))
        await env.client.test_service.unlock_time_skipping(UnlockTimeSkippingRequest())
        await asyncio.gather(*(ended(r, h) for r, h in zip(replays, handles, strict=True)))
    return ends
