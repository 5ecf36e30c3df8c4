"""The `email` channel over SMTP: plain text and HTML alternatives, STARTTLS or implicit TLS, AUTH.

SMTP has no idempotency key, so the sender tells apart the failures that leave nothing at the server
(connect, TLS, AUTH, a 4xx/5xx reply before the message is handed over) from the one that may have
left a copy (the connection lost while the server was taking the message). The latter is reported as
in doubt and never re-sent by the system. A Message-ID derived from the dedupe key lets an operator find
the message in the relay's log and a mail client recognise a duplicate.
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

import aiosmtplib

from activities.notifications import DeliveryInDoubt, Message, PermanentFailure, TransientFailure
from workflows.policy import Channel


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    from_address: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool | None = None
    """True: required; False: never; None: upgrade when the server offers it."""
    implicit_tls: bool = False
    reply_to: str | None = None
    timeout: float = 15.0
    ca_file: str | None = None


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "abh.invalid"


def message_id(key: str, domain: str) -> str:
    """Stable per outbox row: a re-delivery would carry the same id. Hashed, since the key has colons."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def compose(message: Message, settings: SmtpSettings) -> EmailMessage:
    """The e-mail for one outbox row; a case's messages share a thread through `References`."""
    domain = _domain(settings.from_address)
    mail = EmailMessage()
    mail["From"] = settings.from_address
    mail["To"] = message.recipient
    mail["Subject"] = message.subject
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(message.dedupe_key, domain)
    if message.workflow_id:
        mail["References"] = message_id(message.workflow_id, domain)
    if settings.reply_to:
        mail["Reply-To"] = settings.reply_to
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-ABH-Dedupe-Key"] = message.dedupe_key
    mail.set_content(message.body)
    if message.html:
        mail.add_alternative(message.html, subtype="html")
    return mail


def _refused(err: aiosmtplib.SMTPResponseException) -> Exception:
    """A reply code decides: 5xx is the server's final word, 4xx asks us to come back."""
    detail = f"SMTP {err.code}: {err.message}"
    return PermanentFailure(detail) if 500 <= err.code < 600 else TransientFailure(detail)


class SmtpSender:
    """One connection per message: e-mail volume is low and a fresh session has no stale state."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def replay_safe(self, channel: Channel) -> bool:
        """A second copy would reach the inbox: SMTP rows in doubt are not re-sent."""
        return False

    async def __call__(self, message: Message) -> str:
        s = self.settings
        mail = compose(message, s)
        client = aiosmtplib.SMTP(
            hostname=s.host,
            port=s.port,
            username=s.username,
            password=s.password,
            use_tls=s.implicit_tls,
            start_tls=s.starttls,
            timeout=s.timeout,
            cert_bundle=s.ca_file,
        )
        try:
            try:
                await client.connect()
                await client.mail(parseaddr(s.from_address)[1])
                await client.rcpt(message.recipient)
            except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPHeloError) as err:
                # Our credentials or relay are wrong, not the message: retry until the setup is fixed.
                raise TransientFailure(f"SMTP {err.code}: {err.message}") from err
            except aiosmtplib.SMTPResponseException as err:
                raise _refused(err) from err
            except (aiosmtplib.SMTPException, OSError) as err:
                raise TransientFailure(f"{type(err).__name__}: {err}") from err
            except UnicodeError as err:
                raise PermanentFailure(f"address not deliverable without SMTPUTF8: {err}") from err
            try:
                await client.data(mail.as_bytes())
            except aiosmtplib.SMTPResponseException as err:
                raise _refused(err) from err
            except (aiosmtplib.SMTPException, OSError) as err:
                raise DeliveryInDoubt(f"connection lost while sending the message: {err}") from err
            with suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        finally:
            client.close()
        return str(mail["Message-ID"])
