"""Real components for every test: PostgreSQL, the time-skipping server and the dev server."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import pytest_asyncio
from aiosmtpd.controller import Controller
from hypothesis import settings
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from activities.database import connect, migrate
from activities.senders import Senders
from stack.client import register_search_attributes
from stack.embedded import bundled_binary, start_dev_server, start_postgres
from stack.sender_config import senders_from_env
from tests.api_server import Api, served
from tests.cases import StartedCases, StoppablePostgres, free_port, replay_every_case
from tests.test_senders import Mailbox, Receiver, loopback_provider, webhook_env
from worker import pin_zone_rules

pin_zone_rules()

# The same examples on every run, so CI passes or fails on the code alone; ABH_HYPOTHESIS_PROFILE=random
# explores new ones (Hypothesis prints how to reproduce a failure).
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("random", derandomize=False)
settings.load_profile(os.environ.get("ABH_HYPOTHESIS_PROFILE", "deterministic"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    yield start_postgres(tmp_path_factory.mktemp("pg") / "data")


@pytest_asyncio.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect(database_url, max_size=20)
    await migrate(pool)
    yield pool
    await pool.close()


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[StoppablePostgres]:
    """A PostgreSQL of the test's own: to stop, or where whatever reads every row (the outbox relay)
    sees the test's rows alone."""
    db = StoppablePostgres(tmp_path / "pg")
    yield db
    db.start()  # running again, for pgserver to stop at exit


@pytest_asyncio.fixture
async def own_pool(own_postgres: StoppablePostgres) -> AsyncIterator[asyncpg.Pool]:
    pool = await connect(own_postgres.url, max_size=10)
    await migrate(pool)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def new_database_url(pool: asyncpg.Pool, database_url: str) -> AsyncIterator[str]:
    """The URL of a database of the test's own on the session's PostgreSQL, empty: no migration ran on it."""
    name = f"new_{uuid.uuid4().hex[:12]}"
    await pool.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(database_url)._replace(path=f"/{name}"))
    await pool.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest_asyncio.fixture
async def unreachable_database() -> AsyncIterator[asyncpg.Pool]:
    """A pool whose server is gone: nothing listens on its port."""
    pool = await asyncpg.create_pool(f"postgresql://abh@127.0.0.1:{free_port()}/abh", min_size=0)
    yield pool
    await pool.close()


@pytest_asyncio.fixture
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, one per test (it starts in about 0.1 s): days of case time
    pass in a second, and no test's leftover timers can hold up another's clock. At the end of the test
    every case it started is replayed against the code."""
    started = StartedCases()
    env = await WorkflowEnvironment.start_time_skipping(
        data_converter=pydantic_data_converter,
        interceptors=[started],
        test_server_existing_path=bundled_binary("temporal-test-server"),
    )
    await register_search_attributes(env.client)
    yield env
    try:
        failures = await replay_every_case(env.client, started.ids)
    finally:
        await env.shutdown()
    assert not failures, f"cases that no longer replay: {failures}"


@pytest_asyncio.fixture(scope="session")
async def dev_env(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's dev server: updates, search attributes and schedules behave as in production. At the
    end of the session every case it holds is replayed against the code."""
    env = await start_dev_server(None, port=free_port(), ui=False)
    yield env
    try:
        failures = await replay_every_case(env.client)
    finally:
        await env.shutdown()
    assert not failures, f"cases that no longer replay: {failures}"


@pytest.fixture
def task_queue() -> str:
    """Each test its own queue, so no test's worker takes another's work."""
    return f"test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def ticket_id() -> str:
    return f"T-{uuid.uuid4().hex[:10]}"


ARTIFACTS = Path(__file__).parent / "artifacts"


@contextmanager
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest_asyncio.fixture
async def wired() -> AsyncIterator[tuple[Senders, Receiver, Mailbox]]:
    """Real senders: e-mail to an SMTP server and chat, page and call to an HTTP provider, on loopback."""
    with loopback_provider() as receiver, smtp_server() as (box, port):
        env = webhook_env(receiver) | {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(port),
            "SMTP_FROM": "ABH Support <support@abh.example>",
            "SMTP_TIMEOUT": "5",
        }
        senders = senders_from_env(env)
        try:
            yield senders, receiver, box
        finally:
            await senders.aclose()


@pytest.fixture(scope="module")
def api(
    dev_env: WorkflowEnvironment, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """`starter.py serve` and a worker on the dev server and PostgreSQL, on a queue of their own; for one
    module at a time, so the worker (and the outbox relay it schedules) is gone before other modules run."""
    target = dev_env.client.service_client.config.target_host
    with served(
        target, database_url, f"api-{uuid.uuid4().hex[:8]}", free_port(), tmp_path_factory.mktemp("api")
    ) as a:
        yield a
