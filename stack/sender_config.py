"""Which real senders to use, from the settings; none set means the log sink for every channel.

Bad values fail at worker start with the variable's name (stack/settings.py), not at the first
notification.

`ABH_<CHANNEL>_IDEMPOTENT` says whether that channel's provider drops a second request carrying the same
`Idempotency-Key`: only then is a message left in doubt by a crash sent again, otherwise it waits for an
operator as `unknown`. The defaults are what the usual providers do: Slack's incoming webhooks ignore
the key (chat: false), PagerDuty deduplicates on `dedup_key` (page: true), and ABH's own telephony
contract carries `idempotency_key` (call: true).
"""

from __future__ import annotations

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
from stack.settings import PAGERDUTY_EVENTS_URL, Settings
from workflows.policy import Channel


def _or(flag: bool | None, default: bool) -> bool:
    return default if flag is None else flag


def _smtp(s: Settings) -> SmtpSettings | None:
    if not s.smtp_host or not s.smtp_from:
        return None
    implicit_tls = bool(s.smtp_ssl)
    starttls = s.smtp_starttls
    if implicit_tls:
        starttls = False
    elif starttls is None and s.smtp_username:
        starttls = True  # never send credentials in clear unless SMTP_STARTTLS=false says so
    return SmtpSettings(
        host=s.smtp_host.strip(),
        port=s.smtp_port or (465 if implicit_tls else 587),
        from_address=s.smtp_from.strip(),
        username=s.smtp_username,
        password=s.smtp_password,
        starttls=starttls,
        implicit_tls=implicit_tls,
        reply_to=s.smtp_reply_to,
        timeout=s.smtp_timeout,
        ca_file=s.smtp_ca_file,
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
        return cls.of(Settings.from_env(env))

    @classmethod
    def of(cls, settings: Settings) -> SenderSettings:
        """The senders' part of the settings, with the defaults that follow from what is set."""
        s = settings
        return cls(
            smtp=_smtp(s),
            chat_url=s.chat_webhook_url,
            page_url=s.page_webhook_url or (PAGERDUTY_EVENTS_URL if s.page_routing_key else None),
            page_routing_key=s.page_routing_key,
            page_source=s.page_source or "abh",
            call_url=s.call_webhook_url,
            webhook_secret=s.webhook_secret.encode() if s.webhook_secret else None,
            webhook_timeout=s.webhook_timeout,
            chat_idempotent=_or(s.chat_idempotent, cls.chat_idempotent),
            page_idempotent=_or(s.page_idempotent, cls.page_idempotent),
            call_idempotent=_or(s.call_idempotent, cls.call_idempotent),
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
