"""Case persistence: the current case row, its append-only timeline and Tech Lead tickets.

Every write is keyed by the workflow id and the event sequence number, so a retried activity or a
worker that crashed after committing writes nothing twice, and a late retry never rolls a case back.
"""

from __future__ import annotations

import json
from datetime import datetime

import asyncpg
import structlog
from pydantic import BaseModel, Field
from temporalio import activity

from workflows.models import CaseStatus, Priority, TimelineEntry

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
    engagement: int
    level: str
    priority: Priority
    assignee: str
    reason: str
    raised_at: datetime


def _snapshot(status: CaseStatus) -> str:
    return status.model_dump_json(exclude={"timeline"})


class CaseStore:
    """Activities over an asyncpg pool; the pool is injected so tests pass a real one."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def record_case(self, record: CaseRecord) -> int:
        """Upsert the case row and append timeline entries; returns the number of new entries."""
        s = record.status
        bound = log.bind(workflow_id=record.workflow_id, ticket_id=s.ticket.ticket_id, seq=record.seq)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                """
                INSERT INTO cases (workflow_id, ticket_id, priority, phase, customer_account, customer_name,
                    subject, assignee, opened_at, engaged_at, resolved_at, closed_at, close_reason,
                    escalated, sla_breached, on_standup, last_seq, snapshot)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)
                ON CONFLICT (workflow_id) DO UPDATE SET
                    priority = EXCLUDED.priority, phase = EXCLUDED.phase, assignee = EXCLUDED.assignee,
                    engaged_at = EXCLUDED.engaged_at, resolved_at = EXCLUDED.resolved_at,
                    closed_at = EXCLUDED.closed_at, close_reason = EXCLUDED.close_reason,
                    escalated = EXCLUDED.escalated, sla_breached = EXCLUDED.sla_breached,
                    on_standup = EXCLUDED.on_standup, last_seq = EXCLUDED.last_seq,
                    snapshot = EXCLUDED.snapshot, updated_at = now()
                WHERE cases.last_seq <= EXCLUDED.last_seq
                """,
                record.workflow_id,
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
                record.seq,
                _snapshot(s),
            )
            inserted = 0
            for e in record.events:
                result = await conn.execute(
                    """
                    INSERT INTO case_events (workflow_id, seq, at, type, actor, detail, data)
                    VALUES ($1, $2, $3, $4, $5, $6, $7)
                    ON CONFLICT (workflow_id, seq) DO NOTHING
                    """,
                    record.workflow_id,
                    e.seq,
                    e.at,
                    e.type,
                    e.actor,
                    e.detail,
                    json.dumps(e.data, default=str),
                )
                inserted += result.endswith(" 1")
        bound.info("case recorded", phase=s.phase.value, new_events=inserted)
        return inserted

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
