"""What the operator's commands read and show: plain models, so views fetch and render only formats."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from workflows.models import Trouble


class OutboxRow(BaseModel):
    """One outbox row, as an operator reads it."""

    dedupe_key: str
    workflow_id: str
    kind: str
    channel: str
    role: str
    recipient: str
    subject: str
    state: str
    attempts: int
    last_error: str | None
    created_at: datetime
    settled_at: datetime | None


class DamagedEntry(BaseModel):
    """A timeline entry PostgreSQL refused as it was, kept escaped, with the reason."""

    workflow_id: str
    life: str
    seq: int
    type: str
    storage_error: str
    recorded_at: datetime


class CaseRow(BaseModel):
    """One case as visibility knows it: enough to pick a case out of a list without querying it."""

    workflow_id: str
    ticket_id: str
    priority: str | None = None
    phase: str | None = None
    customer: str | None = None
    assignee: str | None = None
    escalated: bool = False
    breached: bool = False
    opened_at: datetime | None = None
    status: str | None = None
    closed_at: datetime | None = None


class PendingActivity(BaseModel):
    activity_type: str
    attempt: int
    last_failure: str | None = None
    last_attempt_at: datetime | None = None


class StuckCase(BaseModel):
    workflow_id: str
    ticket_id: str
    troubles: list[Trouble] = Field(default_factory=list)
    activities: list[PendingActivity] = Field(default_factory=list)
    note: str | None = None


class AttentionReport(BaseModel):
    cases: list[StuckCase] = Field(default_factory=list)
    notifications: list[OutboxRow] = Field(default_factory=list)
    abandoned_sends: list[OutboxRow] = Field(default_factory=list)
    damaged_entries: list[DamagedEntry] = Field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.cases or self.notifications or self.abandoned_sends or self.damaged_entries)
