"""The embedded default: a Temporal dev server and a PostgreSQL, both from PyPI wheels, in a data folder.

Whatever the environment configures (TEMPORAL_ADDRESS, DATABASE_URL) is used instead, so the same entry
points run unchanged against a production cluster and database.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.testing import WorkflowEnvironment

from stack.client import connect
from stack.encryption import data_converter
from stack.settings import Settings
from stack.telemetry import Telemetry
from workflows.search import ALL_KEYS

log = structlog.get_logger(__name__)

TEMPORAL_PORT = 7233
UI_PORT = 8233


def bundled_binary(name: str) -> str:
    """A binary installed by a wheel next to this interpreter (temporal, temporal-test-server)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise FileNotFoundError(f"{name} not found; install the project with `make install`")
    return found


async def start_dev_server(
    data_dir: Path | None,
    *,
    port: int = TEMPORAL_PORT,
    ui_port: int = UI_PORT,
    ui: bool = True,
    converter: DataConverter = pydantic_data_converter,
    codec_endpoint: str | None = None,
    telemetry: Telemetry | None = None,
) -> WorkflowEnvironment:
    """Temporal's dev server with the Web UI and the case search attributes registered; with a
    `codec_endpoint`, the Web UI decodes payloads there."""
    telemetry = telemetry or Telemetry()
    extra = ["--ui-codec-endpoint", codec_endpoint] if ui and codec_endpoint else []
    db_file = None
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        db_file = str(data_dir / "temporal.db")
    return await WorkflowEnvironment.start_local(
        port=port,
        ui=ui,
        ui_port=ui_port if ui else None,
        data_converter=converter,
        runtime=telemetry.runtime,
        interceptors=telemetry.interceptors,
        search_attributes=ALL_KEYS,
        dev_server_existing_path=bundled_binary("temporal"),
        dev_server_database_filename=db_file,
        dev_server_log_level="error",
        dev_server_extra_args=extra,
    )


def start_postgres(data_dir: Path) -> str:
    """An embedded PostgreSQL in `data_dir`; returns its connection URL. Stops when the process exits.

    pgserver keeps its lock file in the user's runtime folder; where XDG_RUNTIME_DIR is unset (root, a
    container) platformdirs falls back to /tmp/runtime-<uid> and warns, which is no news to a user."""
    data_dir.mkdir(parents=True, exist_ok=True)
    server = _pgserver().get_server(str(data_dir), cleanup_mode="stop")
    url: str = server.get_uri()
    return url


@contextmanager
def temporary_postgres() -> Iterator[Path]:
    """A data folder for `start_postgres` that lasts as long as the block, its server stopped before the
    folder goes. pgserver's own stop at exit reads which processes use the server from a file in that
    folder; with the folder gone it finds none and leaves the server running until PostgreSQL notices its
    lock file is missing, about a minute later (into the next benchmark's run)."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "pg"
        try:
            yield data_dir
        finally:
            if (data_dir / "postmaster.pid").exists():
                _pgserver().get_server(str(data_dir)).cleanup()


def _pgserver() -> Any:
    """Imported here: only the embedded default needs it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR")
        import pgserver

    return pgserver


@dataclass
class Stack:
    client: Client
    database_url: str
    settings: Settings


@asynccontextmanager
async def running_stack(settings: Settings, telemetry: Telemetry | None = None) -> AsyncIterator[Stack]:
    """Connect to what is configured; start the embedded server and database for what is not."""
    async with AsyncExitStack() as exit_stack:
        if settings.embedded_temporal:
            log.info(
                "starting embedded Temporal dev server", ui=settings.ui_url, data_dir=str(settings.data_dir)
            )
            env = await start_dev_server(
                settings.data_dir,
                converter=data_converter(settings.payload_keys),
                codec_endpoint=settings.codec_endpoint if settings.payload_keys else None,
                telemetry=telemetry,
            )
            exit_stack.push_async_callback(env.shutdown)
            client = env.client
        else:
            client = await connect(settings, telemetry)
        if settings.embedded_database:
            pg_dir = settings.data_dir / "postgres"
            log.info("starting embedded PostgreSQL", data_dir=str(pg_dir))
            database_url = await asyncio.to_thread(start_postgres, pg_dir)
        else:
            assert settings.database_url is not None
            database_url = settings.database_url
        yield Stack(client=client, database_url=database_url, settings=settings)
