"""One idempotency key, one body: a client that sends an action again with its key gets the first
one's outcome, so a key sent with another body is a client's mistake, refused with a 422 rather than
answered with an outcome that is not the one it asked for."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

import asyncpg
import structlog
from fastapi.exceptions import RequestValidationError

from activities.database import DATABASE_OUTAGES, Connection
from workflows.models import ActionPayload

KEPT_FOR = timedelta(days=30)
"""How long a key's first body is remembered at least; after that, the key sent again is answered as
before, with the first action's outcome, whatever its body."""
CHECK_WITHIN = 5.0
"""Seconds PostgreSQL has to answer before the action goes on unchecked (Temporal still applies it once)."""
FORGET_AT_ONCE = 500
"""Expired keys a claim forgets, at most, skipping those another request holds: no claim waits on them."""

log = structlog.get_logger("api")

_FORGET_EXPIRED = f"""
DELETE FROM action_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM action_keys WHERE first_sent_at < now() - $1::interval
    ORDER BY first_sent_at LIMIT {FORGET_AT_ONCE} FOR UPDATE SKIP LOCKED))
"""
_CLAIM = """
INSERT INTO action_keys (workflow_id, update_id, fingerprint) VALUES ($1, $2, $3)
ON CONFLICT (workflow_id, update_id) DO UPDATE SET claims = action_keys.claims + 1
RETURNING fingerprint, claims
"""
_RELEASE = """
DELETE FROM action_keys WHERE workflow_id = $1 AND update_id = $2 AND fingerprint = $3 AND claims = $4
"""


def fingerprint(payload: ActionPayload) -> str:
    """The action's body as parsed: key order, spacing, and a field sent with its default or left out
    (explicit nulls included) make no difference, nor does a field added later with a default."""
    return hashlib.sha256(payload.model_dump_json(exclude_defaults=True).encode()).hexdigest()


@dataclass(frozen=True)
class KeyedAction:
    """An action and the key it is applied once for, on one case."""

    pool: asyncpg.Pool
    workflow_id: str
    update_id: str
    key: str
    payload: ActionPayload

    @cached_property
    def _sent(self) -> str:
        return fingerprint(self.payload)

    async def claim(self) -> int | None:
        """Remember the body the key is first sent with, and refuse (422) the key sent with another one,
        changing nothing. Returns the number of claims so far, this one included (None unchecked)."""

        async def claim(conn: Connection) -> Any:
            await conn.execute(_FORGET_EXPIRED, KEPT_FOR)
            return await conn.fetchrow(_CLAIM, self.workflow_id, self.update_id, self._sent)

        first = await self._checked("idempotency key not checked", claim)
        if first is None:
            return None
        if first["fingerprint"] != self._sent:
            why = (
                f"Idempotency-Key {self.key} was first sent with another body for {self.payload.action} "
                "on this case, and a key is answered with its first action's outcome: send a new action "
                "with a new key"
            )
            error = {"loc": ("header", "Idempotency-Key"), "msg": why, "type": "value_error"}
            raise RequestValidationError([error])
        claims: int = first["claims"]
        return claims

    async def release(self, claims: int) -> None:
        """Forget the key's body: the case refused the action, which leaves Temporal nothing to answer the
        key with, so the key may be sent again with another body. Kept when another request claimed the
        key since `claims`: that one may have been applied."""

        async def release(conn: Connection) -> Any:
            return await conn.execute(_RELEASE, self.workflow_id, self.update_id, self._sent, claims)

        await self._checked("idempotency key not released", release)

    async def _checked(self, failed: str, query: Callable[[Connection], Awaitable[Any]]) -> Any:
        """The query's answer; None, and a log line, when PostgreSQL does not give one in time. The
        check guards against a client's mistake, so it must never stop an engineer's action: Temporal
        still applies the action once per key."""
        try:
            async with asyncio.timeout(CHECK_WITHIN), self.pool.acquire() as conn:
                return await query(conn)
        except DATABASE_OUTAGES as err:  # the timeout's TimeoutError among them, an OSError
            log.warning(failed, workflow_id=self.workflow_id, key=self.key, error=repr(err))
        except (asyncpg.PostgresError, asyncpg.exceptions.InternalClientError) as err:
            log.error(failed, workflow_id=self.workflow_id, key=self.key, error=repr(err))
        return None
