"""Which real senders to use, from environment variables; none set means the log sink for every channel.

Bad values fail at worker start with the variable's name, not at the first notification.

`ABH_<CHANNEL>_IDEMPOTENT` says whether that channel's provider drops a second request carrying the same
`Idempotency-Key`: only then is a message left in doubt by a crash sent again, otherwise it waits for an
operator as `unknown`. The defaults are what the usual providers do: Slack's incoming webhooks ignore
the key (chat: false), PagerDuty deduplicates on `dedup_key` (page: true), and ABH's own telephony
contract carries `idempotency_key` (call: true).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from activities.notifications import Sender
from activities.senders import (
    Senders,
    SmtpSender,
    SmtpSettings,
    WebhookSender,
    call_payload,
    chat_payload,
    page_payload,
)
from activities.senders.webhooks import Payload
from workflows.policy import Channel

PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str) -> bool | None:
    value = env.get(name, "").strip().lower()
    if not value or value == "auto":
        return None
    if value in _TRUE | _FALSE:
        return value in _TRUE
    raise ValueError(f"{name}={env[name]!r}: expected true, false or auto")


def _or(flag: bool | None, default: bool) -> bool:
    return default if flag is None else flag


def _number(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    try:
        number = float(value) if value else default
    except ValueError:
        raise ValueError(f"{name}={value!r}: expected a number") from None
    if number <= 0:
        raise ValueError(f"{name}={value!r}: must be positive")
    return number


def _url(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{name}={value!r}: expected an http:// or https:// URL")
    return value or None


def _smtp(env: Mapping[str, str]) -> SmtpSettings | None:
    host = env.get("SMTP_HOST", "").strip()
    if not host:
        return None
    sender = env.get("SMTP_FROM", "").strip()
    if not sender:
        raise ValueError("SMTP_FROM is required when SMTP_HOST is set")
    implicit_tls = _flag(env, "SMTP_SSL") or False
    username = env.get("SMTP_USERNAME") or None
    starttls = _flag(env, "SMTP_STARTTLS")
    if implicit_tls:
        starttls = False
    elif starttls is None and username:
        starttls = True  # never send credentials in clear unless SMTP_STARTTLS=false says so
    port = env.get("SMTP_PORT", "").strip()
    if port and not port.isdigit():
        raise ValueError(f"SMTP_PORT={port!r}: expected a port number")
    return SmtpSettings(
        host=host,
        port=int(port) if port else (465 if implicit_tls else 587),
        from_address=sender,
        username=username,
        password=env.get("SMTP_PASSWORD") or None,
        starttls=starttls,
        implicit_tls=implicit_tls,
        reply_to=env.get("SMTP_REPLY_TO") or None,
        timeout=_number(env, "SMTP_TIMEOUT", 15.0),
        ca_file=env.get("SMTP_CA_FILE") or None,
    )


@dataclass(frozen=True)
class SenderSettings:
    smtp: SmtpSettings | None = None
    chat_url: str | None = None
    page_url: str | None = None
    page_routing_key: str | None = None
    page_source: str = "abh"
    call_url: str | None = None
    webhook_secret: bytes | None = None
    webhook_timeout: float = 10.0
    chat_idempotent: bool = False
    page_idempotent: bool = True
    call_idempotent: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SenderSettings:
        env = os.environ if env is None else env
        routing_key = env.get("ABH_PAGE_ROUTING_KEY", "").strip() or None
        page_url = _url(env, "ABH_PAGE_WEBHOOK_URL")
        if page_url and not routing_key:
            raise ValueError("ABH_PAGE_ROUTING_KEY is required when ABH_PAGE_WEBHOOK_URL is set")
        secret = env.get("ABH_WEBHOOK_SECRET", "")
        return cls(
            smtp=_smtp(env),
            chat_url=_url(env, "ABH_CHAT_WEBHOOK_URL"),
            page_url=page_url or (PAGERDUTY_EVENTS_URL if routing_key else None),
            page_routing_key=routing_key,
            page_source=env.get("ABH_PAGE_SOURCE", "").strip() or "abh",
            call_url=_url(env, "ABH_CALL_WEBHOOK_URL"),
            webhook_secret=secret.encode() if secret else None,
            webhook_timeout=_number(env, "ABH_WEBHOOK_TIMEOUT", 10.0),
            chat_idempotent=_or(_flag(env, "ABH_CHAT_IDEMPOTENT"), cls.chat_idempotent),
            page_idempotent=_or(_flag(env, "ABH_PAGE_IDEMPOTENT"), cls.page_idempotent),
            call_idempotent=_or(_flag(env, "ABH_CALL_IDEMPOTENT"), cls.call_idempotent),
        )

    def build(self) -> Senders:
        """The senders these settings describe; the caller closes them with `aclose()`."""
        channels: dict[Channel, Sender] = {}
        if self.smtp:
            channels["email"] = SmtpSender(self.smtp)
        hooks: dict[Channel, tuple[str | None, Payload, bool]] = {
            "chat": (self.chat_url, chat_payload, self.chat_idempotent),
            "page": (
                self.page_url,
                page_payload(self.page_routing_key or "", self.page_source),
                self.page_idempotent,
            ),
            "call": (self.call_url, call_payload, self.call_idempotent),
        }
        client = None
        if any(url for url, _, _ in hooks.values()):
            client = httpx.AsyncClient(follow_redirects=False)
        for channel, (url, payload, idempotent) in hooks.items():
            if url and client is not None:
                channels[channel] = WebhookSender(
                    url,
                    payload,
                    client=client,
                    replay_safe=idempotent,
                    secret=self.webhook_secret,
                    timeout=self.webhook_timeout,
                )
        return Senders(channels, client=client)


def senders_from_env(env: Mapping[str, str] | None = None) -> Senders:
    return SenderSettings.from_env(env).build()
