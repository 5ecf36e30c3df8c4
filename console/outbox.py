"""What an operator must look at in PostgreSQL, and the operator's verdict on a notification in doubt.

An e-mail whose send was interrupted is parked `unknown`: the provider may hold it and cannot drop a copy,
so the system never sends it again by itself. The operator checks the provider (the Message-ID derives
from the dedupe key) and records what happened; a failed row shows what went wrong. A timeline entry
PostgreSQL refused as it was is stored in a safe form with the reason (`damaged_entries`).
"""

from __future__ import annotations

from typing import Literal

import asyncpg

from activities.notifications import CLAIM_TTL, append_to_log, attempt_entry
from console.read_models import DamagedEntry, OutboxRow

AttentionState = Literal["unknown", "failed", "sending", "pending"]
STATES = ("pending", "sending", "sent", "failed", "unknown")
Verdict = Literal["sent", "failed"]


class NotSettled(ValueError):
    """The row is not there, or not in doubt: only an `unknown` row takes a verdict."""


_COLUMNS = (
    "dedupe_key, workflow_id, kind, channel, role, recipient, subject, state, attempts, last_error, "
    "created_at, settled_at"
)


async def needing_attention(
    pool: asyncpg.Pool,
    states: tuple[AttentionState, ...] = ("unknown", "failed"),
    *,
    workflow_id: str | None = None,
    limit: int = 100,
) -> list[OutboxRow]:
    """Rows in `states`, oldest first, for one case or all."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM notifications WHERE state = ANY($1::text[])"
        " AND ($2::text IS NULL OR workflow_id = $2) ORDER BY created_at, dedupe_key LIMIT $3",
        list(states),
        workflow_id,
        limit,
    )
    return [OutboxRow.model_validate(dict(r)) for r in rows]


async def rows_by_state(pool: asyncpg.Pool) -> dict[str, int]:
    """How many outbox rows are in each state, every state named (0 when none)."""
    counted = await pool.fetch("SELECT state, count(*) AS n FROM notifications GROUP BY state")
    return dict.fromkeys(STATES, 0) | {r["state"]: int(r["n"]) for r in counted}


# A row still pending after this many attempts keeps failing: its channel is down, or refusing it.
RETRYING_FROM_ATTEMPT = 3


async def abandoned_sends(pool: asyncpg.Pool, *, limit: int = 100) -> list[OutboxRow]:
    """Rows still `sending` long after any live deliverer would have finished (the relay resolves them:
    re-sent with the key, or parked `unknown`), and rows still `pending` after several attempts, which
    the case or the relay keeps retrying while their channel fails."""
    rows = await pool.fetch(
        f"SELECT {_COLUMNS} FROM notifications"
        " WHERE (state = 'sending' AND claimed_at < now() - $1::interval)"
        "    OR (state = 'pending' AND attempts >= $2)"
        " ORDER BY created_at, dedupe_key LIMIT $3",
        CLAIM_TTL,
        RETRYING_FROM_ATTEMPT,
        limit,
    )
    return [OutboxRow.model_validate(dict(r)) for r in rows]


async def damaged_entries(pool: asyncpg.Pool, *, limit: int = 100) -> list[DamagedEntry]:
    rows = await pool.fetch(
        "SELECT workflow_id, life, seq, type, storage_error, recorded_at FROM case_events"
        " WHERE storage_error IS NOT NULL ORDER BY recorded_at DESC LIMIT $1",
        limit,
    )
    return [DamagedEntry.model_validate(dict(r)) for r in rows]


async def settle(
    pool: asyncpg.Pool, dedupe_key: str, verdict: Verdict, *, by: str, note: str | None = None
) -> OutboxRow:
    """Record the operator's verdict on an `unknown` row, with who gave it, in the row's attempt log."""
    entry = attempt_entry("operator", f"settled {verdict}", by=by, note=note)
    row = await pool.fetchrow(
        f"UPDATE notifications SET state = $2, settled_at = now(),"
        f" sent_at = CASE WHEN $2 = 'sent' THEN now() ELSE sent_at END,"
        f" last_error = CASE WHEN $2 = 'failed' THEN $4 ELSE last_error END, {append_to_log('$3')}"
        f" WHERE dedupe_key = $1 AND state = 'unknown' RETURNING {_COLUMNS}",
        dedupe_key,
        verdict,
        entry,
        f"settled failed by {by}" + (f": {note}" if note else ""),
    )
    if row is None:
        state = await pool.fetchval("SELECT state FROM notifications WHERE dedupe_key = $1", dedupe_key)
        if state is None:
            raise NotSettled(f"no notification with dedupe key {dedupe_key!r}")
        raise NotSettled(f"notification {dedupe_key!r} is {state}; only an unknown one takes a verdict")
    return OutboxRow.model_validate(dict(row))
