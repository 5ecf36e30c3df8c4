"""The `email` channel over SMTP: plain text and HTML alternatives, STARTTLS or implicit TLS, AUTH.

SMTP has no idempotency key, so the sender tells apart the failures that leave nothing at the server
(connect, TLS, AUTH, a 4xx/5xx reply before the message is handed over) from the one that may have
left a copy (the connection lost while the server was taking the message). The latter is reported as
in doubt and never re-sent by the system. A Message-ID derived from the dedupe key lets an operator find
the message in the relay's log and a mail client recognise a duplicate.

An internationalised domain travels as IDNA A-labels (xn--), in RCPT TO and in the To header alike, so
any server takes it; a mailbox name that is not ASCII needs SMTPUTF8, and a server that does not offer it
refuses the message for good.

What reaches the server comes from user data, so every header is put on one line (a line break in a
subject would otherwise fail the message or inject a header) with no RFC 2047 encoded word in it (the
email package would decode one, line breaks included), the bytes are checked to hold exactly the headers
set, and the body is made encodable; a message that still cannot be composed is a permanent failure,
since no retry changes its data.
"""

from __future__ import annotations

import hashlib
import re
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import formatdate, parseaddr

import aiosmtplib
import idna

from activities.notifications import (
    CredentialsRefused,
    DeliveryInDoubt,
    Message,
    PermanentFailure,
    TransientFailure,
)
from workflows.policy import Channel
from workflows.safe_text import mail_header, one_line, shown, storable

# RFC 5322 recommends lines under 78 characters; a longer subject is folded, but nobody reads past this.
SUBJECT_LIMIT = 250
# Errors the email package raises for data it cannot represent; its address parser also raises
# IndexError and AttributeError on some malformed addresses ("ops@", ":;<>@").
_COMPOSE_ERRORS = (ValueError, TypeError, LookupError, AttributeError)
# Replies meaning our login is missing, wrong or refused (RFC 4954), whatever the command they answer.
_AUTH_CODES = frozenset({530, 534, 535, 538})


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


# Lines up to SMTP's own limit, so a long dedupe key stays on one line and reads the same in a relay log.
UNFOLDED = SMTP_POLICY.clone(max_line_length=998)


def _domain(address: str) -> str:
    return parseaddr(address)[1].rpartition("@")[2] or "abh.invalid"


def message_id(key: str, domain: str) -> str:
    """Stable per outbox row: a re-delivery would carry the same id. Hashed, since the key has colons."""
    return f"<{hashlib.sha256(key.encode()).hexdigest()[:32]}@{domain}>"


def compose(message: Message, settings: SmtpSettings) -> EmailMessage:
    """The e-mail for one outbox row; a case's messages share a thread through `References`."""
    domain = _domain(settings.from_address)
    mail = EmailMessage(policy=UNFOLDED)
    mail["From"] = one_line(settings.from_address)
    mail["To"] = deliverable(message.recipient)
    mail["Subject"] = mail_header(message.subject, SUBJECT_LIMIT)
    mail["Date"] = formatdate(usegmt=True)
    mail["Message-ID"] = message_id(message.dedupe_key, domain)
    if message.workflow_id:
        mail["References"] = message_id(message.workflow_id, domain)
    if settings.reply_to:
        mail["Reply-To"] = one_line(settings.reply_to)
    mail["Auto-Submitted"] = "auto-generated"
    mail["X-ABH-Dedupe-Key"] = mail_header(message.dedupe_key)
    mail.set_content(storable(message.body))
    if message.html:
        mail.add_alternative(storable(message.html), subtype="html")
    return mail


# One addr-spec: no display name, no spaces or controls, one @ with something on each side.
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\\\"]+@[^\s@<>()\[\],;:\\\"]+")


def deliverable(recipient: str) -> str:
    """The recipient as an address to hand to SMTP, its domain in IDNA A-labels; free text (an
    assignee's name, a pasted header) is refused for good rather than parsed into some other address,
    and so is an address holding `=?`, which the email package would decode as an encoded word in the
    To header."""
    if not _ADDRESS.fullmatch(recipient):
        raise PermanentFailure(f"recipient {shown(recipient)!r} is not an e-mail address")
    if "=?" in recipient:
        raise PermanentFailure(f"recipient {shown(recipient)!r} holds an RFC 2047 encoded word")
    local, _, domain = recipient.partition("@")
    if domain.isascii():
        return recipient
    try:
        return f"{local}@{idna.encode(domain, uts46=True).decode('ascii')}"
    except UnicodeError as err:
        raise PermanentFailure(f"recipient {shown(recipient)!r} has no valid IDNA domain: {err}") from err


def needs_smtputf8(address: str) -> bool:
    """A mailbox name (the domain is ASCII by then) that only a server offering SMTPUTF8 takes."""
    return not address.isascii()


def check_head(data: bytes, names: list[str]) -> None:
    """The message's head holds exactly the headers `names`, each starting a line of its own (a folded
    one goes on with whitespace): the last word on header injection, whatever the email package did."""
    head = data.partition(b"\r\n\r\n")[0]
    lines = head.split(b"\r\n")
    found = [line.partition(b":")[0].lower() for line in lines if not line[:1].isspace()]
    stray = any(b"\r" in line or b"\n" in line for line in lines)
    if stray or sorted(found) != sorted(name.lower().encode() for name in names):
        raise PermanentFailure("the composed e-mail's headers are not the ones set (header injection?)")


def encoded(message: Message, settings: SmtpSettings) -> tuple[str, bytes]:
    """The Message-ID and the bytes to hand over; data no e-mail can carry is a PermanentFailure.
    A mailbox name that is not ASCII is written as UTF-8 (RFC 6532), for a server offering SMTPUTF8."""
    utf8 = needs_smtputf8(deliverable(message.recipient))
    try:
        mail = compose(message, settings)
        data = mail.as_bytes(policy=UNFOLDED.clone(utf8=utf8))
    except _COMPOSE_ERRORS as err:
        raise PermanentFailure(f"cannot compose the e-mail: {type(err).__name__}: {err}") from err
    check_head(data, mail.keys())
    return str(mail["Message-ID"]), data


def _refused(err: aiosmtplib.SMTPResponseException, host: str) -> Exception:
    """A reply code decides: a login refused or required waits for an operator, any other 5xx is the
    server's final word, and 4xx asks us to come back."""
    reply = one_line(err.message, 500)
    if isinstance(err, aiosmtplib.SMTPAuthenticationError) or err.code in _AUTH_CODES:
        return CredentialsRefused(f"SMTP {err.code} from {host}: credentials refused or missing: {reply}")
    detail = f"SMTP {err.code}: {reply}"
    return PermanentFailure(detail) if 500 <= err.code < 600 else TransientFailure(detail)


async def _offers_smtputf8(client: aiosmtplib.SMTP) -> bool:
    if client.is_ehlo_or_helo_needed:
        await client.ehlo()
    return client.supports_extension("smtputf8")


class SmtpSender:
    """One connection per message: e-mail volume is low and a fresh session has no stale state."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings

    def replay_safe(self, channel: Channel) -> bool:
        """A second copy would reach the inbox: SMTP rows in doubt are not re-sent."""
        return False

    async def __call__(self, message: Message) -> str:
        s = self.settings
        mail_id, data = encoded(message, s)
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
        recipient = deliverable(message.recipient)
        utf8 = needs_smtputf8(recipient)
        encoding = "utf-8" if utf8 else "ascii"
        try:
            try:
                await client.connect()
                if utf8 and not await _offers_smtputf8(client):
                    raise PermanentFailure(
                        f"the recipient's mailbox name is not ASCII and {s.host} does not offer SMTPUTF8"
                    )
                options = ["SMTPUTF8"] if utf8 else []
                await client.mail(parseaddr(s.from_address)[1], options=options, encoding=encoding)
                await client.rcpt(recipient, encoding=encoding)
            except aiosmtplib.SMTPHeloError as err:
                # Our relay is wrong, not the message: retry until the setup is fixed.
                raise TransientFailure(f"SMTP {err.code}: {one_line(err.message, 500)}") from err
            except aiosmtplib.SMTPResponseException as err:
                raise _refused(err, s.host) from err
            except (aiosmtplib.SMTPException, OSError) as err:
                raise TransientFailure(f"{type(err).__name__}: {err}") from err
            except UnicodeError as err:
                raise PermanentFailure(f"address not deliverable without SMTPUTF8: {err}") from err
            except ValueError as err:
                raise PermanentFailure(f"address not usable in SMTP: {err}") from err
            try:
                await client.data(data)
            except aiosmtplib.SMTPResponseException as err:
                raise _refused(err, s.host) from err
            except (aiosmtplib.SMTPException, OSError) as err:
                raise DeliveryInDoubt(f"connection lost while sending the message: {err}") from err
            with suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        finally:
            client.close()
        return mail_id
