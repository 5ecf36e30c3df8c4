"""The daily standup digest: what the team must look at this morning, read from PostgreSQL.

The activity only reads; the digest workflow words it (`workflows/digest.py`) and hands the facts to
the existing outbox (`Notifier.send_notifications`), so delivery keeps its dedupe key and at-most-once
guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg
import structlog
from pydantic import BaseModel, Field
from temporalio import activity

from workflows.models import Phase, Priority

log = structlog.get_logger(__name__)

SECTIONS = ("urgent", "escalated", "breached", "oldest")
"""Digest sections, in the order the message lists them."""


class DigestQuery(BaseModel):
    """Which open cases to read: those opened by `as_of` (the workflow's now), each section capped."""

    as_of: datetime
    oldest: int = Field(default=5, ge=1, le=100)
    limit: int = Field(default=25, ge=1, le=500)


class DigestCase(BaseModel):
    workflow_id: str
    ticket_id: str
    priority: Priority
    phase: Phase
    customer_name: str
    subject: str
    assignee: str | None = None
    opened_at: datetime
    escalated: bool = False
    on_standup: bool = False
    sla_breached: bool = False
    paused: bool = False
    breached_milestones: list[str] = Field(default_factory=list)
    escalation_levels: list[str] = Field(default_factory=list)


class DigestSection(BaseModel):
    """The cases shown, and how many more matched than the cap allowed."""

    cases: list[DigestCase] = Field(default_factory=list)
    more: int = 0

    @property
    def total(self) -> int:
        return len(self.cases) + self.more

    def ticket_ids(self) -> list[str]:
        return [c.ticket_id for c in self.cases]


class StandupDigest(BaseModel):
    as_of: datetime
    open_cases: int
    urgent: DigestSection
    escalated: DigestSection
    breached: DigestSection
    oldest: DigestSection

    def sections(self) -> dict[str, DigestSection]:
        return {name: getattr(self, name) for name in SECTIONS}


_SELECT_OPEN = """
SELECT c.workflow_id, c.ticket_id, c.priority, c.phase, c.customer_name, c.subject, c.assignee, c.opened_at,
    c.escalated, c.on_standup, c.sla_breached,
    COALESCE((c.snapshot->>'paused')::boolean, false) AS paused,
    ARRAY(SELECT m->>'name' FROM jsonb_array_elements(COALESCE(c.snapshot->'milestones', '[]'::jsonb)) m
          WHERE m->>'state' IN ('breached', 'met_late')) AS breached_milestones,
    ARRAY(SELECT x.level FROM escalations x WHERE x.workflow_id = c.workflow_id AND x.life = c.life
          GROUP BY x.level ORDER BY min(x.raised_at)) AS escalation_levels
FROM cases c
WHERE c.phase <> 'closed' AND c.opened_at <= $1
"""

_FLAGGED = (
    _SELECT_OPEN
    + "AND (c.priority IN ('P1', 'P2') OR c.escalated OR c.on_standup OR c.sla_breached)\n"
    + "ORDER BY c.priority, c.opened_at, c.ticket_id"
)
_OLDEST = _SELECT_OPEN + "ORDER BY c.opened_at, c.ticket_id LIMIT $2"


def sectioned(flagged: Sequence[DigestCase], oldest: Sequence[DigestCase]) -> dict[str, list[DigestCase]]:
    """Which case goes where; a case may sit in several sections (a P1 that is escalated and breached)."""
    return {
        "urgent": [c for c in flagged if c.priority in (Priority.P1, Priority.P2)],
        "escalated": [c for c in flagged if c.escalated or c.on_standup],
        "breached": [c for c in flagged if c.sla_breached],
        "oldest": list(oldest),
    }


def _capped(cases: list[DigestCase], limit: int) -> DigestSection:
    return DigestSection(cases=cases[:limit], more=max(len(cases) - limit, 0))


class StandupActivities:
    """Reads for the standup; the pool is injected so tests pass a real one."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def collect_standup_digest(self, query: DigestQuery) -> StandupDigest:
        """Open P1/P2, escalated and breached cases, and the oldest open ones, in one consistent read."""
        info = activity.info()
        bound = log.bind(workflow_id=info.workflow_id, activity_id=info.activity_id, attempt=info.attempt)
        async with self._pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
            flagged = await conn.fetch(_FLAGGED, query.as_of)
            oldest = await conn.fetch(_OLDEST, query.as_of, query.oldest)
            total = await conn.fetchval(
                "SELECT count(*) FROM cases WHERE phase <> 'closed' AND opened_at <= $1", query.as_of
            )
        parts = sectioned([_case(r) for r in flagged], [_case(r) for r in oldest])
        digest = StandupDigest(
            as_of=query.as_of,
            open_cases=int(total),
            **{name: _capped(cases, query.limit) for name, cases in parts.items()},
        )
        bound.info(
            "standup digest read",
            open_cases=digest.open_cases,
            **{name: s.total for name, s in digest.sections().items()},
        )
        return digest


def _case(row: asyncpg.Record) -> DigestCase:
    return DigestCase.model_validate(dict(row))
