"""Signed deliveries: the signature checked, the timestamp inside the replay window, each delivery
accepted once (remembered in PostgreSQL, so several API processes agree)."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from fastapi import HTTPException

CHALLENGE = {"WWW-Authenticate": "Signature"}
log = structlog.get_logger("api.webhooks")


def refused(why: str) -> HTTPException:
    log.warning("webhook refused", reason=why)
    return HTTPException(401, f"webhook refused: {why}", CHALLENGE)


def same(expected: str, given: str) -> bool:
    return hmac.compare_digest(expected.encode(), given.encode())


def within_window(sent_at: datetime, window: timedelta, now: datetime | None = None) -> None:
    """Refuse a delivery signed too long ago, or too far ahead of this clock."""
    now = now or datetime.now(UTC)
    if abs(now - sent_at) > window:
        raise refused(f"timestamp {sent_at.isoformat()} is outside the {window.total_seconds():g} s window")


class _Replay(Exception):
    pass


async def first_time(pool: asyncpg.Pool, source: str, delivery_ids: list[str], window: timedelta) -> None:
    """Remember the delivery by each of its keys; refuse it, remembering nothing, when any of them was
    seen inside the window (a replay)."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "DELETE FROM webhook_deliveries WHERE received_at < now() - $1::interval", window * 2
            )
            for delivery_id in delivery_ids:
                inserted = await conn.fetchval(
                    "INSERT INTO webhook_deliveries (source, delivery_id) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    source,
                    delivery_id,
                )
                if not inserted:
                    raise _Replay
    except _Replay:
        raise refused("this delivery was already received (a replay)") from None


async def forget(pool: asyncpg.Pool, source: str, delivery_ids: list[str]) -> None:
    """A delivery that failed on our side: the sender's retry of it must be accepted."""
    await pool.execute(
        "DELETE FROM webhook_deliveries WHERE source = $1 AND delivery_id = ANY($2::text[])",
        source,
        delivery_ids,
    )
