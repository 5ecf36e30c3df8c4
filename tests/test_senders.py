"""Real senders against real servers on loopback: an SMTP server (aiosmtpd) and an HTTP receiver that
behaves like a provider honouring idempotency keys. The outbox rows tell what happened to each message."""

from __future__ import annotations

import asyncio
import email
import email.policy
import hashlib
import hmac
import json
import ssl
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field, replace
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
import structlog
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP as SMTPServer
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notifications import (
    CredentialsRefused,
    Message,
    Notification,
    Notifier,
    PermanentFailure,
    Sender,
    TransientFailure,
    write_outbox,
)
from activities.senders import Senders, SmtpSender, SmtpSettings
from activities.senders.email import check_head
from stack.sender_config import SenderSettings, senders_from_env
from stack.settings import PAGERDUTY_EVENTS_URL
from tests.cases import free_port
from tests.test_templates import EXTRAS, case_facts
from workflows.policy import Channel, Role

SECRET = "s3cret-for-tests"


# An HTTP provider on loopback.


@dataclass
class Hit:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str:
        return self.headers.get("idempotency-key", "")


@dataclass
class Receiver:
    """Records every request; answers from a per-path script (default 200) and, like a real provider,
    accepts each idempotency key once: a repeat gets the first answer back without a second delivery.
    `hold_at` makes the n-th new delivery wait for `release`, so a test can kill its sender mid-request."""

    port: int = 0
    hits: list[Hit] = field(default_factory=list)
    delivered: dict[str, Hit] = field(default_factory=dict)
    scripts: dict[str, list[tuple[int, dict[str, str], float, bytes | None]]] = field(default_factory=dict)
    hold_at: int | None = None
    refusing: dict[str, int] = field(default_factory=dict)
    """Paths answered with this status, delivering nothing, until removed (a provider down for a while)."""
    held: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(
        self,
        path: str,
        status: int,
        headers: dict[str, str] | None = None,
        delay: float = 0,
        body: bytes | None = None,
    ) -> None:
        """The next request to `path` gets this answer; `body` replaces the usual JSON with the id."""
        self.scripts.setdefault(path, []).append((status, headers or {}, delay, body))

    def hits_for(self, key: str) -> list[Hit]:
        with self.lock:
            return [h for h in self.hits if h.key == key]

    def answer(self, hit: Hit) -> tuple[int, dict[str, str], float, bytes | None, bool]:
        """Status, headers, delay, body (None: the usual), and whether this request must wait for
        `release`."""
        with self.lock:
            self.hits.append(hit)
            if hit.path in self.refusing:
                return self.refusing[hit.path], {}, 0, None, False
            queue = self.scripts.get(hit.path)
            if queue:
                return (*queue.pop(0), False)
            if hit.key in self.delivered:
                return 200, {"X-Replayed": "true"}, 0, None, False
            self.delivered[hit.key] = hit
            return 202, {}, 0, None, len(self.delivered) == self.hold_at


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            hit = Hit(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            status, headers, delay, scripted, hold = receiver.answer(hit)
            if hold:
                receiver.held.set()
                receiver.release.wait(timeout=60)
            time.sleep(delay)
            reply = (
                scripted
                if scripted is not None
                else json.dumps({"id": f"r-{len(receiver.hits)}", "dedup_key": hit.key}).encode()
            )
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)
            except OSError:
                pass  # the sender is gone (killed, or timed out): nothing to answer

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def loopback_provider() -> Iterator[Receiver]:
    """A `Receiver` serving on 127.0.0.1 from a thread, for as long as the block runs."""
    rec = Receiver()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(rec))
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.release.set()
        server.shutdown()
        server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_provider() as rec:
        yield rec


# An SMTP server on loopback.


class Mailbox:
    """aiosmtpd handler: keeps what it accepts; refuses chosen recipients; can drop the line mid-DATA."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.rcpts: list[str] = []
        self.refuse: dict[str, str] = {}
        self.drop_data = False

    async def handle_RCPT(
        self, server: SMTPServer, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.rcpts.append(address)
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTPServer, session: Session, envelope: Envelope) -> str:
        self.envelopes.append(envelope)
        if self.drop_data:
            assert server.transport is not None
            server.transport.close()
        return "250 2.0.0 queued"

    def messages(self) -> list[EmailMessage]:
        parsed = []
        for env in self.envelopes:
            content = env.original_content or b""
            mail = email.message_from_bytes(content, policy=email.policy.default)
            assert isinstance(mail, EmailMessage)
            parsed.append(mail)
        return parsed


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield box, port
    controller.stop()


# Shared vocabulary.


def notification(
    workflow_id: str,
    seq: int,
    channel: Channel = "email",
    *,
    kind: str = "case_opened",
    role: Role = Role.CUSTOMER,
    recipient: str = "ops@acme.example",
    priority: str = "P2",
) -> Notification:
    return Notification(
        dedupe_key=f"{workflow_id}:{seq}:{kind}:{role.value}:{channel}",
        workflow_id=workflow_id,
        seq=seq,
        kind=kind,
        channel=channel,
        role=role,
        recipient=recipient,
        facts=case_facts(priority) | EXTRAS.get(kind, {}),
    )


async def row(pool: asyncpg.Pool, key: str) -> dict[str, Any]:
    found = await pool.fetchrow("SELECT * FROM notifications WHERE dedupe_key = $1", key)
    assert found is not None
    result = dict(found)
    result["attempt_log"] = json.loads(result["attempt_log"])
    return result


def outcomes(r: dict[str, Any]) -> list[str]:
    return [entry["outcome"] for entry in r["attempt_log"]]


def webhook_env(receiver: Receiver) -> dict[str, str]:
    """Every channel pointed at `receiver`; it drops a repeated key, so chat is declared idempotent too."""
    return {
        "ABH_CHAT_IDEMPOTENT": "true",
        "ABH_CHAT_WEBHOOK_URL": receiver.url("/chat"),
        "ABH_PAGE_WEBHOOK_URL": receiver.url("/page"),
        "ABH_PAGE_ROUTING_KEY": "R0UTINGKEY",
        "ABH_CALL_WEBHOOK_URL": receiver.url("/call"),
        "ABH_WEBHOOK_SECRET": SECRET,
        "ABH_WEBHOOK_TIMEOUT": "2",
    }


@pytest_asyncio.fixture
async def hooks(receiver: Receiver) -> AsyncIterator[Senders]:
    senders = senders_from_env(webhook_env(receiver))
    yield senders
    await senders.aclose()


def smtp_sender(port: int) -> Sender:
    return SmtpSender(
        SmtpSettings(host="127.0.0.1", port=port, from_address="ABH Support <support@abh.example>", timeout=5)
    )


async def run(notifier: Notifier, batch: list[Notification]) -> int:
    return await ActivityEnvironment().run(notifier.send_notifications, batch)


async def left_sending_by_a_dead_worker(pool: asyncpg.Pool, key: str) -> None:
    """What a worker killed between claiming the row and settling it leaves behind, once its claim is
    older than any live deliverer's."""
    await pool.execute(
        "UPDATE notifications SET state = 'sending', claimed_by = 'act-1#2/dead',"
        " claimed_at = now() - interval '1 hour' WHERE dedupe_key = $1",
        key,
    )


def message(channel: Channel, **fields: Any) -> Message:
    """A message straight from an outbox row, as a row written by any version of the engine may hold."""
    values: dict[str, Any] = {
        "dedupe_key": f"case-T-raw:1:case_opened:team:{channel}",
        "channel": channel,
        "recipient": "ops@acme.example",
        "subject": "Subject",
        "body": "Body\n",
        "kind": "case_opened",
        "workflow_id": "case-T-raw",
        "role": "team",
    }
    return Message(**(values | fields))


# E-mail.


async def test_the_right_email_reaches_the_right_recipient(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    wf = f"case-{ticket_id}"
    n = notification(wf, 1, recipient="cto@acme.example")
    assert await run(Notifier(pool, smtp_sender(port)), [n]) == 1
    (envelope,) = box.envelopes
    assert envelope.mail_from == "support@abh.example"
    assert envelope.rcpt_tos == ["cto@acme.example"]
    (mail,) = box.messages()
    assert mail["Subject"] == "[T-1] We are on it: Checkout API down"
    assert mail["To"] == "cto@acme.example"
    assert mail.get_content_type() == "multipart/alternative"
    text = mail.get_body(("plain",))
    html = mail.get_body(("html",))
    assert text is not None and html is not None
    assert (
        'Your P2 case "Checkout API down" is open and assigned to ana@support.example.' in text.get_content()
    )
    assert "<!DOCTYPE html>" in html.get_content() and "Acme Corp" in html.get_content()
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"], r["provider_id"]) == ("sent", 1, mail["Message-ID"])
    assert outcomes(r) == ["sent"]


def _self_signed(tmp: Path) -> tuple[Path, Path]:
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


async def test_email_over_starttls_with_auth(pool: asyncpg.Pool, ticket_id: str, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    logins: list[bytes] = []

    def authenticate(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"abh", b"pw")
        if ok:
            logins.append(data.login)
        return AuthResult(success=ok)

    box, port = Mailbox(), free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticate,
    )
    controller.start()
    env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(port),
        "SMTP_FROM": "support@abh.example",
        "SMTP_USERNAME": "abh",
        "SMTP_PASSWORD": "pw",
        "SMTP_CA_FILE": str(cert),
    }
    try:
        n = notification(f"case-{ticket_id}", 1)
        assert await run(Notifier(pool, senders_from_env(env)), [n]) == 1
    finally:
        controller.stop()
    assert logins == [b"abh"]
    assert [m["To"] for m in box.messages()] == ["ops@acme.example"]


async def test_a_refused_recipient_is_failed_and_never_retried(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    box.refuse["gone@acme.example"] = "550 5.1.1 no such user"
    wf = f"case-{ticket_id}"
    batch = [notification(wf, 1, recipient="gone@acme.example"), notification(wf, 2)]
    notifier = Notifier(pool, smtp_sender(port))
    assert await run(notifier, batch) == 1
    assert await run(notifier, batch) == 0
    assert box.rcpts == ["gone@acme.example", "ops@acme.example"]
    r = await row(pool, batch[0].dedupe_key)
    assert (r["state"], r["attempts"]) == ("failed", 1)
    assert r["last_error"] == "PermanentFailure: SMTP 550: 5.1.1 no such user"


async def test_a_greylisting_reply_is_retried(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    box.refuse["ops@acme.example"] = "451 4.7.1 try again later"
    n = notification(f"case-{ticket_id}", 1)
    notifier = Notifier(pool, smtp_sender(port))
    with pytest.raises(TransientFailure, match="SMTP 451"):
        await run(notifier, [n])
    assert (await row(pool, n.dedupe_key))["state"] == "pending"
    del box.refuse["ops@acme.example"]
    assert await run(notifier, [n]) == 1
    assert len(box.envelopes) == 1


async def test_a_connection_lost_during_data_is_in_doubt_and_never_resent(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    box.drop_data = True
    n = notification(f"case-{ticket_id}", 1)
    notifier = Notifier(pool, smtp_sender(port))
    assert await run(notifier, [n]) == 0
    box.drop_data = False
    assert await run(notifier, [n]) == 0
    assert len(box.envelopes) == 1
    r = await row(pool, n.dedupe_key)
    assert r["state"] == "unknown" and r["last_error"].startswith("DeliveryInDoubt: connection lost")
    assert outcomes(r) == ["in_doubt"]


async def test_an_email_left_sending_by_a_dead_worker_is_left_for_an_operator(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    box.refuse["ops@acme.example"] = "421 4.3.2 shutting down"
    n = notification(f"case-{ticket_id}", 1)
    notifier = Notifier(pool, smtp_sender(port))
    with pytest.raises(TransientFailure):
        await run(notifier, [n])
    await left_sending_by_a_dead_worker(pool, n.dedupe_key)
    del box.refuse["ops@acme.example"]
    assert await run(notifier, [n]) == 0
    assert box.envelopes == []
    r = await row(pool, n.dedupe_key)
    assert r["state"] == "unknown" and "act-1#2/dead" in r["last_error"]
    assert outcomes(r) == ["transient", "abandoned"]


async def test_a_subject_with_line_breaks_arrives_on_one_line_with_the_full_body(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    subject = "Checkout\nAPI\r\ndown\u2028again\u2029\x0bnow"
    body = "first line\nsecond line\nthird line\n"
    sent = message("email", subject=subject, body=body, html="<p>one\nline\u2028two</p>\n")
    await smtp_sender(port)(sent)
    (envelope,) = box.envelopes
    assert envelope.original_content is not None
    head = envelope.original_content.split(b"\r\n\r\n", 1)[0].decode()
    (subject_line,) = [line for line in head.split("\r\n") if line.startswith("Subject:")]
    assert subject_line == "Subject: Checkout API down again now"
    (mail,) = box.messages()
    text = mail.get_body(("plain",))
    assert text is not None and text.get_content().splitlines() == body.splitlines()


EVIL_SUBJECT = (
    "=?utf-8?q?Outage=0D=0AReply-To:_attacker@evil.example=0D=0A=0D=0A"
    "Please_reset_your_password_at_http://evil.example?="
)


async def test_an_encoded_word_in_a_subject_arrives_as_text_and_injects_no_header(
    mailbox: tuple[Mailbox, int],
) -> None:
    """No CR or LF in the text, yet the email package decodes the encoded word's =0D=0A, and Python
    before 3.11.10 writes it out: a Reply-To and a body of the sender's choosing."""
    box, port = mailbox
    await smtp_sender(port)(message("email", subject=f"[T-1] We are on it: {EVIL_SUBJECT}"))
    (envelope,) = box.envelopes
    assert envelope.original_content is not None
    head = envelope.original_content.split(b"\r\n\r\n", 1)[0].decode()
    assert [line.split(":", 1)[0] for line in head.split("\r\n")] == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "References",
        "Auto-Submitted",
        "X-ABH-Dedupe-Key",
        "Content-Type",
        "Content-Transfer-Encoding",
        "MIME-Version",
    ]
    (mail,) = box.messages()
    assert str(mail["Subject"]).replace("\u2060", "") == f"[T-1] We are on it: {EVIL_SUBJECT}"
    text = mail.get_body(("plain",))
    assert text is not None and text.get_content().splitlines() == ["Body"]


async def test_an_address_the_to_header_would_decode_is_refused_for_good(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    for address in ("ops@=?utf-8?q?x=0D=0ABcc=3A_spy?=.example", "=?utf-8?q?x?=@acme.example"):
        with pytest.raises(PermanentFailure, match="encoded word"):
            await smtp_sender(port)(message("email", recipient=address))
    assert box.rcpts == []


def test_a_head_with_a_header_it_was_not_given_is_refused() -> None:
    given = ["From", "To", "Subject", "Date"]
    check_head(b"From: a@b\r\nTo: c@d\r\nSubject: s\r\n =?utf-8?q?folded?=\r\nDate: now\r\n\r\nbody", given)
    for head in (
        b"From: a@b\r\nTo: c@d\r\nSubject: s\r\nBcc: spy@e\r\nDate: now\r\n\r\nbody",
        b"From: a@b\r\nTo: c@d\r\nSubject: s\r\n\r\nInjected body\r\nDate: now\r\n\r\nbody",
        b"From: a@b\r\nTo: c@d\r\nSubject: s\nBcc: spy@e\r\nDate: now\r\n\r\nbody",
        b"From: a@b\r\nTo: c@d\r\nTo: spy@e\r\nSubject: s\r\n\r\nbody",
    ):
        with pytest.raises(PermanentFailure, match="not the ones set"):
            check_head(head, given)


async def test_a_lone_surrogate_in_the_body_arrives_as_a_replacement_character(
    mailbox: tuple[Mailbox, int],
) -> None:
    box, port = mailbox
    await smtp_sender(port)(message("email", body="broken \ud83d client\x00\n", html="<p>\udc00</p>\n"))
    (mail,) = box.messages()
    text, html = mail.get_body(("plain",)), mail.get_body(("html",))
    assert text is not None and text.get_content().rstrip() == "broken \ufffd client\ufffd"
    assert html is not None and html.get_content().rstrip() == "<p>\ufffd</p>"


async def test_a_subject_is_clipped_to_a_readable_length(mailbox: tuple[Mailbox, int]) -> None:
    box, port = mailbox
    await smtp_sender(port)(message("email", subject="x" * 5000))
    (mail,) = box.messages()
    assert mail["Subject"] == "x" * 249 + "…"


async def test_an_address_no_email_can_carry_fails_for_good_before_connecting(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    wf = f"case-{ticket_id}"
    batch = [notification(wf, 1, recipient="ops@"), notification(wf, 2)]
    notifier = Notifier(pool, smtp_sender(port))
    assert await run(notifier, batch) == 1
    assert await run(notifier, batch) == 0
    assert box.rcpts == ["ops@acme.example"]
    r = await row(pool, batch[0].dedupe_key)
    assert (r["state"], r["attempts"]) == ("failed", 1)
    assert r["last_error"] == "PermanentFailure: recipient 'ops@' is not an e-mail address"
    for free_text in (":;<>@", "Ana\r\nBcc: evil@x.example", "on-call team", "Ana <ana@x.example>"):
        with pytest.raises(PermanentFailure, match="is not an e-mail address"):
            await smtp_sender(port)(message("email", recipient=free_text))
    assert box.rcpts == ["ops@acme.example"]


async def test_an_internationalised_domain_travels_as_idna_in_the_envelope_and_the_to_header(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    """The wire model takes info@bücher.de; SMTP without SMTPUTF8 carries only ASCII."""
    box, port = mailbox
    n = notification(f"case-{ticket_id}", 1, recipient="info@bücher.de")
    assert await run(Notifier(pool, smtp_sender(port)), [n]) == 1
    (envelope,) = box.envelopes
    assert envelope.rcpt_tos == ["info@xn--bcher-kva.de"]
    assert "SMTPUTF8" not in envelope.mail_options
    (mail,) = box.messages()
    assert mail["To"] == "info@xn--bcher-kva.de"
    assert (await row(pool, n.dedupe_key))["state"] == "sent"
    with pytest.raises(PermanentFailure, match="has no valid IDNA domain: Label too long"):
        await smtp_sender(port)(message("email", recipient="info@" + "ü" * 70 + ".de"))
    assert len(box.rcpts) == 1


async def test_a_mailbox_name_that_is_not_ascii_goes_by_smtputf8_or_fails_for_good(
    pool: asyncpg.Pool, ticket_id: str, mailbox: tuple[Mailbox, int]
) -> None:
    wf = f"case-{ticket_id}"
    box, port = mailbox
    sent = notification(wf, 1, recipient="jörg@bücher.de")
    assert await run(Notifier(pool, smtp_sender(port)), [sent]) == 1
    (envelope,) = box.envelopes
    assert envelope.rcpt_tos == ["jörg@xn--bcher-kva.de"]
    assert "SMTPUTF8" in envelope.mail_options
    (mail,) = box.messages()
    assert mail["To"] == "jörg@xn--bcher-kva.de"
    assert mail["Subject"] == "[T-1] We are on it: Checkout API down"

    ascii_box, ascii_port = Mailbox(), free_port()
    controller = Controller(ascii_box, hostname="127.0.0.1", port=ascii_port, enable_SMTPUTF8=False)
    controller.start()
    try:
        refused = notification(wf, 2, recipient="jörg@bücher.de")
        assert await run(Notifier(pool, smtp_sender(ascii_port)), [refused]) == 0
    finally:
        controller.stop()
    assert ascii_box.rcpts == []
    r = await row(pool, refused.dedupe_key)
    assert (r["state"], outcomes(r)) == ("failed", ["permanent"])
    assert r["last_error"] == (
        "PermanentFailure: the recipient's mailbox name is not ASCII and 127.0.0.1 does not offer SMTPUTF8"
    )


@contextmanager
def smtp_with_login() -> Iterator[tuple[Mailbox, int]]:
    """A server that takes mail only after AUTH as abh/pw (over plain text: loopback, no TLS to set up)."""

    def authenticate(
        server: SMTPServer, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (b"abh", b"pw")
        return AuthResult(success=ok, handled=False)  # unhandled: the server itself answers 535

    box, port = Mailbox(), free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        auth_required=True,
        auth_require_tls=False,
        authenticator=authenticate,
    )
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest.mark.parametrize(
    ("username", "password", "code"), [("abh", "wrong", "535"), (None, None, "530")], ids=["wrong", "missing"]
)
async def test_a_refused_or_missing_smtp_login_is_credentials_refused_and_retried(
    pool: asyncpg.Pool, ticket_id: str, username: str | None, password: str | None, code: str
) -> None:
    n = notification(f"case-{ticket_id}", 1)
    with smtp_with_login() as (box, port):
        settings = SmtpSettings(
            host="127.0.0.1", port=port, from_address="support@abh.example", starttls=False, timeout=5
        )
        refused = SmtpSender(replace(settings, username=username, password=password))
        with pytest.raises(CredentialsRefused) as raised:
            await run(Notifier(pool, refused), [n])
        assert str(raised.value).startswith(f"SMTP {code} from 127.0.0.1: credentials refused")
        r = await row(pool, n.dedupe_key)
        assert (r["state"], outcomes(r)) == ("pending", ["transient"])
        assert r["last_error"].startswith(f"CredentialsRefused: SMTP {code}")
        fixed = SmtpSender(replace(settings, username="abh", password="pw"))
        assert await run(Notifier(pool, fixed), [n]) == 1
    assert len(box.envelopes) == 1


# Webhooks.


def signature_ok(hit: Hit) -> bool:
    """Checked here from the documented rule, not with the sender's own helper."""
    timestamp = hit.headers["x-abh-timestamp"]
    expected = hmac.new(SECRET.encode(), timestamp.encode() + b"." + hit.body, hashlib.sha256).hexdigest()
    fresh = abs(time.time() - int(timestamp)) < 60
    return fresh and hit.headers["x-abh-signature"] == f"sha256={expected}"


async def test_chat_page_and_call_payloads_arrive_signed_with_their_keys(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders
) -> None:
    wf = f"case-{ticket_id}"
    chat = notification(wf, 1, "chat", kind="escalation", role=Role.TEAM, recipient="#support", priority="P1")
    page = notification(
        wf, 1, "page", kind="escalation", role=Role.TECH_LEAD, recipient="tl@x", priority="P1"
    )
    call = notification(wf, 2, "call", kind="customer_call", recipient="+1 555 0100", priority="P1")
    assert await run(Notifier(pool, hooks), [chat, page, call]) == 3
    by_path = {h.path: h for h in receiver.hits}
    assert sorted(by_path) == ["/call", "/chat", "/page"]
    for hit, n in ((by_path["/chat"], chat), (by_path["/page"], page), (by_path["/call"], call)):
        assert hit.key == n.dedupe_key
        assert hit.headers["content-type"] == "application/json"
        assert signature_ok(hit)

    body = by_path["/chat"].json
    assert body["text"].startswith("*[T-1] Escalated to tech_lead: Checkout API down*\n")
    assert body["channel"] == "#support"
    assert [b["type"] for b in body["blocks"]] == ["header", "section", "context"]

    body = by_path["/page"].json
    assert {k: body[k] for k in ("routing_key", "event_action", "dedup_key")} == {
        "routing_key": "R0UTINGKEY",
        "event_action": "trigger",
        "dedup_key": page.dedupe_key,
    }
    payload = body["payload"]
    assert (payload["summary"], payload["source"], payload["severity"]) == (
        "[T-1] Escalated to tech_lead: Checkout API down",
        "abh",
        "critical",
    )
    assert payload["custom_details"]["ticket_id"] == "T-1"
    assert payload["custom_details"]["recipient"] == "tl@x"

    body = by_path["/call"].json
    assert body["to"] == "+1 555 0100"
    assert body["idempotency_key"] == call.dedupe_key
    assert body["case"] == {"ticket_id": "T-1", "workflow_id": wf, "priority": "P1"}
    assert "call +1 555 0100" in body["message"]

    r = await row(pool, page.dedupe_key)
    assert (r["state"], r["provider_id"]) == ("sent", "r-2")


async def test_a_500_is_retried_and_then_delivered_once(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders
) -> None:
    receiver.script("/chat", 500)
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, hooks)
    with pytest.raises(TransientFailure, match="HTTP 500"):
        await run(notifier, [n])
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"]) == ("pending", 1)
    assert await run(notifier, [n]) == 1
    assert await run(notifier, [n]) == 0
    assert len(receiver.hits_for(n.dedupe_key)) == 2 and n.dedupe_key in receiver.delivered
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"]) == ("sent", 2)
    assert outcomes(r) == ["transient", "sent"]


async def test_a_400_is_recorded_as_failed_and_not_retried(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders
) -> None:
    receiver.script("/page", 400)
    wf = f"case-{ticket_id}"
    bad = notification(wf, 1, "page", kind="escalation", role=Role.TECH_LEAD, recipient="tl@x")
    good = notification(wf, 1, "chat", kind="escalation", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, hooks)
    assert await run(notifier, [bad, good]) == 1
    assert await run(notifier, [bad, good]) == 0
    assert len(receiver.hits_for(bad.dedupe_key)) == 1
    r = await row(pool, bad.dedupe_key)
    assert (r["state"], r["attempts"]) == ("failed", 1)
    assert r["last_error"].startswith("PermanentFailure: HTTP 400")


async def test_an_activity_retried_after_a_successful_send_sends_nothing_more(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders
) -> None:
    batch = [notification(f"case-{ticket_id}", seq, "call", recipient="+1 555 0100") for seq in (1, 2)]
    notifier = Notifier(pool, hooks)
    assert await run(notifier, batch) == 2
    assert await run(notifier, batch) == 0
    assert await run(notifier, batch) == 0
    assert len(receiver.hits) == 2


async def test_a_429_asks_temporal_to_wait_as_long_as_the_provider_says(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders
) -> None:
    receiver.script("/chat", 429, {"Retry-After": "7"})
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    with pytest.raises(ApplicationError) as raised:
        await run(Notifier(pool, hooks), [n])
    assert raised.value.next_retry_delay == timedelta(seconds=7)
    assert not raised.value.non_retryable
    assert (await row(pool, n.dedupe_key))["state"] == "pending"


@pytest.mark.parametrize(("value", "wait"), [("\u00b2", None), ("99999999999999", timedelta(minutes=15))])
async def test_a_retry_after_that_is_no_plain_number_of_seconds_still_means_retry(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders, value: str, wait: timedelta | None
) -> None:
    """A superscript two passes `str.isdigit`; a huge number overflows a timedelta: neither is the
    message's fault."""
    receiver.script("/chat", 503, {"Retry-After": value})
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, hooks)
    with pytest.raises((TransientFailure, ApplicationError)) as raised:
        await run(notifier, [n])
    assert getattr(raised.value, "next_retry_delay", None) == wait
    r = await row(pool, n.dedupe_key)
    assert (r["state"], outcomes(r)) == ("pending", ["transient"])
    assert await run(notifier, [n]) == 1


async def test_a_call_that_timed_out_is_sent_again_under_the_same_idempotency_key(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver
) -> None:
    """Dropping the second copy is the provider's part; ABH's is to send both under one key."""
    env = webhook_env(receiver) | {"ABH_WEBHOOK_TIMEOUT": "0.3"}
    senders = senders_from_env(env)
    receiver.script("/call", 202, delay=1.0)
    n = notification(f"case-{ticket_id}", 1, "call", recipient="+1 555 0100")
    notifier = Notifier(pool, senders)
    try:
        with pytest.raises(TransientFailure, match="timed out"):
            await run(notifier, [n])
        assert await run(notifier, [n]) == 1
    finally:
        await senders.aclose()
    assert [h.key for h in receiver.hits] == [n.dedupe_key, n.dedupe_key]


@pytest.mark.parametrize(
    ("body", "headers", "provider_id"),
    [
        (b'{"id": "abc\\u0000def"}', {}, "abc def"),
        (b'{"id": "\\ud800"}', {}, None),
        (b"[" * 100_000 + b"]" * 100_000, {"X-Request-Id": "req-2"}, "req-2"),
        (b"\xff\xfe not json", {}, None),
        (b'{"id": "' + b"x" * 5000 + b'"}', {}, "x" * 199 + "\u2026"),
    ],
)
async def test_a_2xx_with_an_odd_body_is_sent_once_with_whatever_id_can_be_stored(
    pool: asyncpg.Pool,
    ticket_id: str,
    receiver: Receiver,
    body: bytes,
    headers: dict[str, str],
    provider_id: str | None,
) -> None:
    """The provider took the message: what its answer says cannot make it pending or leave it sending."""
    senders = senders_from_env(webhook_env(receiver) | {"ABH_CHAT_IDEMPOTENT": "false"})
    receiver.script("/chat", 200, headers, body=body)
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, senders)
    try:
        assert await run(notifier, [n]) == 1
        assert await run(notifier, [n]) == 0
    finally:
        await senders.aclose()
    assert len(receiver.hits_for(n.dedupe_key)) == 1
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["provider_id"], outcomes(r)) == ("sent", provider_id, ["sent"])


@asynccontextmanager
async def hanging_up_after_the_request(posts: list[bytes]) -> AsyncIterator[str]:
    """A provider that reads the whole request, keeps it, and closes the line without an answer."""

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        posts.append(await reader.readexactly(length))
        writer.close()

    server = await asyncio.start_server(take, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/chat"
    finally:
        server.close()


async def test_a_chat_request_that_may_have_arrived_is_in_doubt_and_never_posted_again(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver
) -> None:
    """Chat is not replay-safe by default: a timeout or a line lost after the post went out leaves the row
    for an operator, while a connection refused (nothing sent) is still retried."""
    wf = f"case-{ticket_id}"
    slow, hung_up, refused = (
        notification(wf, seq, "chat", role=Role.TEAM, recipient="#support") for seq in (1, 2, 3)
    )
    env = webhook_env(receiver) | {"ABH_WEBHOOK_TIMEOUT": "0.3"}
    del env["ABH_CHAT_IDEMPOTENT"]
    receiver.script("/chat", 202, delay=1.0)
    posts: list[bytes] = []
    async with hanging_up_after_the_request(posts) as hang_up_url:
        senders = [
            senders_from_env(env),
            senders_from_env(env | {"ABH_CHAT_WEBHOOK_URL": hang_up_url}),
            senders_from_env(env | {"ABH_CHAT_WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/chat"}),
        ]
        try:
            for sender, n in zip(senders[:2], (slow, hung_up), strict=True):
                notifier = Notifier(pool, sender)
                assert await run(notifier, [n]) == 0
                assert await run(notifier, [n]) == 0
            with pytest.raises(TransientFailure, match="ConnectError"):
                await run(Notifier(pool, senders[2]), [refused])
        finally:
            for sender in senders:
                await sender.aclose()
    assert len(receiver.hits_for(slow.dedupe_key)) == 1 and len(posts) == 1
    for n, error in ((slow, "timed out after 0.3s: ReadTimeout"), (hung_up, "RemoteProtocolError")):
        r = await row(pool, n.dedupe_key)
        assert (r["state"], r["attempts"], outcomes(r)) == ("unknown", 1, ["in_doubt"])
        assert r["last_error"].startswith("DeliveryInDoubt: the request may have reached the provider: ")
        assert error in r["last_error"]
    r = await row(pool, refused.dedupe_key)
    assert (r["state"], outcomes(r)) == ("pending", ["transient"])


async def test_one_failing_channel_does_not_hold_back_the_others(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders
) -> None:
    receiver.script("/chat", 503)
    wf = f"case-{ticket_id}"
    chat = notification(wf, 1, "chat", kind="escalation", role=Role.TEAM, recipient="#support")
    call = notification(wf, 2, "call", recipient="+1 555 0100")
    notifier = Notifier(pool, hooks)
    with pytest.raises(TransientFailure):
        await run(notifier, [chat, call])
    assert (await row(pool, call.dedupe_key))["state"] == "sent"
    assert await run(notifier, [chat, call]) == 1
    assert [h.path for h in receiver.hits] == ["/chat", "/call", "/chat"]


async def test_a_webhook_row_left_sending_by_a_dead_worker_is_sent_again_with_its_key(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders
) -> None:
    receiver.script("/chat", 502)
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, hooks)
    with pytest.raises(TransientFailure):
        await run(notifier, [n])
    await left_sending_by_a_dead_worker(pool, n.dedupe_key)
    assert await run(notifier, [n]) == 1
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"]) == ("sent", 2)
    assert outcomes(r) == ["transient", "replay", "sent"]
    assert [h.key for h in receiver.hits] == [n.dedupe_key] * 2


async def test_a_chat_row_left_sending_is_left_for_an_operator_by_default(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver
) -> None:
    env = webhook_env(receiver)
    del env["ABH_CHAT_IDEMPOTENT"]
    senders = senders_from_env(env)
    receiver.script("/chat", 502)
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, senders)
    try:
        with pytest.raises(TransientFailure):
            await run(notifier, [n])
        await left_sending_by_a_dead_worker(pool, n.dedupe_key)
        assert await run(notifier, [n]) == 0
    finally:
        await senders.aclose()
    r = await row(pool, n.dedupe_key)
    assert r["state"] == "unknown" and "act-1#2/dead" in r["last_error"]
    assert outcomes(r) == ["transient", "abandoned"]
    assert len(receiver.hits) == 1


@pytest.mark.parametrize("status", [401, 403])
async def test_refused_webhook_credentials_are_retried_and_named(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders, status: int
) -> None:
    receiver.script("/page", status)
    n = notification(f"case-{ticket_id}", 1, "page", kind="escalation", role=Role.TECH_LEAD, recipient="tl@x")
    notifier = Notifier(pool, hooks)
    with pytest.raises(CredentialsRefused) as raised:
        await run(notifier, [n])
    assert str(raised.value).startswith(f"HTTP {status} from 127.0.0.1: the webhook credentials")
    assert "refused" in str(raised.value)
    r = await row(pool, n.dedupe_key)
    assert (r["state"], outcomes(r)) == ("pending", ["transient"])
    assert r["last_error"].startswith(f"CredentialsRefused: HTTP {status} from 127.0.0.1")
    assert await run(notifier, [n]) == 1
    assert len(receiver.hits_for(n.dedupe_key)) == 2
    assert (await row(pool, n.dedupe_key))["state"] == "sent"


@pytest.mark.parametrize("status", [400, 404, 410, 422])
async def test_a_refusal_for_good_is_failed_and_not_retried(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, hooks: Senders, status: int
) -> None:
    receiver.script("/chat", status)
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, hooks)
    assert await run(notifier, [n]) == 0
    assert await run(notifier, [n]) == 0
    assert len(receiver.hits_for(n.dedupe_key)) == 1
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"], outcomes(r)) == ("failed", 1, ["permanent"])
    assert r["last_error"].startswith(f"PermanentFailure: HTTP {status} from 127.0.0.1")


async def test_a_webhook_body_with_lone_surrogates_and_line_breaks_is_sent_once_and_readable(
    receiver: Receiver, hooks: Senders
) -> None:
    broken = {
        "subject": "Checkout\nAPI \ud83d down\r\n<now> & \u2028later",
        "body": "line one\nline <two> & \udc00\x00\n",
        "facts": {"ticket_id": "T-\ud800", "customer_name": "Acme \udfff", "k\ud800": "v"},
    }
    for channel in ("chat", "page", "call"):
        await hooks(message(channel, recipient="#support \ud800", **broken))
    by_path = {h.path: h.json for h in receiver.hits}
    assert sorted(by_path) == ["/call", "/chat", "/page"]
    chat = by_path["/chat"]
    header = chat["blocks"][0]["text"]["text"]
    assert header == "Checkout API down <now> & later"
    assert (
        chat["text"]
        == "*Checkout API down &lt;now&gt; &amp; later*\nline one\nline &lt;two&gt; &amp; \ufffd\ufffd\n"
    )
    assert chat["channel"] == "#support \ufffd"
    assert chat["blocks"][2]["elements"][0]["text"] == "case_opened · case T-\ufffd"
    page = by_path["/page"]["payload"]
    assert page["summary"] == header
    assert page["custom_details"]["customer"] == "Acme \ufffd"
    call = by_path["/call"]
    assert call["message"] == "line one\nline <two> & \ufffd\ufffd\n"
    assert call["case"]["ticket_id"] == "T-\ufffd"


async def test_an_unknown_kind_is_failed_without_blocking_the_batch(
    pool: asyncpg.Pool, ticket_id: str
) -> None:
    wf = f"case-{ticket_id}"
    batch = [notification(wf, 1, kind="no_such_kind"), notification(wf, 2)]
    assert await run(Notifier(pool), batch) == 1
    r = await row(pool, batch[0].dedupe_key)
    assert r["state"] == "failed" and "no_such_kind.txt" in r["last_error"]


# Configuration.


def test_nothing_configured_means_the_log_sink_everywhere() -> None:
    assert SenderSettings.from_env({}).build().configured() == []


def test_settings_from_env_name_what_is_wrong() -> None:
    with pytest.raises(ValueError, match="SMTP_FROM"):
        SenderSettings.from_env({"SMTP_HOST": "mail"})
    with pytest.raises(ValueError, match="SMTP_STARTTLS"):
        SenderSettings.from_env({"SMTP_HOST": "mail", "SMTP_FROM": "a@b", "SMTP_STARTTLS": "maybe"})
    with pytest.raises(ValueError, match="ABH_CHAT_WEBHOOK_URL"):
        SenderSettings.from_env({"ABH_CHAT_WEBHOOK_URL": "hooks.example/x"})
    with pytest.raises(ValueError, match="ABH_PAGE_ROUTING_KEY"):
        SenderSettings.from_env({"ABH_PAGE_WEBHOOK_URL": "https://pd.example"})


async def test_settings_defaults_are_the_safe_ones() -> None:
    s = SenderSettings.from_env({"SMTP_HOST": "mail", "SMTP_FROM": "a@b", "SMTP_USERNAME": "u"})
    assert s.smtp is not None and (s.smtp.port, s.smtp.starttls) == (587, True)
    s = SenderSettings.from_env({"SMTP_HOST": "mail", "SMTP_FROM": "a@b", "SMTP_SSL": "true"})
    assert s.smtp is not None and (s.smtp.port, s.smtp.starttls, s.smtp.implicit_tls) == (465, False, True)
    s = SenderSettings.from_env({"ABH_PAGE_ROUTING_KEY": "k"})
    assert s.page_url == PAGERDUTY_EVENTS_URL
    senders = s.build()
    assert senders.configured() == ["page"] and senders.replay_safe("page")
    assert not senders.replay_safe("email")
    await senders.aclose()


async def test_settings_build_real_senders_for_each_channel(receiver: Receiver) -> None:
    env = webhook_env(receiver) | {"SMTP_HOST": "127.0.0.1", "SMTP_FROM": "a@b"}
    senders = senders_from_env(env)
    assert senders.configured() == ["call", "chat", "email", "page"]
    assert [senders.replay_safe(c) for c in ("call", "chat", "email", "page")] == [True, True, False, True]
    await senders.aclose()


IDEMPOTENT_VARS = ("ABH_CHAT_IDEMPOTENT", "ABH_PAGE_IDEMPOTENT", "ABH_CALL_IDEMPOTENT")


async def test_replay_safety_defaults_follow_what_each_provider_does() -> None:
    env = {
        "ABH_CHAT_WEBHOOK_URL": "https://hooks.example/chat",
        "ABH_PAGE_ROUTING_KEY": "k",
        "ABH_CALL_WEBHOOK_URL": "https://calls.example/call",
    }
    s = SenderSettings.from_env(env)
    assert (s.chat_idempotent, s.page_idempotent, s.call_idempotent) == (False, True, True)
    assert SenderSettings.from_env(env | dict.fromkeys(IDEMPOTENT_VARS, "auto")) == s
    senders = s.build()
    assert [senders.replay_safe(c) for c in ("chat", "page", "call", "email")] == [False, True, True, False]
    await senders.aclose()


async def test_replay_safety_can_be_set_per_channel() -> None:
    env = {
        "ABH_CHAT_WEBHOOK_URL": "https://hooks.example/chat",
        "ABH_PAGE_ROUTING_KEY": "k",
        "ABH_CALL_WEBHOOK_URL": "https://calls.example/call",
        "ABH_CHAT_IDEMPOTENT": "yes",
        "ABH_PAGE_IDEMPOTENT": "false",
        "ABH_CALL_IDEMPOTENT": " OFF ",
    }
    senders = senders_from_env(env)
    assert [senders.replay_safe(c) for c in ("chat", "page", "call")] == [True, False, False]
    await senders.aclose()
    for name in IDEMPOTENT_VARS:
        with pytest.raises(ValueError, match=name):
            SenderSettings.from_env({name: "sometimes"})


@pytest.mark.parametrize(("idempotent", "left"), [("false", "unknown"), ("true", "pending")])
async def test_a_send_cancelled_midway_is_never_left_sending(
    pool: asyncpg.Pool, ticket_id: str, receiver: Receiver, idempotent: str, left: str
) -> None:
    senders = senders_from_env(webhook_env(receiver) | {"ABH_CHAT_IDEMPOTENT": idempotent})
    n = notification(f"case-{ticket_id}", 1, "chat", role=Role.TEAM, recipient="#support")
    notifier = Notifier(pool, senders)
    async with pool.acquire() as conn:
        await write_outbox(conn, [n], structlog.get_logger())
    receiver.hold_at = 1
    env = ActivityEnvironment()
    delivery = asyncio.create_task(env.run(notifier.deliver, [n.dedupe_key]))
    try:
        assert await asyncio.to_thread(receiver.held.wait, 10), "the post never reached the provider"
        env.cancel()
        with pytest.raises(asyncio.CancelledError):
            await delivery
        r = await row(pool, n.dedupe_key)
        assert r["state"] == left
        assert outcomes(r) == ["cancelled"]
    finally:
        receiver.release.set()
        await senders.aclose()


def test_settings_read_only_what_they_are_given_and_blank_means_the_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from stack.settings import Settings

    monkeypatch.setenv("SMTP_HOST", "from-the-process")
    given = Settings.from_env({"ABH_TASK_QUEUE": " ", "SMTP_PORT": "2525", "ABH_CHAT_IDEMPOTENT": "auto"})
    assert (given.smtp_host, given.smtp_port, given.task_queue, given.chat_idempotent) == (
        None,
        2525,
        "abh-cases",
        None,
    )
    with pytest.raises(ValueError, match="SMTP_FROM is required when SMTP_HOST is set"):
        Settings.from_env()
    with pytest.raises(
        ValueError, match=r"SMTP_PORT: .*; ABH_WEBHOOK_TIMEOUT: Input should be greater than 0"
    ):
        Settings.from_env({"SMTP_PORT": "smtp", "ABH_WEBHOOK_TIMEOUT": "-1"})
