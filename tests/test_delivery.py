"""Delivery through Temporal on the dev server: its retry policy re-runs the activity after a transient
failure, and a worker killed with SIGKILL mid-burst loses nothing and sends nothing twice."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from pydantic import BaseModel
from temporalio import workflow
from temporalio.client import Client, WorkflowHandle
from temporalio.common import RetryPolicy
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.database import connect
from activities.notifications import Notification, Notifier
from activities.senders import Senders
from stack.sender_config import senders_from_env
from tests.test_senders import Receiver, loopback_provider, notification, outcomes, row, webhook_env
from workflows.policy import Channel, Role

ROOT = Path(__file__).resolve().parent.parent
HEARTBEAT_TIMEOUT = timedelta(seconds=2)


class Batch(BaseModel):
    notifications: list[Notification]
    activity_queue: str


@workflow.defn(sandboxed=False)
class NotifyBatch:
    """The workflow side of `_sync` in miniature: one batch, the activity retried until it settles."""

    @workflow.run
    async def run(self, batch: Batch) -> int:
        delivered: int = await workflow.execute_activity(
            "send_notifications",
            batch.notifications,
            task_queue=batch.activity_queue,
            result_type=int,
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=HEARTBEAT_TIMEOUT,
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_interval=timedelta(seconds=1)
            ),
        )
        return delivered


def serve() -> None:
    """The worker process the crash test kills: the Notifier activity alone, with its senders read
    from the environment as a deployment reads them."""

    async def main() -> None:
        client = await Client.connect(
            os.environ["TEMPORAL_ADDRESS"],
            namespace=os.environ["TEMPORAL_NAMESPACE"],
            data_converter=pydantic_data_converter,
        )
        pool = await connect(os.environ["DATABASE_URL"], max_size=4)
        notifier = Notifier(pool, senders_from_env(), heartbeat_every=0.3)
        worker = Worker(
            client,
            task_queue=os.environ["ABH_NOTIFY_QUEUE"],
            activities=[notifier.send_notifications],
            max_concurrent_activities=4,
        )
        async with worker:
            print("ready", flush=True)
            await asyncio.Event().wait()

    asyncio.run(main())


@pytest.fixture
def provider() -> Iterator[Receiver]:
    with loopback_provider() as rec:
        yield rec


@pytest_asyncio.fixture
async def senders(provider: Receiver) -> AsyncIterator[Senders]:
    built = senders_from_env(webhook_env(provider))
    yield built
    await built.aclose()


def batch_worker(env: WorkflowEnvironment, task_queue: str, notifier: Notifier | None = None) -> Worker:
    return Worker(
        env.client,
        task_queue=task_queue,
        workflows=[NotifyBatch],
        activities=[notifier.send_notifications] if notifier else [],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


async def start(
    env: WorkflowEnvironment, task_queue: str, wf: str, batch: list[Notification], activity_queue: str
) -> WorkflowHandle[NotifyBatch, int]:
    return await env.client.start_workflow(
        NotifyBatch.run,
        Batch(notifications=batch, activity_queue=activity_queue),
        id=wf,
        task_queue=task_queue,
    )


async def test_send_notifications_records_each_attempt_across_retries_of_a_500_and_a_503(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    provider: Receiver,
    senders: Senders,
) -> None:
    """Under this file's retry policy (NotifyBatch's), not a case's: each attempt is on the row."""
    provider.script("/chat", 500)
    provider.script("/chat", 503)
    wf = f"case-{ticket_id}"
    n = notification(wf, 1, "chat", kind="escalation", role=Role.TEAM, recipient="#support")
    async with batch_worker(dev_env, task_queue, Notifier(pool, senders)):
        handle = await start(dev_env, task_queue, wf, [n], task_queue)
        assert await asyncio.wait_for(handle.result(), 30) == 1
    assert [h.key for h in provider.hits] == [n.dedupe_key] * 3
    assert list(provider.delivered) == [n.dedupe_key]
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"]) == ("sent", 3)
    assert outcomes(r) == ["transient", "transient", "sent"]


async def test_a_400_fails_the_row_and_the_workflow_goes_on(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    provider: Receiver,
    senders: Senders,
) -> None:
    provider.script("/page", 400)
    wf = f"case-{ticket_id}"
    n = notification(wf, 1, "page", kind="escalation", role=Role.TECH_LEAD, recipient="tl@x")
    async with batch_worker(dev_env, task_queue, Notifier(pool, senders)):
        handle = await start(dev_env, task_queue, wf, [n], task_queue)
        assert await asyncio.wait_for(handle.result(), 30) == 0
    assert len(provider.hits) == 1
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"]) == ("failed", 1)
    assert r["last_error"].startswith("PermanentFailure: HTTP 400")


async def _spawn(env: dict[str, str], log: Path) -> asyncio.subprocess.Process:
    with log.open("ab") as stderr:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from tests.test_delivery import serve; serve()",
            env=env,
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
        )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 60)
    assert line.strip() == b"ready", f"worker did not start; see {log}"
    return proc


async def _until_disconnected(pool: asyncpg.Pool, app: str) -> None:
    """The killed worker's last statements have landed once PostgreSQL has dropped its sessions."""
    for _ in range(300):
        if not await pool.fetchval("SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", app):
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the killed worker's database sessions never closed")


async def test_a_worker_killed_mid_burst_delivers_everything_once(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    database_url: str,
    task_queue: str,
    ticket_id: str,
    provider: Receiver,
    tmp_path: Path,
) -> None:
    notify_queue, app = f"{task_queue}-notify", f"notifier-{task_queue}"
    env = (
        os.environ
        | webhook_env(provider)
        | {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": dev_env.client.namespace,
            "DATABASE_URL": database_url + ("&" if "?" in database_url else "?") + f"application_name={app}",
            "ABH_NOTIFY_QUEUE": notify_queue,
        }
    )
    channels: list[Channel] = ["chat", "page", "call"]
    bursts = {
        f"case-{ticket_id}-{b}": [
            notification(f"case-{ticket_id}-{b}", seq, channels[(b + seq) % 3], recipient="+1 555 0100")
            for seq in range(1, 5)
        ]
        for b in range(8)
    }
    keys = {n.dedupe_key for batch in bursts.values() for n in batch}
    provider.hold_at = 9  # the 9th delivery reaches the provider, and its sender dies before the answer

    first = await _spawn(env, tmp_path / "worker.log")
    second: asyncio.subprocess.Process | None = None
    try:
        async with batch_worker(dev_env, task_queue):
            handles = [await start(dev_env, task_queue, wf, b, notify_queue) for wf, b in bursts.items()]
            assert await asyncio.to_thread(provider.held.wait, 60), "the burst never reached the hold"
            first.kill()
            assert await asyncio.wait_for(first.wait(), 30) == -9
            await _until_disconnected(pool, app)
            in_doubt = {
                r["dedupe_key"]
                for r in await pool.fetch(
                    "SELECT dedupe_key FROM notifications WHERE workflow_id = ANY($1) AND state = 'sending'",
                    list(bursts),
                )
            }
            provider.release.set()
            sent_before = len(provider.delivered)
            second = await _spawn(env, tmp_path / "worker.log")
            for handle in handles:
                await asyncio.wait_for(handle.result(), 60)
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert list(provider.delivered)[8] in in_doubt
    assert 9 <= sent_before < len(keys)
    assert set(provider.delivered) == keys
    for key in keys:
        copies = len(provider.hits_for(key))
        assert copies == 1 or (key in in_doubt and copies == 2), (key, copies)
    states = await pool.fetch(
        "SELECT dedupe_key, state, attempt_log FROM notifications WHERE workflow_id = ANY($1)", list(bursts)
    )
    assert {r["dedupe_key"] for r in states} == keys
    assert {r["state"] for r in states} == {"sent"}
    replayed = {r["dedupe_key"] for r in states if '"replay"' in r["attempt_log"]}
    assert replayed == in_doubt
