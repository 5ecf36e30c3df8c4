"""Notifications: rendered from templates, written to the outbox, then delivered at most once.

The outbox row's dedupe key comes from the case's life and the event sequence number, so a retried
activity finds the row already there. Rows are written with the case's timeline (CaseStore.record_changes)
and delivered by key (`deliver`); what a case leaves behind, the relay delivers (`relay_outbox`, run by a
Temporal Schedule). Around each send the row moves `pending -> sending -> sent` (or `failed`, or back
to `pending` for a retry); a row left in `sending` by a deliverer that is gone is in doubt: it is sent
again only through a sender that hands the provider the dedupe key as an idempotency key, and is
otherwise parked as `unknown` for an operator.
"""

from __future__ import annotations

import asyncio
import functools
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import asyncpg
import jinja2
import structlog
from pydantic import BaseModel, Field
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.database import Connection
from workflows.policy import Channel, Role
from workflows.safe_text import one_line, storable

log = structlog.get_logger(__name__)

_loader = jinja2.PackageLoader("activities", "templates")
_templates = jinja2.Environment(
    loader=_loader,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    # `render` compiles the parts of a text template from strings: text, never HTML-escaped.
    autoescape=jinja2.select_autoescape(
        enabled_extensions=("html",), default_for_string=False, default=False
    ),
)

# Enough history to explain a stuck row without letting a days-long outage grow it without bound.
ATTEMPT_LOG_LIMIT = 50
# A claim older than this belongs to a deliverer that is gone: a live one sends a message in seconds.
CLAIM_TTL = timedelta(minutes=2)
# The relay takes a pending row once nobody has tried it for this long.
RELAY_AFTER = timedelta(minutes=2)


class Notification(BaseModel):
    """One message to one recipient on one channel, decided by the workflow."""

    dedupe_key: str
    workflow_id: str
    life: str = ""
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
    html: str | None = None
    kind: str = ""
    workflow_id: str = ""
    role: str = ""
    facts: dict[str, str] = Field(default_factory=dict)


@functools.cache
def _text_parts(kind: str) -> tuple[jinja2.Template, jinja2.Template]:
    """The `kind` template split at its first blank line, in the source: a blank line in a fact then
    stays in the body instead of ending the subject early."""
    source, _, _ = _loader.get_source(_templates, f"{kind}.txt")
    head, _, body = source.partition("\n\n")
    return _templates.from_string(head), _templates.from_string(body)


def render(kind: str, facts: dict[str, str]) -> tuple[str, str]:
    """Subject and body of the `kind` template: its first line is `Subject: ...`, rendered from the
    facts each put on one line."""
    head, body = _text_parts(kind)
    subject = head.render({k: one_line(v) for k, v in facts.items()})
    return one_line(subject.removeprefix("Subject: ")), body.render(**facts).strip() + "\n"


def render_html(kind: str, facts: dict[str, str], subject: str) -> str | None:
    """The HTML part of an e-mail, escaped; None for a kind that ships only plain text."""
    try:
        template = _templates.get_template(f"{kind}.html")
    except jinja2.TemplateNotFound:
        return None
    return template.render({**facts, "email_subject": subject}).strip() + "\n"


class PermanentFailure(Exception):
    """The provider refused this message for good (e.g. HTTP 400, SMTP 550): retrying cannot help."""


class TransientFailure(Exception):
    """Nothing was delivered this time (HTTP 5xx or 429, a timeout, a refused connection)."""

    def __init__(self, message: str, *, retry_after: timedelta | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class CredentialsRefused(TransientFailure):
    """The provider refused our credentials (HTTP 401/403, SMTP AUTH): nothing was sent, and only an
    operator fixing the key or password makes it work; retried with backoff and shown to operators."""


class DeliveryInDoubt(Exception):
    """The provider may have accepted the message and cannot recognise a second copy (SMTP after DATA; a
    webhook request that timed out or lost its line once written, on a channel that is not replay-safe)."""


Sender = Callable[[Message], Awaitable[str | None]]
"""Delivers one message; returns the provider's reference when it gives one. Raising anything but the
failures above counts as transient: the row goes back to `pending` and the activity is retried."""


@runtime_checkable
class ReplaySafe(Protocol):
    """A sender that can say which channels deduplicate a second copy sent with the same dedupe key."""

    def replay_safe(self, channel: Channel) -> bool: ...


async def log_sink(message: Message) -> None:
    """The embedded default: every delivery is a structured log line, no credentials needed."""
    log.info(
        "notification delivered",
        workflow_id=message.workflow_id,
        channel=message.channel,
        recipient=message.recipient,
        subject=message.subject,
        dedupe_key=message.dedupe_key,
    )


def _error(err: BaseException) -> str:
    return one_line(f"{type(err).__name__}: {err}", 2000)


# Errors of the message itself (a header, an encoding, a template): no retry can fix them.
DATA_ERRORS = (ValueError, TypeError, LookupError, jinja2.TemplateError)


class RelayRequest(BaseModel):
    """One pass of the relay: at most `limit` rows, each untried for at least `idle`."""

    limit: int = 200
    idle: timedelta = RELAY_AFTER


class RelayReport(BaseModel):
    """What one pass of the outbox relay did."""

    delivered: int = 0
    retry_later: int = 0
    looked_at: int = 0


def attempt_entry(claim: str, outcome: str, **details: Any) -> str:
    at = datetime.now(UTC).isoformat(timespec="milliseconds")
    return json.dumps({"at": at, "claim": claim, "outcome": outcome, **details})


def append_to_log(param: str) -> str:
    """SQL that appends one JSON entry to the row's attempt log, dropping the oldest past the limit."""
    return (
        f"attempt_log = (CASE WHEN jsonb_array_length(attempt_log) >= {ATTEMPT_LOG_LIMIT}"
        f" THEN attempt_log - 0 ELSE attempt_log END) || jsonb_build_array({param}::jsonb)"
    )


INSERT_OUTBOX = """
INSERT INTO notifications (dedupe_key, workflow_id, seq, kind, channel, role, recipient, subject, body,
    html, facts, state, last_error, life)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12, $13, $14)
ON CONFLICT (dedupe_key) DO NOTHING
"""
PENDING_KEYS = "SELECT dedupe_key FROM notifications WHERE dedupe_key = ANY($1::text[]) AND state = 'pending'"
_LEFT_BEHIND = """
SELECT dedupe_key FROM notifications
WHERE (state = 'pending' AND coalesce(claimed_at, created_at) < now() - $1::interval)
   OR (state = 'sending' AND claimed_at < now() - $2::interval)
ORDER BY created_at LIMIT $3
"""


def outbox_row(n: Notification, bound: structlog.typing.FilteringBoundLogger) -> tuple[Any, ...]:
    """The outbox row of one notification, rendered and safe to store. A template that cannot render is
    a bug no retry fixes, so its row is written `failed` rather than blocking the case."""
    facts = storable(n.facts)
    state, error, html = "pending", None, None
    try:
        subject, body = render(n.kind, facts)
        html = render_html(n.kind, facts, subject)
    except DATA_ERRORS as err:
        subject, body, state, error = f"[{n.kind}]", "", "failed", _error(err)
        bound.error("notification template failed", kind=n.kind, error=error)
    return tuple(
        storable(v)
        for v in (
            n.dedupe_key,
            n.workflow_id,
            n.seq,
            n.kind,
            n.channel,
            n.role.value,
            n.recipient,
            one_line(subject, 998),
            body,
            html,
            json.dumps(facts),
            state,
            error,
            n.life,
        )
    )


async def write_outbox(
    conn: Connection, batch: list[Notification], bound: structlog.typing.FilteringBoundLogger
) -> None:
    """Every row of `batch` in the outbox (an existing one is kept as it is). A row PostgreSQL refuses
    for its data is written `failed` with the reason, without its facts, so the case goes on."""
    if not batch:
        return
    try:
        async with conn.transaction():
            await conn.executemany(INSERT_OUTBOX, [outbox_row(n, bound) for n in batch])
        return
    except asyncpg.DataError:
        pass
    for n in batch:
        try:
            async with conn.transaction():
                await conn.execute(INSERT_OUTBOX, *outbox_row(n, bound))
        except asyncpg.DataError as err:
            reason = f"not storable: {_error(err)}"
            bound.error("notification not storable; written failed", dedupe_key=n.dedupe_key, error=reason)
            row = list(outbox_row(n.model_copy(update={"facts": {}}), bound))
            row[7], row[8], row[9], row[11], row[12] = f"[{n.kind}]", "", None, "failed", reason
            await conn.execute(INSERT_OUTBOX, *row)


_CLAIM = """
UPDATE notifications SET state = 'sending', attempts = attempts + 1, claimed_at = now(), claimed_by = $2
WHERE dedupe_key = $1 AND state = 'pending' RETURNING *
"""
_RECLAIM = f"""
UPDATE notifications SET attempts = attempts + 1, claimed_at = now(), claimed_by = $2, {append_to_log("$4")}
WHERE dedupe_key = $1 AND state = 'sending' AND claimed_by IS NOT DISTINCT FROM $3 RETURNING *
"""
_ABANDON = f"""
UPDATE notifications SET state = 'unknown', last_error = $3, settled_at = now(), {append_to_log("$4")}
WHERE dedupe_key = $1 AND state = 'sending' AND claimed_by IS NOT DISTINCT FROM $2
"""
_SENT = f"""
UPDATE notifications SET state = 'sent', sent_at = now(), settled_at = now(), provider_id = $2,
    {append_to_log("$3")}
WHERE dedupe_key = $1 AND state IN ('sending', 'unknown')
"""
_SETTLE = f"""
UPDATE notifications SET state = $3, last_error = $4,
    settled_at = CASE WHEN $3 = 'pending' THEN NULL ELSE now() END, {append_to_log("$5")}
WHERE dedupe_key = $1 AND state = 'sending' AND claimed_by = $2
"""


class Notifier:
    """Activities over the outbox table and a sender."""

    def __init__(
        self, pool: asyncpg.Pool, sender: Sender = log_sink, *, heartbeat_every: float = 5.0
    ) -> None:
        self._pool = pool
        self._send = sender
        self._heartbeat_every = heartbeat_every

    @activity.defn
    async def send_notifications(self, batch: list[Notification]) -> int:
        """Write each notification to the outbox, then deliver those still pending; returns deliveries.

        A permanent failure is recorded and the case goes on; a transient one is recorded, the rest of the
        batch is still tried, and the activity then raises so Temporal retries with backoff.
        """
        bound = log.bind(workflow_id=activity.info().workflow_id, attempt=activity.info().attempt)
        async with self._pool.acquire() as conn:
            await write_outbox(conn, batch, bound)
        return await self._deliver_all(list(dict.fromkeys(n.dedupe_key for n in batch)), bound)

    @activity.defn
    async def deliver(self, keys: list[str]) -> int:
        """Deliver the outbox rows of `keys` still to be sent; returns deliveries. A permanent failure
        is recorded on its row and the case goes on; a transient one is recorded, the rest are still
        tried, and the activity then raises so the case retries it."""
        info = activity.info()
        bound = log.bind(workflow_id=info.workflow_id, attempt=info.attempt)
        return await self._deliver_all(keys, bound)

    async def deliver_promptly(self, keys: list[str], budget: float) -> list[str]:
        """Deliver `keys` in order while `budget` seconds last, never cutting a send short; returns the
        keys not delivered (a transient failure, or no time left) for the `deliver` activity. Used where
        the rows were just stored, inside one short local activity, so it neither heartbeats nor raises."""
        info = activity.info()
        bound = log.bind(workflow_id=info.workflow_id, attempt=info.attempt, prompt=True)
        claim = self._claim()
        deadline = asyncio.get_running_loop().time() + budget
        left: list[str] = []
        for key in keys:
            if left or asyncio.get_running_loop().time() > deadline:
                left.append(key)
                continue
            try:
                await self._deliver(key, claim, bound)
            except Exception:
                left.append(key)
        return left

    @activity.defn
    async def relay_outbox(self, request: RelayRequest) -> RelayReport:
        """Deliver what cases left behind: rows pending with nobody trying them (a case that closed or
        continued as new while a channel was down), and rows whose deliverer is gone mid-send."""
        report = RelayReport()
        found = await self._pool.fetch(_LEFT_BEHIND, request.idle, CLAIM_TTL, request.limit)
        keys = [r["dedupe_key"] for r in found]
        claim = self._claim()
        async with self._heartbeats():
            for key in keys:
                report.looked_at += 1
                try:
                    report.delivered += await self._deliver(key, claim, log.bind(relay=True))
                except Exception:
                    report.retry_later += 1
        if keys:
            log.info("outbox relay pass", **report.model_dump())
        return report

    def _claim(self) -> str:
        """This attempt's name on the rows it claims: the run and activity first, so a later attempt of
        the same activity knows an earlier one is gone (Temporal starts it only once that one ended)."""
        info = activity.info()
        return f"{info.workflow_run_id}:{info.activity_id}#{info.attempt}/{uuid.uuid4().hex[:8]}"

    async def _deliver_all(self, keys: list[str], bound: structlog.typing.FilteringBoundLogger) -> int:
        claim = self._claim()
        delivered = 0
        retry: list[Exception] = []
        async with self._heartbeats():
            for key in keys:
                try:
                    delivered += await self._deliver(key, claim, bound)
                except Exception as err:
                    retry.append(err)
        if retry:
            bound.warning("notifications to retry", count=len(retry), first=_error(retry[0]))
            first = retry[0]
            if isinstance(first, TransientFailure) and first.retry_after:
                raise ApplicationError(
                    str(first), type=type(first).__name__, next_retry_delay=first.retry_after
                ) from first
            raise first
        return delivered

    async def _deliver(self, key: str, claim: str, bound: structlog.typing.FilteringBoundLogger) -> int:
        row = await self._pool.fetchrow(_CLAIM, key, claim)
        if row is None:
            row = await self._recover(key, claim, bound)
            if row is None:
                return 0
        message = _message(row)
        bound = bound.bind(dedupe_key=key, channel=message.channel, attempt_no=row["attempts"])
        try:
            provider_id = await self._send(message)
        except PermanentFailure as err:
            await self._settle(key, claim, "failed", "permanent", err)
            bound.error("notification failed for good", error=_error(err))
            return 0
        except DeliveryInDoubt as err:
            await self._settle(key, claim, "unknown", "in_doubt", err)
            bound.error("notification delivery in doubt; not re-sent", error=_error(err))
            return 0
        except TransientFailure as err:
            await self._settle(key, claim, "pending", "transient", err)
            bound.warning("notification not delivered; will retry", error=_error(err))
            raise
        except DATA_ERRORS as err:
            await self._settle(key, claim, "failed", "permanent", err)
            bound.error("notification cannot be composed; failed for good", error=_error(err))
            return 0
        except asyncio.CancelledError as err:
            safe = isinstance(self._send, ReplaySafe) and self._send.replay_safe(message.channel)
            await self._settle(key, claim, "pending" if safe else "unknown", "cancelled", err)
            bound.warning("delivery cancelled mid-send", state="pending" if safe else "unknown")
            raise
        except Exception as err:
            await self._settle(key, claim, "pending", "transient", err)
            bound.warning("notification not delivered; will retry", error=_error(err))
            raise
        entry = attempt_entry(claim, "sent", provider_id=provider_id)
        await self._pool.execute(_SENT, key, provider_id, entry)
        bound.info("notification sent", provider_id=provider_id)
        return 1

    async def _recover(
        self, key: str, claim: str, bound: structlog.typing.FilteringBoundLogger
    ) -> asyncpg.Record | None:
        """A row still `sending` was claimed by an attempt that is gone (a crash, a timeout): send it
        again only where the provider deduplicates on the key, else park it as `unknown`."""
        row = await self._pool.fetchrow(
            "SELECT channel, claimed_by, claimed_at, claimed_at < now() - $2::interval AS stale"
            " FROM notifications WHERE dedupe_key = $1 AND state = 'sending'",
            key,
            CLAIM_TTL,
        )
        if row is None:
            return None
        previous = row["claimed_by"] or ""
        mine = previous.startswith(claim.split("#", 1)[0] + "#")
        if not (mine or row["stale"]):
            bound.info("notification being sent by another deliverer", dedupe_key=key, by=previous)
            return None
        if isinstance(self._send, ReplaySafe) and self._send.replay_safe(row["channel"]):
            bound.warning("notification in doubt; re-sending with its idempotency key", dedupe_key=key)
            entry = attempt_entry(claim, "replay", previous=previous)
            replayed: asyncpg.Record | None = await self._pool.fetchrow(_RECLAIM, key, claim, previous, entry)
            return replayed
        error = f"in doubt: attempt {previous} stopped mid-send at {row['claimed_at']:%Y-%m-%d %H:%M:%S%z}"
        entry = attempt_entry(claim, "abandoned", error=error)
        await self._pool.execute(_ABANDON, key, previous, error, entry)
        bound.error("notification in doubt; left for an operator", dedupe_key=key, previous=previous)
        return None

    async def _settle(self, key: str, claim: str, state: str, outcome: str, err: BaseException) -> None:
        error = _error(err)
        entry = attempt_entry(claim, outcome, error=error)
        await self._pool.execute(_SETTLE, key, claim, state, error, entry)

    @asynccontextmanager
    async def _heartbeats(self) -> AsyncIterator[None]:
        """Heartbeat while sending, so a workflow's heartbeat timeout notices a dead worker in seconds."""

        async def beat() -> None:
            while True:
                activity.heartbeat()
                await asyncio.sleep(self._heartbeat_every)

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with suppress(asyncio.CancelledError):
                await task


def _message(row: asyncpg.Record) -> Message:
    return Message(
        dedupe_key=row["dedupe_key"],
        channel=row["channel"],
        recipient=row["recipient"],
        subject=row["subject"],
        body=row["body"],
        html=row["html"],
        kind=row["kind"],
        workflow_id=row["workflow_id"],
        role=row["role"],
        facts=json.loads(row["facts"]),
    )
