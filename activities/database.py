"""The PostgreSQL pool and the versioned schema migrations applied at worker start."""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, TypeAlias

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

MIGRATIONS_LOCK = 0x0AB4_CA5E

if TYPE_CHECKING:
    Connection: TypeAlias = asyncpg.Connection | PoolConnectionProxy[asyncpg.Record]
else:
    Connection = asyncpg.Connection | PoolConnectionProxy
"""A connection of its own or one borrowed from the pool: activities write through either."""

DATABASE_OUTAGES: tuple[type[Exception], ...] = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.exceptions.OperatorInterventionError,
)
"""PostgreSQL down, restarting or out of reach, as opposed to a query it refused."""


def migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) of every migration shipped in `activities/migrations`, in order."""
    found = []
    for entry in resources.files("activities.migrations").iterdir():
        if entry.name.endswith(".sql"):
            version = int(entry.name.split("_", 1)[0])
            found.append((version, entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(pool: asyncpg.Pool) -> list[int]:
    """Apply pending migrations once, even with several workers starting together. A migration may change
    a session setting, so its connection is reset before the pool lends it again (the pool does not); a
    failed one rolls its settings back with it, and its error is raised as it is."""
    async with pool.acquire() as conn:
        async with conn.transaction():
            applied = await _apply_pending(conn)
        await conn.reset()
        return applied


async def _apply_pending(conn: Connection) -> list[int]:
    applied: list[int] = []
    await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATIONS_LOCK)
    await conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"
    )
    done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
    for version, name, sql in migrations():
        if version in done:
            continue
        await conn.execute(sql)
        await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
        applied.append(version)
        log.info("migration applied", version=version, name=name)
    return applied


async def connect(database_url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(database_url, min_size=min_size, max_size=max_size, reset=_session_kept)
    assert pool is not None
    return pool


async def _session_kept(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is, without asyncpg's default reset: that is one more
    round trip per borrow (`RESET ALL`, `UNLISTEN *`, advisory unlocks, `CLOSE ALL`), and nothing here
    leaves session state behind: no LISTEN, no session settings (the migrations' connection is reset by
    `migrate`), no session advisory lock, no cursor outside a transaction. asyncpg still rolls back a
    transaction left open."""
