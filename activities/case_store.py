"""Case persistence: the current case row, its append-only timeline (with its SLA events), Tech Lead
tickets and outbox rows.

Every write is keyed by the case's life and the event sequence number, so a retried activity or a worker
that crashed after committing writes nothing twice, and a late retry never rolls a case back. Every text
is made storable first (no NUL, no lone surrogate); a value PostgreSQL still refuses (a data error, which
no retry fixes) is stored in a safe form, marked with the reason, and the case goes on.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import asyncpg
import structlog
from pydantic import BaseModel, Field
from temporalio import activity

from activities.database import Connection
from activities.notifications import PENDING_KEYS, Notification, outbox_row, write_outbox
from workflows.models import CaseStatus, Priority, SlaClockEvent, TimelineEntry
from workflows.safe_text import clipped, one_line, storable
from workflows.sla import events_in

log = structlog.get_logger(__name__)


class CaseRecord(BaseModel):
    """The case as of sequence number `seq`, and the timeline entries not yet stored."""

    workflow_id: str
    seq: int
    status: CaseStatus
    events: list[TimelineEntry] = Field(default_factory=list)


class TechLeadTicket(BaseModel):
    ticket_key: str
    workflow_id: str
    life: str = ""
    seq: int = 0
    """The timeline entry that raised it."""
    engagement: int
    level: str
    priority: Priority
    assignee: str
    reason: str
    raised_at: datetime


class CaseChanges(BaseModel):
    """One batch of a case's changes, stored in one transaction: the case row as of `seq`, the new
    timeline entries, and the Tech Lead tickets and notifications they raised."""

    workflow_id: str
    life: str = ""
    seq: int
    as_of: datetime
    status: CaseStatus
    events: list[TimelineEntry] = Field(default_factory=list)
    tickets: list[TechLeadTicket] = Field(default_factory=list)
    notifications: list[Notification] = Field(default_factory=list)
    send_now: bool = False
    """Deliver the batch's notifications right after storing it (`CaseWriter`), when the case's
    deliveries are healthy."""


def _snapshot(status: CaseStatus) -> str:
    return json.dumps(storable(status.model_dump(mode="json", exclude={"timeline"})))


_UPSERT_CASE = """
INSERT INTO cases (workflow_id, ticket_id, priority, phase, customer_account, customer_name,
    subject, assignee, opened_at, engaged_at, resolved_at, closed_at, close_reason,
    escalated, sla_breached, on_standup, last_seq, snapshot, life, as_of)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)
ON CONFLICT (workflow_id) DO UPDATE SET
    priority = EXCLUDED.priority, phase = EXCLUDED.phase, assignee = EXCLUDED.assignee,
    customer_account = EXCLUDED.customer_account, customer_name = EXCLUDED.customer_name,
    subject = EXCLUDED.subject, opened_at = EXCLUDED.opened_at,
    engaged_at = EXCLUDED.engaged_at, resolved_at = EXCLUDED.resolved_at,
    closed_at = EXCLUDED.closed_at, close_reason = EXCLUDED.close_reason,
    escalated = EXCLUDED.escalated, sla_breached = EXCLUDED.sla_breached,
    on_standup = EXCLUDED.on_standup, last_seq = EXCLUDED.last_seq,
    snapshot = EXCLUDED.snapshot, life = EXCLUDED.life, as_of = EXCLUDED.as_of, updated_at = now()
WHERE (cases.life = EXCLUDED.life AND cases.last_seq <= EXCLUDED.last_seq)
   OR (cases.life <> EXCLUDED.life AND (cases.as_of IS NULL OR cases.as_of < EXCLUDED.as_of))
"""
_INSERT_EVENT = """
INSERT INTO case_events (workflow_id, life, seq, at, type, actor, detail, data, storage_error)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (workflow_id, life, seq) DO NOTHING
"""
_INSERT_TICKET = """
INSERT INTO escalations (ticket_key, workflow_id, life, engagement, level, priority, assignee, reason,
    raised_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT DO NOTHING
"""

_INSERT_SLA_EVENT = """
INSERT INTO sla_events (workflow_id, life, seq, clock, event, at, engagement, level, starts_at, target,
    paused, due_at, late)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
ON CONFLICT (workflow_id, life, seq, clock) DO NOTHING
"""


def _sla_rows(c: CaseChanges, e: TimelineEntry) -> list[tuple[Any, ...]]:
    """One row per clock of an `sla_clock` entry."""
    return [_sla_row(c, e, m) for m in events_in([(e.type, e.data)])]


def _sla_row(c: CaseChanges, e: TimelineEntry, m: SlaClockEvent) -> tuple[Any, ...]:
    return (
        c.workflow_id,
        c.life,
        e.seq,
        m.clock,
        m.event.value,
        e.at,
        m.engagement,
        m.level,
        m.starts_at,
        m.target,
        m.paused,
        m.due_at,
        m.late,
    )


def _case_row(c: CaseChanges, snapshot: str | None = None) -> tuple[Any, ...]:
    s = c.status
    return tuple(
        storable(v)
        for v in (
            c.workflow_id,
            s.ticket.ticket_id,
            s.priority.value,
            s.phase.value,
            s.ticket.customer.account_id,
            s.ticket.customer.name,
            s.ticket.subject,
            s.assignee,
            s.opened_at,
            s.engaged_at,
            s.resolved_at,
            s.closed_at,
            s.close_reason.value if s.close_reason else None,
            s.escalated,
            s.sla_breached,
            s.on_standup,
            c.seq,
            _snapshot(s) if snapshot is None else snapshot,
            c.life,
            c.as_of,
        )
    )


def _event_row(c: CaseChanges, e: TimelineEntry, error: str | None = None) -> tuple[Any, ...]:
    """The entry as stored; after a data error, its texts in an escaped, bounded form, and why."""
    if error is None:
        detail, actor, data = storable(e.detail), storable(e.actor), json.dumps(storable(e.data), default=str)
    else:
        detail = clipped(ascii(e.detail)[1:-1], 10_000)
        actor = clipped(ascii(e.actor)[1:-1], 200) if e.actor else None
        data = json.dumps({"unstored": clipped(ascii(e.data), 10_000)})
    return (c.workflow_id, c.life, e.seq, e.at, storable(e.type), actor, detail, data, error)


def _ticket_row(t: TechLeadTicket) -> tuple[Any, ...]:
    return tuple(
        storable(v)
        for v in (
            t.ticket_key,
            t.workflow_id,
            t.life,
            t.engagement,
            t.level,
            t.priority.value,
            t.assignee,
            t.reason,
            t.raised_at,
        )
    )


async def _attempt(conn: Connection, sql: str, row: tuple[Any, ...]) -> tuple[str, str | None]:
    """Run `sql` in a savepoint: (its status, None), or ("", why) when PostgreSQL refuses the data,
    which no retry fixes."""
    try:
        async with conn.transaction():
            return await conn.execute(sql, *row), None
    except asyncpg.DataError as err:
        return "", one_line(f"{type(err).__name__}: {err}", 500)


def _unnest(types: tuple[str, ...], first: int) -> str:
    """`unnest` over one array parameter a column, numbered from `first`, typed as the table's columns."""
    return "unnest(" + ", ".join(f"${first + i}::{t}[]" for i, t in enumerate(types)) + ")"


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """`rows` as one list a column, the form `unnest` takes them in."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


_EVENT_TYPES = ("text", "text", "int", "timestamptz", "text", "text", "text", "jsonb", "text")
_SLA_TYPES = (
    "text", "text", "bigint", "text", "text", "timestamptz", "int", "text", "timestamptz", "interval",
    "interval", "timestamptz", "bool",
)  # fmt: skip
_TICKET_TYPES = ("text", "text", "text", "int", "text", "text", "text", "text", "timestamptz")
_OUTBOX_TYPES = (
    "text", "text", "int", "text", "text", "text", "text", "text", "text", "text", "jsonb", "text", "text",
    "text",
)  # fmt: skip
_CASE_WIDTH = 20
_FIRST_EVENT = _CASE_WIDTH + 1
_FIRST_SLA = _FIRST_EVENT + len(_EVENT_TYPES)
_FIRST_TICKET = _FIRST_SLA + len(_SLA_TYPES)
_FIRST_OUTBOX = _FIRST_TICKET + len(_TICKET_TYPES)

_STORE_AT_ONCE = f"""
WITH case_row AS ({_UPSERT_CASE}),
entries AS (
    INSERT INTO case_events (workflow_id, life, seq, at, type, actor, detail, data, storage_error)
    SELECT * FROM {_unnest(_EVENT_TYPES, _FIRST_EVENT)}
    ON CONFLICT (workflow_id, life, seq) DO NOTHING RETURNING 1
),
sla AS (
    INSERT INTO sla_events (workflow_id, life, seq, clock, event, at, engagement, level, starts_at,
        target, paused, due_at, late)
    SELECT * FROM {_unnest(_SLA_TYPES, _FIRST_SLA)}
    ON CONFLICT (workflow_id, life, seq, clock) DO NOTHING
),
tickets AS (
    INSERT INTO escalations (ticket_key, workflow_id, life, engagement, level, priority, assignee,
        reason, raised_at)
    SELECT * FROM {_unnest(_TICKET_TYPES, _FIRST_TICKET)}
    ON CONFLICT DO NOTHING
),
outbox AS (
    INSERT INTO notifications (dedupe_key, workflow_id, seq, kind, channel, role, recipient, subject,
        body, html, facts, state, last_error, life)
    SELECT * FROM {_unnest(_OUTBOX_TYPES, _FIRST_OUTBOX)}
    ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key, state
)
SELECT (SELECT count(*) FROM entries) AS inserted, ARRAY(
    SELECT dedupe_key FROM outbox WHERE state = 'pending'
    UNION
    SELECT dedupe_key FROM notifications
    WHERE dedupe_key = ANY(${_FIRST_OUTBOX}::text[]) AND state = 'pending'
) AS pending, ARRAY(
    SELECT dedupe_key FROM outbox
    UNION
    SELECT dedupe_key FROM notifications WHERE dedupe_key = ANY(${_FIRST_OUTBOX}::text[])
) AS seen
"""
"""A whole batch in one statement, one round trip: its own transaction, all of it or none. Its
sub-statements share one snapshot, so the notifications still pending are those it inserted pending and
those that were pending before it; a notification `seen` by neither was inserted by another attempt of
the same batch that committed while this one waited for it."""


async def _still_pending(db: asyncpg.Pool | Connection, keys: list[str]) -> set[str]:
    """Those of `keys` whose notifications are stored and still to deliver, as committed now."""
    return {r["dedupe_key"] for r in await db.fetch(PENDING_KEYS, keys)} if keys else set()


class CaseStore:
    """Activities over an asyncpg pool; the pool is injected so tests pass a real one."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def record_changes(self, changes: CaseChanges) -> list[str]:
        """Store one batch of a case's changes in one transaction; returns the dedupe keys of its
        notifications still to be delivered."""
        _, pending = await self._store(changes)
        return pending

    @activity.defn
    async def record_case(self, record: CaseRecord) -> int:
        """Upsert the case row and append timeline entries; returns the number of new entries. Cases
        opened before `record_changes` still call it; their rows belong to the life ''."""
        as_of = max((e.at for e in record.events), default=record.status.opened_at)
        changes = CaseChanges(
            workflow_id=record.workflow_id,
            life=record.status.life,
            seq=record.seq,
            as_of=as_of,
            status=record.status,
            events=record.events,
        )
        inserted, _ = await self._store(changes)
        return inserted

    async def _store(self, c: CaseChanges) -> tuple[int, list[str]]:
        """(new timeline entries, keys of notifications still to deliver). Stored in one statement; a
        batch PostgreSQL refuses for its data is stored again row by row, each row in a savepoint (two
        round trips), each refused row in a safe form."""
        bound = log.bind(workflow_id=c.workflow_id, ticket_id=c.status.ticket.ticket_id, seq=c.seq)
        keys = [n.dedupe_key for n in c.notifications]
        try:
            inserted, pending = await self._store_at_once(c, keys, bound)
        except asyncpg.DataError:
            inserted, pending = await self._store_row_by_row(c, keys, bound)
        bound.info("case recorded", phase=c.status.phase.value, new_events=inserted)
        return inserted, [k for k in keys if k in pending]

    async def _store_at_once(
        self, c: CaseChanges, keys: list[str], bound: structlog.typing.FilteringBoundLogger
    ) -> tuple[int, set[str]]:
        events = [_event_row(c, e) for e in c.events]
        sla = [row for e in c.events for row in _sla_rows(c, e)]
        tickets = [_ticket_row(t) for t in c.tickets]
        outbox = [outbox_row(n, bound) for n in c.notifications]
        row = await self._pool.fetchrow(
            _STORE_AT_ONCE,
            *_case_row(c),
            *_columns(events, len(_EVENT_TYPES)),
            *_columns(sla, len(_SLA_TYPES)),
            *_columns(tickets, len(_TICKET_TYPES)),
            *_columns(outbox, len(_OUTBOX_TYPES)),
        )
        assert row is not None
        if set(keys) <= set(row["seen"]):
            return row["inserted"], set(row["pending"])
        return row["inserted"], await _still_pending(self._pool, keys)

    async def _store_row_by_row(
        self, c: CaseChanges, keys: list[str], bound: structlog.typing.FilteringBoundLogger
    ) -> tuple[int, set[str]]:
        damaged: list[str] = []
        inserted = 0
        async with self._pool.acquire() as conn, conn.transaction():
            _, refused = await _attempt(conn, _UPSERT_CASE, _case_row(c))
            if refused:
                damaged.append(f"case row: {refused}")
                await conn.execute(_UPSERT_CASE, *_case_row(c, snapshot="{}"))
            for e in c.events:
                status, refused = await _attempt(conn, _INSERT_EVENT, _event_row(c, e))
                if refused:
                    damaged.append(f"entry {e.seq}: {refused}")
                    status = await conn.execute(_INSERT_EVENT, *_event_row(c, e, refused))
                inserted += status.endswith(" 1")
                for row in _sla_rows(c, e):
                    await conn.execute(_INSERT_SLA_EVENT, *row)
            for t in c.tickets:
                await conn.execute(_INSERT_TICKET, *_ticket_row(t))
            await write_outbox(conn, c.notifications, bound)
            pending = await _still_pending(conn, keys)
        if damaged:
            bound.error("stored in a safe form after a data error", damaged=damaged)
        return inserted, pending

    @activity.defn
    async def open_tech_lead_ticket(self, ticket: TechLeadTicket) -> bool:
        """Create the escalation ticket; returns False when it already existed (a retry)."""
        result = await self._pool.execute(
            """
            INSERT INTO escalations (ticket_key, workflow_id, engagement, level, priority, assignee,
                reason, raised_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
            ON CONFLICT DO NOTHING
            """,
            ticket.ticket_key,
            ticket.workflow_id,
            ticket.engagement,
            ticket.level,
            ticket.priority.value,
            ticket.assignee,
            ticket.reason,
            ticket.raised_at,
        )
        created: bool = result.endswith(" 1")
        log.info(
            "escalation ticket",
            workflow_id=ticket.workflow_id,
            level=ticket.level,
            engagement=ticket.engagement,
            created=created,
        )
        return created
