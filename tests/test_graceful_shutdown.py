"""A worker told to stop (SIGTERM, as Docker and Kubernetes do) while a notification is on the wire lets
that delivery finish within ABH_SHUTDOWN_GRACE: the message is sent once and its row says so, not left
in doubt for an operator. On a PostgreSQL of its own, so the worker's outbox relay has no other test's
pending rows to send to this test's provider."""

from __future__ import annotations

import asyncio
import signal

import asyncpg
from temporalio.testing import WorkflowEnvironment

from stack.cases import open_case
from tests.cases import StoppablePostgres, ticket
from tests.test_senders import loopback_provider, webhook_env
from tests.worker_process import worker_process

HELD = 2.0  # seconds the provider holds the call open after the worker was told to stop


async def test_sigterm_lets_a_delivery_in_flight_finish(
    dev_env: WorkflowEnvironment,
    own_postgres: StoppablePostgres,
    own_pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
) -> None:
    with loopback_provider() as provider:
        provider.hold_at = 1  # the first delivery (the P1 customer call) waits for `release`
        env = webhook_env(provider) | {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "DATABASE_URL": own_postgres.url,
            "ABH_TASK_QUEUE": task_queue,
            "ABH_WEBHOOK_TIMEOUT": "30",
            "ABH_SHUTDOWN_GRACE": "20",
        }
        async with worker_process(env) as worker:
            await open_case(dev_env.client, ticket(ticket_id, "P1"), task_queue=task_queue)
            assert await asyncio.to_thread(provider.held.wait, 60), "the call never reached the provider"
            worker.send_signal(signal.SIGTERM)
            await asyncio.sleep(HELD)
            assert worker.returncode is None, "the worker stopped with a delivery in flight"
            provider.release.set()
            assert await asyncio.wait_for(worker.wait(), 30) == 0

    (held,) = [hit for hit in provider.hits if hit.path == "/call"]
    query = "SELECT state, attempts FROM notifications WHERE dedupe_key = $1"
    call = await own_pool.fetchrow(query, held.key)
    assert call is not None and (call["state"], call["attempts"]) == ("sent", 1)
