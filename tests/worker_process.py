"""worker.py as its own process, as an SRE runs it, and reading what its metrics port says."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager, nullcontext
from pathlib import Path

import httpx
from temporalio.client import Client, ScheduleActionExecutionStartWorkflow
from temporalio.service import RPCError, RPCStatusCode

from stack.schedules import RELAY_SCHEDULE_ID

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})?\s+(?P<value>\S+)")
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


@asynccontextmanager
async def worker_process(
    env: Mapping[str, str], output: Path | None = None
) -> AsyncIterator[asyncio.subprocess.Process]:
    """worker.py with `env` over the test's environment, its logs in `output` when given; stopped with
    SIGTERM, and it must exit 0. The relay schedule it made is deleted after it."""
    with open(output, "w") if output else nullcontext() as logs:  # noqa: ASYNC230 - opened once, before the worker starts
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "worker.py"),
            env=os.environ | dict(env),
            cwd=ROOT,
            stdout=logs,
            stderr=asyncio.subprocess.STDOUT if output else None,
        )
    try:
        yield process
    finally:
        try:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
            exited = await asyncio.wait_for(process.wait(), 60)
        finally:
            if "TEMPORAL_ADDRESS" in env:
                await drop_relay_schedule(env["TEMPORAL_ADDRESS"])
    assert exited == 0


async def drop_relay_schedule(temporal_address: str) -> None:
    """worker.py keeps the outbox relay schedule under one id: left on the shared dev server after its
    worker is gone, it starts relays on a dead queue, and the next worker.py test's relay (pointed at its
    own queue) delivers other tests' pending rows to that test's providers."""
    client = await Client.connect(temporal_address)
    schedule = client.get_schedule_handle(RELAY_SCHEDULE_ID)
    try:
        running = (await schedule.describe()).info.running_actions
        await schedule.delete()
    except RPCError as gone:
        if gone.status is not RPCStatusCode.NOT_FOUND:
            raise
        return
    for action in running:
        assert isinstance(action, ScheduleActionExecutionStartWorkflow)
        relay = client.get_workflow_handle(action.workflow_id, run_id=action.first_execution_run_id)
        try:
            await relay.terminate("the worker that scheduled it has stopped")
        except RPCError as done:
            if done.status is not RPCStatusCode.NOT_FOUND:
                raise


Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse_samples(text: str) -> Samples:
    """Prometheus text exposition as {(name, labels): value}."""
    samples: Samples = {}
    for line in text.splitlines():
        found = SAMPLE.match(line)
        if found and not line.startswith("#"):
            labels = frozenset(LABEL.findall(found["labels"] or ""))
            samples[(found["name"], labels)] = float(found["value"])
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    """The one sample of `name` whose labels include `labels` (None when there is none)."""
    wanted = set(labels.items())
    matching = [v for (n, ls), v in samples.items() if n == name and wanted <= ls]
    assert len(matching) <= 1, f"{name} {labels}: {len(matching)} samples"
    return matching[0] if matching else None


async def get(url: str) -> httpx.Response | None:
    """GET `url`; None while nothing answers there yet."""
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return await http.get(url)
    except httpx.TransportError:
        return None
