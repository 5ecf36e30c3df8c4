"""HTTP webhook senders for the `chat`, `page` and `call` channels.

Every request carries the outbox dedupe key as `Idempotency-Key` (and, for paging, as PagerDuty's
`dedup_key`, for calls as `idempotency_key`). Only a provider that deduplicates on it makes a channel
safe to replay after a crash, and not every one does (Slack's incoming webhooks ignore the header), so
each sender is told whether its channel is. A request that may have reached the provider (a timeout or
a lost line once it was written) is retried only on such a channel, and is otherwise in doubt, for an
operator; a failure before it was written (no connection) is retried on any. With a secret configured
the body is signed (HMAC-SHA256 over `<timestamp>.<body>`), so a receiver can reject forged or
replayed-late calls.

Every string in a body is made encodable first: a lone surrogate would make the JSON unencodable, and a
message that can never be encoded would otherwise be retried for ever.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from activities.notifications import (
    CredentialsRefused,
    DeliveryInDoubt,
    Message,
    PermanentFailure,
    TransientFailure,
)
from workflows.policy import Channel
from workflows.safe_text import one_line, storable

Payload = Callable[[Message], dict[str, Any]]

SIGNATURE_HEADER = "X-ABH-Signature"
TIMESTAMP_HEADER = "X-ABH-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"

# A provider asking us to wait longer than this is treated as down; Temporal's own backoff takes over.
MAX_RETRY_AFTER = timedelta(minutes=15)

# Enough to find the message in the provider's log.
PROVIDER_ID_LIMIT = 200

# Failures before the request was written: nothing reached the provider.
_NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol)

# PagerDuty's severities, from the case priority.
SEVERITY = {"P1": "critical", "P2": "error", "P3": "warning", "P4": "info"}


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    """The signature header's value: binding the timestamp stops an old body being replayed later."""
    digest = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: bytes, timestamp: str, body: bytes, signature: str, *, tolerance: float = 300) -> bool:
    """For receivers: a valid signature over a body sent within `tolerance` seconds."""
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


def _case_ref(message: Message) -> dict[str, str]:
    return {
        "ticket_id": message.facts.get("ticket_id", ""),
        "workflow_id": message.workflow_id,
        "priority": message.facts.get("priority", ""),
    }


def _mrkdwn(text: str) -> str:
    """Slack treats &, < and > as control characters in message text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def chat_payload(message: Message) -> dict[str, Any]:
    """Slack incoming-webhook shape: `text` for notifications and old clients, blocks for layout."""
    ref = message.facts.get("ticket_id") or message.workflow_id
    subject = one_line(message.subject)
    return {
        "text": f"*{_mrkdwn(subject)}*\n{_mrkdwn(message.body)}"[:3900],
        "channel": message.recipient,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": one_line(subject, 150)}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _mrkdwn(message.body)[:3000]}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"{message.kind} · case {_mrkdwn(ref)}"}],
            },
        ],
    }


def page_payload(routing_key: str, source: str) -> Payload:
    """PagerDuty Events API v2 `trigger`; the dedupe key makes a repeated trigger one incident."""

    def build(message: Message) -> dict[str, Any]:
        return {
            "routing_key": routing_key,
            "event_action": "trigger",
            "dedup_key": message.dedupe_key,
            "client": "ABH case lifecycle",
            "payload": {
                "summary": one_line(message.subject, 1024),
                "source": source,
                "severity": SEVERITY.get(message.facts.get("priority", ""), "error"),
                "class": message.kind,
                "group": message.facts.get("account_id", ""),
                "custom_details": {
                    **_case_ref(message),
                    "recipient": message.recipient,
                    "role": message.role,
                    "customer": message.facts.get("customer_name", ""),
                    "body": message.body,
                },
            },
        }

    return build


def call_payload(message: Message) -> dict[str, Any]:
    """ABH's telephony request: who to call, what to say, which case, and the key to deduplicate on."""
    return {
        "to": message.recipient,
        "message": message.body,
        "subject": message.subject,
        "kind": message.kind,
        "case": _case_ref(message),
        "idempotency_key": message.dedupe_key,
    }


def _retry_after(response: httpx.Response) -> timedelta | None:
    """Seconds (ASCII digits only: `str.isdigit` also takes "²") or an HTTP date; None for anything
    else, since a header we cannot read must not decide a message's fate."""
    value = response.headers.get("Retry-After", "").strip()
    if value.isascii() and value.isdigit():
        wait = timedelta(seconds=min(int(value), MAX_RETRY_AFTER.total_seconds()))
    else:
        try:
            wait = parsedate_to_datetime(value) - datetime.now(UTC)
        except (TypeError, ValueError, OverflowError):
            return None
    return min(max(wait, timedelta(seconds=1)), MAX_RETRY_AFTER)


def _provider_id(response: httpx.Response) -> str | None:
    """The provider's reference for the outbox row: a JSON id, PagerDuty's dedup_key, or a request id.

    The message is delivered whatever the answer's body holds, so a body that cannot be read (not JSON,
    nested too deep, an id too long to print) gives no id instead of an error, and the id is put on one
    line (which also drops the NUL and lone surrogates PostgreSQL refuses) and clipped."""
    try:
        found = _id_in(response)
    except Exception:
        return None
    if not found:
        return None
    return one_line(found, PROVIDER_ID_LIMIT) or None


def _id_in(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except (ValueError, RecursionError):
        data = None
    if isinstance(data, dict):
        for field in ("id", "dedup_key", "message_id", "request_id"):
            if isinstance(data.get(field), str | int):
                return str(data[field])
    request_id: str | None = response.headers.get("X-Request-Id")
    return request_id


def outcome(response: httpx.Response) -> str | None:
    """2xx delivers; 408, 429 and 5xx may succeed later; 401 and 403 refuse our key or token, which
    only an operator can fix, so they are retried with backoff and shown; any other answer (400, 404,
    410, a redirect) will never succeed."""
    code = response.status_code
    if 200 <= code < 300:
        return _provider_id(response)
    host = response.request.url.host
    detail = f"HTTP {code} from {host}: {one_line(response.text, 300)}"
    if code in (408, 429) or code >= 500:
        raise TransientFailure(detail, retry_after=_retry_after(response))
    if code in (401, 403):
        raise CredentialsRefused(
            f"HTTP {code} from {host}: the webhook credentials (URL key, token or signing secret) were"
            f" refused: {one_line(response.text, 300)}"
        )
    raise PermanentFailure(detail)


class WebhookSender:
    """One channel's webhook: a payload shape plus the shared rules for headers, signing and failures."""

    def __init__(
        self,
        url: str,
        payload: Payload,
        *,
        client: httpx.AsyncClient,
        replay_safe: bool,
        secret: bytes | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._payload = payload
        self._client = client
        self._replay_safe = replay_safe
        self._secret = secret
        self._timeout = timeout

    def replay_safe(self, channel: Channel) -> bool:
        """Whether this provider drops a second copy carrying the same key, as configured: only then may
        a row left in doubt by a crash be sent again."""
        return self._replay_safe

    def _body(self, message: Message) -> bytes:
        try:
            payload = storable(self._payload(message))
            return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        except (ValueError, TypeError) as err:
            raise PermanentFailure(f"cannot encode the webhook body: {type(err).__name__}: {err}") from err

    async def __call__(self, message: Message) -> str | None:
        body = self._body(message)
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "abh-notifier",
            IDEMPOTENCY_HEADER: message.dedupe_key,
        }
        if self._secret:
            timestamp = str(int(time.time()))
            headers[TIMESTAMP_HEADER] = timestamp
            headers[SIGNATURE_HEADER] = sign(self._secret, timestamp, body)
        try:
            response = await self._client.post(self.url, content=body, headers=headers, timeout=self._timeout)
        except _NOT_SENT as err:
            raise TransientFailure(self._failure(err)) from err
        except httpx.HTTPError as err:
            if self._replay_safe:
                raise TransientFailure(self._failure(err)) from err
            raise DeliveryInDoubt(f"the request may have reached the provider: {self._failure(err)}") from err
        return outcome(response)

    def _failure(self, err: httpx.HTTPError) -> str:
        if isinstance(err, httpx.TimeoutException):
            return f"timed out after {self._timeout}s: {type(err).__name__}"
        return f"{type(err).__name__}: {err}"
