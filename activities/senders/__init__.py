"""Real delivery channels behind the outbox: SMTP e-mail and HTTP webhooks for chat, paging and calls."""

from activities.senders.email import SmtpSender, SmtpSettings
from activities.senders.routing import Senders
from activities.senders.webhooks import WebhookSender, call_payload, chat_payload, page_payload

__all__ = [
    "Senders",
    "SmtpSender",
    "SmtpSettings",
    "WebhookSender",
    "call_payload",
    "chat_payload",
    "page_payload",
]
