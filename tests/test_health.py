"""The worker's health checks: /healthz while the process runs, /readyz 503 while its PostgreSQL is
stopped and 200 again once it is back, without restarting the worker, and 503 while the worker itself
takes no tasks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pgserver
from aiohttp.test_utils import TestServer
from temporalio.testing import WorkflowEnvironment

from stack.embedded import start_postgres
from stack.health import health_app
from tests.cases import free_port, until
from tests.worker_process import get, worker_process


async def test_readyz_turns_503_while_postgresql_is_stopped(
    dev_env: WorkflowEnvironment, task_queue: str, tmp_path: Path
) -> None:
    pg_dir = tmp_path / "pg"
    database_url = await asyncio.to_thread(start_postgres, pg_dir)  # its own, so stopping it harms no test
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DATABASE_URL": database_url,
        "ABH_TASK_QUEUE": task_queue,
        "ABH_METRICS_PORT": str(port),
    }
    async with worker_process(env):

        async def status(path: str) -> int | None:
            answer = await get(base + path)
            return answer.status_code if answer else None

        await until(lambda: _when_200(base), "readyz 200 once the worker polls its task queue")

        await asyncio.to_thread(pgserver.get_server(str(pg_dir)).cleanup)  # type: ignore[attr-defined]
        answer = await until(lambda: _when_503(base), "readyz turning 503")
        body = answer.json()
        assert body["status"] == "unavailable" and body["temporal"] == "ok"
        assert body["postgresql"].startswith("error: ")
        assert await status("/healthz") == 200  # the process is up, only not ready

        await asyncio.to_thread(start_postgres, pg_dir)
        await until(lambda: _when_200(base), "readyz back to 200 once PostgreSQL is")


async def _when_503(base: str):  # type: ignore[no-untyped-def]
    answer = await get(f"{base}/readyz")
    return answer if answer is not None and answer.status_code == 503 else None


async def _when_200(base: str) -> bool:
    answer = await get(f"{base}/readyz")
    return answer is not None and answer.status_code == 200


async def test_readyz_is_503_until_the_worker_polls_and_again_once_it_is_stopping(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool
) -> None:
    """Temporal and PostgreSQL answering is not enough: a worker still migrating, or draining to stop,
    takes no tasks, so a rollout must not count it ready."""
    polling = asyncio.Event()
    app = health_app(dev_env.client, pool, "http://127.0.0.1:9/metrics", polling)
    async with TestServer(app) as server:
        url = str(server.make_url("/readyz"))
        for is_polling, status in ((False, 503), (True, 200), (False, 503)):
            if is_polling:
                polling.set()
            else:
                polling.clear()
            answer = await get(url)
            assert answer is not None and answer.status_code == status
            body = answer.json()
            assert (body["temporal"], body["postgresql"]) == ("ok", "ok")
            assert (body["worker"] == "ok") is is_polling
