"""What every benchmark starts with: a Temporal dev server and an embedded PostgreSQL in a temporary
folder, the case search attributes registered, and a line saying which command printed the figures."""

from __future__ import annotations

import logging
import os
import platform
import resource
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from temporalio.testing import WorkflowEnvironment

from activities.database import connect, migrate
from stack import logs
from stack.embedded import start_dev_server, start_postgres, temporary_postgres
from worker import pin_zone_rules

PROJECT = Path(__file__).resolve().parent.parent


@dataclass
class BenchStack:
    env: WorkflowEnvironment
    pool: asyncpg.Pool
    database_url: str
    temporal_address: str
    server_pid: int
    postgres_pid: int


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@asynccontextmanager
async def bench_stack(pool_size: int = 20) -> AsyncIterator[BenchStack]:
    pin_zone_rules()
    logs.configure(level=logging.WARNING)
    with temporary_postgres() as data_dir:
        url = start_postgres(data_dir)
        pool = await connect(url, max_size=pool_size)
        await migrate(pool)
        port = free_port()
        env = await start_dev_server(None, port=port, ui=False)
        try:
            server, postgres = _started("start-dev", f"--port {port}"), _started(str(data_dir))
            yield BenchStack(env, pool, url, f"127.0.0.1:{port}", server, postgres)
        finally:
            await env.shutdown()
            await pool.close()


def header() -> None:
    """The command and the machine, printed above the figures."""
    module = Path(sys.argv[0]).stem
    print(f"command: python -m bench.{module} {' '.join(sys.argv[1:])}".rstrip())
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")


def _started(*words: str) -> int:
    """The process whose command line holds all of `words`."""
    for p in psutil.process_iter(["cmdline"]):
        line = " ".join(p.info["cmdline"] or [])
        if all(w in line for w in words):
            return p.pid
    raise LookupError(f"no process with {words} in its command line")


def process_cpu(pid: int, *, children: bool = True) -> float:
    """CPU seconds of a process, all threads, and of its living children (PostgreSQL's backends, say)."""
    root = psutil.Process(pid)
    total = 0.0
    for p in (root, *(root.children(recursive=True) if children else ())):
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system
    return total


def cpu_seconds() -> float:
    """CPU time of this process and of every process it started and has reaped (servers, pool workers)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
