"""One idempotency key, one body: a client that sends an action again with its key gets the first
one's outcome, so a key sent with another body is a client's mistake, refused with a 422 rather than
answered with an outcome that is not the one it asked for."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta

import asyncpg
import structlog
from fastapi.exceptions import RequestValidationError

from activities.database import DATABASE_OUTAGES
from workflows.models import ActionPayload

KEPT_FOR = timedelta(days=30)
"""How long a key's first body is remembered; after that, the key sent again is answered as before,
with the first action's outcome, whatever its body."""
CHECK_WITHIN = 5.0
"""Seconds PostgreSQL has to answer before the action goes on unchecked (Temporal still applies it once)."""

log = structlog.get_logger("api")

_REMEMBER = """
INSERT INTO action_keys (workflow_id, update_id, fingerprint) VALUES ($1, $2, $3)
ON CONFLICT (workflow_id, update_id) DO NOTHING
RETURNING fingerprint
"""
_FIRST = "SELECT fingerprint FROM action_keys WHERE workflow_id = $1 AND update_id = $2"
_FORGET_OLD = "DELETE FROM action_keys WHERE first_sent_at < now() - $1::interval"


def fingerprint(payload: ActionPayload) -> str:
    """The action's body as parsed, so key order, spacing and explicit nulls make no difference."""
    return hashlib.sha256(payload.model_dump_json(exclude_none=True).encode()).hexdigest()


async def same_body_as_first(
    pool: asyncpg.Pool, workflow_id: str, update_id: str, key: str, payload: ActionPayload
) -> None:
    """Remember the body `key` is first sent with, and refuse it sent with another one. While PostgreSQL
    is out of reach the action goes on unchecked: an outage of the check must not stop engineers' actions."""
    sent = fingerprint(payload)
    try:
        async with asyncio.timeout(CHECK_WITHIN), pool.acquire() as conn, conn.transaction():
            await conn.execute(_FORGET_OLD, KEPT_FOR)
            first = await conn.fetchval(_REMEMBER, workflow_id, update_id, sent)
            if first is None:
                first = await conn.fetchval(_FIRST, workflow_id, update_id)
    except DATABASE_OUTAGES as err:  # the timeout's TimeoutError among them, an OSError
        log.warning("idempotency key not checked", workflow_id=workflow_id, key=key, error=repr(err))
        return
    if first is not None and first != sent:
        why = (
            f"Idempotency-Key {key} was first sent with another body for {payload.action} on this case, "
            "and a key is answered with its first action's outcome: send a new action with a new key"
        )
        raise RequestValidationError(
            [{"loc": ("header", "Idempotency-Key"), "msg": why, "type": "value_error"}]
        )
