"""Recorded tickets read back from PostgreSQL (`--from-db`): what people did, from each case's timeline
and its last snapshot, for the cases opened in a window."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg

from simulator.tickets import RecordedTicket, TicketFileError, parse_rows
from workflows.models import CloseReason, EventType, Milestone

_FIRST = {
    "contacted_at": EventType.CUSTOMER_CONTACTED,
    "resolved_at": EventType.RESOLVED,
    "confirmed_at": EventType.CUSTOMER_CONFIRMED,
    "rejected_at": EventType.CUSTOMER_REJECTED,
    "paused_at": EventType.PAUSED,
    "resumed_at": EventType.RESUMED,
}


def _first(kind: EventType) -> str:
    return (
        "(SELECT min(e.at) FROM case_events e WHERE e.workflow_id = c.workflow_id AND e.life = c.life"
        f" AND e.type = '{kind.value}')"
    )


_TICKETS_SQL = f"""
SELECT c.ticket_id, c.customer_account AS account_id, c.opened_at, c.close_reason,
    c.snapshot->'ticket'->>'priority' AS priority,
    c.snapshot->'ticket'->'customer'->>'calendar' AS calendar,
    c.snapshot->'milestones' AS milestones,
    {", ".join(f"{_first(kind)} AS {name}" for name, kind in _FIRST.items())},
    (SELECT e.at FROM case_events e WHERE e.workflow_id = c.workflow_id AND e.life = c.life
        AND e.type = '{EventType.PRIORITY_CHANGED.value}' ORDER BY e.seq LIMIT 1) AS priority_changed_at,
    (SELECT e.data->>'to' FROM case_events e WHERE e.workflow_id = c.workflow_id AND e.life = c.life
        AND e.type = '{EventType.PRIORITY_CHANGED.value}' ORDER BY e.seq LIMIT 1) AS new_priority,
    ARRAY(SELECT e.at FROM case_events e WHERE e.workflow_id = c.workflow_id AND e.life = c.life
        AND e.type = '{EventType.CUSTOMER_UPDATED.value}' ORDER BY e.seq) AS customer_updates
FROM cases c
WHERE c.opened_at >= $1 AND c.opened_at <= $2
ORDER BY c.opened_at, c.ticket_id
"""


class DbTickets(NamedTuple):
    tickets: list[RecordedTicket]
    cancelled: int
    """Cases left out because they were cancelled."""


async def tickets_from_db(pool: asyncpg.Pool, start: datetime, end: datetime) -> DbTickets:
    """The tickets of the cases opened in `[start, end]`, one consistent read. A cancelled case (a
    duplicate, a withdrawn ticket) is left out and counted: the row has no field for the cancel, so it
    would replay as a case left open, and a duplicate is no work the policy has to do."""
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        rows = await conn.fetch(_TICKETS_SQL, start, end)
    window = f"between {start.isoformat()} and {end.isoformat()}"
    if not rows:
        raise TicketFileError(f"no cases were opened {window}")
    kept = [r for r in rows if r["close_reason"] != CloseReason.CANCELLED.value]
    if not kept:
        raise TicketFileError(f"the {len(rows)} cases opened {window} were all cancelled")
    tickets = parse_rows((n, _ticket_row(r)) for n, r in enumerate(kept, start=1))
    return DbTickets(tickets, len(rows) - len(kept))


def _ticket_row(r: asyncpg.Record) -> dict[str, Any]:
    """A database row as a ticket file's row: milestones verified are taken from the case's snapshot."""
    row = {k: r[k] for k in ("ticket_id", "account_id", "opened_at", "priority", "calendar", *_FIRST)}
    row |= {k: r[k] for k in ("priority_changed_at", "new_priority", "customer_updates")}
    verified = {m["name"]: m.get("verified_at") for m in json.loads(r["milestones"] or "[]")}
    row["data_verified_at"] = verified.get(Milestone.DATA_VERIFIED.value)
    row["troubleshooting_at"] = verified.get(Milestone.TROUBLESHOOTING.value)
    row["contacted_at"] = row["contacted_at"] or verified.get(Milestone.FIRST_RESPONSE.value)
    return row
