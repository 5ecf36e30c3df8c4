"""Notifications: rendered from templates, written to the outbox, then delivered once.

The outbox row's dedupe key comes from the workflow id and the event sequence number, so a retried
activity finds the row already there and a delivered row is never delivered again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import asyncpg
import jinja2
import structlog
from pydantic import BaseModel, Field
from temporalio import activity

from workflows.policy import Channel, Role

log = structlog.get_logger(__name__)

_templates = jinja2.Environment(
    loader=jinja2.PackageLoader("activities", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
)


class Notification(BaseModel):
    """One message to one recipient on one channel, decided by the workflow."""

    dedupe_key: str
    workflow_id: str
    seq: int
    kind: str
    channel: Channel
    role: Role
    recipient: str
    facts: dict[str, str] = Field(default_factory=dict)


class Message(BaseModel):
    """A rendered notification, as a sender receives it."""

    dedupe_key: str
    channel: Channel
    recipient: str
    subject: str
    body: str


def render(kind: str, facts: dict[str, str]) -> tuple[str, str]:
    """Subject and body of the `kind` template: its first line is `Subject: ...`."""
    text = _templates.get_template(f"{kind}.txt").render(**facts)
    head, _, body = text.partition("\n\n")
    return head.removeprefix("Subject: ").strip(), body.strip() + "\n"


Sender = Callable[[Message], Awaitable[None]]


async def log_sink(message: Message) -> None:
    """The embedded default: every delivery is a structured log line, no credentials needed."""
    log.info(
        "notification delivered",
        channel=message.channel,
        recipient=message.recipient,
        subject=message.subject,
        dedupe_key=message.dedupe_key,
    )


class Notifier:
    """Activities over the outbox table and a sender."""

    def __init__(self, pool: asyncpg.Pool, sender: Sender = log_sink) -> None:
        self._pool = pool
        self._send = sender

    @activity.defn
    async def send_notifications(self, batch: list[Notification]) -> int:
        """Write each notification to the outbox, then deliver those still pending; returns deliveries."""
        delivered = 0
        for n in batch:
            subject, body = render(n.kind, n.facts)
            await self._pool.execute(
                """
                INSERT INTO notifications (dedupe_key, workflow_id, seq, kind, channel, role, recipient,
                    subject, body)
                VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                ON CONFLICT (dedupe_key) DO NOTHING
                """,
                n.dedupe_key,
                n.workflow_id,
                n.seq,
                n.kind,
                n.channel,
                n.role.value,
                n.recipient,
                subject,
                body,
            )
            delivered += await self._deliver(n.dedupe_key)
        return delivered

    async def _deliver(self, dedupe_key: str) -> int:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    "SELECT * FROM notifications WHERE dedupe_key = $1 AND state = 'pending'"
                    " FOR UPDATE SKIP LOCKED",
                    dedupe_key,
                )
                if row is None:
                    return 0
                await self._send(
                    Message(
                        dedupe_key=dedupe_key,
                        channel=row["channel"],
                        recipient=row["recipient"],
                        subject=row["subject"],
                        body=row["body"],
                    )
                )
                await conn.execute(
                    "UPDATE notifications SET state = 'sent', attempts = attempts + 1, sent_at = $2"
                    " WHERE dedupe_key = $1",
                    dedupe_key,
                    datetime.now(UTC),
                )
                return 1
        except Exception as err:
            await self._pool.execute(
                "UPDATE notifications SET attempts = attempts + 1, last_error = $2 WHERE dedupe_key = $1",
                dedupe_key,
                f"{type(err).__name__}: {err}"[:2000],
            )
            raise
