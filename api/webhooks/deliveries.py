"""Signed deliveries: the signature checked, the timestamp inside the replay window, each delivery
taken once (remembered in PostgreSQL once done, so several API processes agree)."""

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


async def seen_before(pool: asyncpg.Pool, source: str, delivery_ids: list[str]) -> None:
    """Refuse a delivery any of whose keys was already taken (a replay). Kept keys outlive the window,
    and an older delivery is refused for its timestamp anyway."""
    seen = await pool.fetchval(
        "SELECT true FROM webhook_deliveries WHERE source = $1 AND delivery_id = ANY($2::text[]) LIMIT 1",
        source,
        delivery_ids,
    )
    if seen:
        raise refused("this delivery was already received (a replay)")


async def remember(pool: asyncpg.Pool, source: str, delivery_ids: list[str], window: timedelta) -> None:
    """Keep a delivery's keys once it was done. Kept only then, a delivery that failed on our side or was
    cut off midway is taken again when the helpdesk retries; its action's idempotency key keeps a retry
    from applying it twice, and a ticket opens one case whatever."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "DELETE FROM webhook_deliveries WHERE received_at < now() - $1::interval", window * 2
        )
        await conn.executemany(
            "INSERT INTO webhook_deliveries (source, delivery_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            [(source, delivery_id) for delivery_id in delivery_ids],
        )
