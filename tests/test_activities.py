"""Activities against a real PostgreSQL: every write is idempotent on the workflow id and sequence."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import asyncpg
import pytest
import structlog
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.case_store import CaseChanges, CaseRecord, CaseStore, TechLeadTicket
from activities.notifications import INSERT_OUTBOX, Message, Notification, Notifier, outbox_row
from activities.policy_source import PolicySource
from tests.cases import ticket
from workflows.models import CaseStatus, Phase, Priority, SlaClockEvent, SlaEventKind, TimelineEntry
from workflows.policy import DEFAULT_POLICY_FILE, Role

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


def record(ticket_id: str, seq: int, phase: Phase = Phase.ENGAGED) -> CaseRecord:
    t = ticket(ticket_id, "P2")
    status = CaseStatus(
        workflow_id=f"case-{ticket_id}", ticket=t, priority=Priority.P2, phase=phase, opened_at=NOW
    )
    events = [TimelineEntry(seq=n, at=NOW, type="note", detail=f"event {n}") for n in range(1, seq + 1)]
    return CaseRecord(workflow_id=status.workflow_id, seq=seq, status=status, events=events)


async def fetch_one(pool: asyncpg.Pool, sql: str, *args: object) -> asyncpg.Record:
    row = await pool.fetchrow(sql, *args)
    assert row is not None
    return row


async def count(pool: asyncpg.Pool, table: str, workflow_id: str) -> int:
    return int(await pool.fetchval(f"SELECT count(*) FROM {table} WHERE workflow_id = $1", workflow_id))


async def test_recording_a_case_twice_leaves_one_row_per_event(pool: asyncpg.Pool, ticket_id: str) -> None:
    store, env = CaseStore(pool), ActivityEnvironment()
    rec = record(ticket_id, 3)
    assert await env.run(store.record_case, rec) == 3
    assert await env.run(store.record_case, rec) == 0
    assert await count(pool, "cases", rec.workflow_id) == 1
    assert await count(pool, "case_events", rec.workflow_id) == 3


async def test_a_late_retry_never_rolls_the_case_back(pool: asyncpg.Pool, ticket_id: str) -> None:
    store, env = CaseStore(pool), ActivityEnvironment()
    await env.run(store.record_case, record(ticket_id, 5, Phase.AWAITING_CONFIRMATION))
    await env.run(store.record_case, record(ticket_id, 2, Phase.ENGAGED))
    row = await fetch_one(
        pool, "SELECT phase, last_seq FROM cases WHERE workflow_id = $1", f"case-{ticket_id}"
    )
    assert (row["phase"], row["last_seq"]) == ("awaiting_confirmation", 5)


async def test_opening_a_tech_lead_ticket_twice_leaves_one(pool: asyncpg.Pool, ticket_id: str) -> None:
    store, env = CaseStore(pool), ActivityEnvironment()
    rec = record(ticket_id, 1)
    await env.run(store.record_case, rec)
    tl = TechLeadTicket(
        ticket_key=f"{rec.workflow_id}:1:tech_lead",
        workflow_id=rec.workflow_id,
        engagement=1,
        level="tech_lead",
        priority=Priority.P2,
        assignee="tech-lead@support.example",
        reason="unresolved 60 min after engagement 1",
        raised_at=NOW,
    )
    assert await env.run(store.open_tech_lead_ticket, tl) is True
    assert await env.run(store.open_tech_lead_ticket, tl) is False
    assert await count(pool, "escalations", rec.workflow_id) == 1


def notification(workflow_id: str, seq: int) -> Notification:
    return Notification(
        dedupe_key=f"{workflow_id}:{seq}:case_closed:customer:email",
        workflow_id=workflow_id,
        seq=seq,
        kind="case_closed",
        channel="email",
        role=Role.CUSTOMER,
        recipient="ops@acme.example",
        facts={
            "ticket_id": "T-1",
            "subject": "Checkout",
            "customer_name": "Acme",
            "close_reason": "confirmed",
        },
    )


async def test_outbox_never_holds_two_rows_for_one_dedupe_key(pool: asyncpg.Pool, ticket_id: str) -> None:
    delivered: list[Message] = []

    async def sender(message: Message) -> None:
        delivered.append(message)

    notifier, env = Notifier(pool, sender), ActivityEnvironment()
    wf = f"case-{ticket_id}"
    batch = [notification(wf, 7), notification(wf, 7), notification(wf, 8)]
    assert await env.run(notifier.send_notifications, batch) == 2
    assert await env.run(notifier.send_notifications, batch) == 0
    assert await count(pool, "notifications", wf) == 2
    assert [m.dedupe_key for m in delivered] == [
        f"{wf}:7:case_closed:customer:email",
        f"{wf}:8:case_closed:customer:email",
    ]
    assert delivered[0].subject == "[T-1] Closed: Checkout"
    with pytest.raises(asyncpg.UniqueViolationError):
        await pool.execute(
            "INSERT INTO notifications (dedupe_key, workflow_id, seq, kind, channel, role, recipient,"
            " subject, body) SELECT dedupe_key, workflow_id, seq, kind, channel, role, recipient,"
            " subject, body"
            " FROM notifications WHERE workflow_id = $1 LIMIT 1",
            wf,
        )


async def test_a_failed_delivery_is_recorded_and_retried_later(pool: asyncpg.Pool, ticket_id: str) -> None:
    attempts: list[str] = []

    async def flaky(message: Message) -> None:
        attempts.append(message.dedupe_key)
        if len(attempts) == 1:
            raise ConnectionError("smtp down")

    notifier, env = Notifier(pool, flaky), ActivityEnvironment()
    wf = f"case-{ticket_id}"
    with pytest.raises(ConnectionError):
        await env.run(notifier.send_notifications, [notification(wf, 1)])
    row = await fetch_one(
        pool, "SELECT state, attempts, last_error FROM notifications WHERE workflow_id = $1", wf
    )
    assert (row["state"], row["attempts"], row["last_error"]) == ("pending", 1, "ConnectionError: smtp down")
    assert await env.run(notifier.send_notifications, [notification(wf, 1)]) == 1
    row = await fetch_one(pool, "SELECT state, attempts FROM notifications WHERE workflow_id = $1", wf)
    assert (row["state"], row["attempts"]) == ("sent", 2)


async def test_migrations_are_applied_once(pool: asyncpg.Pool) -> None:
    from activities.database import migrate, migrations

    assert await migrate(pool) == []
    versions = [
        r["version"] for r in await pool.fetch("SELECT version FROM schema_migrations ORDER BY version")
    ]
    assert versions == [version for version, _, _ in migrations()]
    assert versions[:2] == [1, 2]


async def test_a_connection_goes_back_to_the_pool_as_it_is_but_never_mid_transaction(
    database_url: str,
) -> None:
    """The pool skips asyncpg's session reset (a round trip a borrow; nothing keeps session state), but an
    open transaction is still rolled back before the connection is lent again, and the migrations reset
    whatever setting they changed."""
    from activities.database import connect, migrate

    pool = await connect(database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("SET application_name = 'kept'")
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (n int)")
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT to_regclass('left_open')") is None
            assert await conn.fetchval("SHOW application_name") == "kept"
        await migrate(pool)
        assert await pool.fetchval("SHOW application_name") != "kept"
    finally:
        await pool.close()


def changes(ticket_id: str, life: str, events: list[TimelineEntry], at: datetime = NOW) -> CaseChanges:
    t = ticket(ticket_id, "P2")
    status = CaseStatus(
        workflow_id=f"case-{ticket_id}",
        life=life,
        ticket=t,
        priority=Priority.P2,
        phase=Phase.ENGAGED,
        opened_at=NOW,
    )
    return CaseChanges(
        workflow_id=status.workflow_id, life=life, seq=events[-1].seq, as_of=at, status=status, events=events
    )


async def test_text_postgresql_cannot_hold_is_stored_safely(pool: asyncpg.Pool, ticket_id: str) -> None:
    nasty = "bad\x00text \ud800 here"
    entry = TimelineEntry(
        seq=1, at=NOW, type="note", actor=nasty, detail=nasty, data={f"k\x00{nasty}": nasty}
    )
    await ActivityEnvironment().run(CaseStore(pool).record_changes, changes(ticket_id, "L1", [entry]))
    row = await fetch_one(pool, "SELECT * FROM case_events WHERE workflow_id = $1", f"case-{ticket_id}")
    assert row["detail"] == row["actor"] == "bad\ufffdtext \ufffd here"
    assert json.loads(row["data"]) == {"k\ufffdbad\ufffdtext \ufffd here": "bad\ufffdtext \ufffd here"}
    assert row["storage_error"] is None


async def test_an_entry_postgresql_refuses_is_kept_escaped_with_the_reason(
    pool: asyncpg.Pool, ticket_id: str
) -> None:
    refused = TimelineEntry(seq=1, at=NOW, type="note", detail="the note", data={"ratio": float("nan")})
    fine = TimelineEntry(seq=2, at=NOW, type="note", detail="the next note")
    stored = changes(ticket_id, "L1", [refused, fine])
    await ActivityEnvironment().run(CaseStore(pool).record_changes, stored)
    first, second = await pool.fetch(
        "SELECT * FROM case_events WHERE workflow_id = $1 ORDER BY seq", f"case-{ticket_id}"
    )
    assert first["detail"] == "the note" and "nan" in json.loads(first["data"])["unstored"]
    assert first["storage_error"] and "invalid input syntax for type json" in first["storage_error"]
    assert second["detail"] == "the next note" and second["storage_error"] is None


async def test_a_new_life_of_a_ticket_writes_its_own_rows_and_becomes_the_live_row(
    pool: asyncpg.Pool, ticket_id: str
) -> None:
    store, env = CaseStore(pool), ActivityEnvironment()
    entry = TimelineEntry(seq=1, at=NOW, type="note", detail="first life")
    later = NOW.replace(hour=12)
    again = TimelineEntry(seq=1, at=later, type="note", detail="second life")
    await env.run(
        store.record_changes, changes(ticket_id, "L1", [entry, entry.model_copy(update={"seq": 2})])
    )
    await env.run(store.record_changes, changes(ticket_id, "L2", [again], at=later))
    await env.run(store.record_changes, changes(ticket_id, "L1", [entry.model_copy(update={"seq": 3})]))
    lives = await pool.fetch(
        "SELECT life, seq, detail FROM case_events WHERE workflow_id = $1 ORDER BY life, seq",
        f"case-{ticket_id}",
    )
    assert [(r["life"], r["seq"]) for r in lives] == [("L1", 1), ("L1", 2), ("L1", 3), ("L2", 1)]
    row = await fetch_one(
        pool, "SELECT life, last_seq FROM cases WHERE workflow_id = $1", f"case-{ticket_id}"
    )
    assert (row["life"], row["last_seq"]) == ("L2", 1)


async def test_a_batch_postgresql_refuses_is_stored_again_whole(pool: asyncpg.Pool, ticket_id: str) -> None:
    """A batch is first stored without a savepoint a row; refused, it is stored again row by row, so the
    refused entry is kept escaped with the reason and the rest of the batch as it is."""
    refused = TimelineEntry(seq=1, at=NOW, type="note", detail="the note", data={"ratio": float("nan")})
    workflow_id = f"case-{ticket_id}"
    told = [notification(workflow_id, 2), notification(workflow_id, 3)]
    batch = changes(ticket_id, "L1", [refused]).model_copy(update={"notifications": told})
    pending = await ActivityEnvironment().run(CaseStore(pool).record_changes, batch)
    assert pending == [n.dedupe_key for n in told]
    entry = await fetch_one(pool, "SELECT * FROM case_events WHERE workflow_id = $1", workflow_id)
    assert entry["storage_error"] and "invalid input syntax for type json" in entry["storage_error"]
    assert await count(pool, "notifications", workflow_id) == 2


class _Statements(asyncpg.Connection):
    """A real connection that keeps the first word of every statement it is asked to run."""

    sent: ClassVar[list[str]] = []

    def _keep(self, query: str) -> None:
        self.sent.append(query.split()[0].rstrip(";").upper())

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        self._keep(query)
        return await super().execute(query, *args, timeout=timeout)

    async def executemany(self, command: str, args: Any, *, timeout: float | None = None) -> None:
        self._keep(command)
        return await super().executemany(command, args, timeout=timeout)

    async def fetch(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> Any:
        self._keep(query)
        return await super().fetch(query, *args, timeout=timeout, record_class=record_class)

    async def fetchrow(
        self, query: str, *args: Any, timeout: float | None = None, record_class: Any = None
    ) -> Any:
        self._keep(query)
        return await super().fetchrow(query, *args, timeout=timeout, record_class=record_class)


_WAITING_FOR_A_LOCK = "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"


async def test_an_attempt_that_waited_for_another_of_the_same_batch_still_reports_its_notifications(
    pool: asyncpg.Pool, database_url: str, ticket_id: str
) -> None:
    """Two attempts of one batch at once (a local activity retried while the first still runs): the one
    that waited for the other's outbox rows to commit still returns them as pending, to deliver."""
    workflow_id = f"case-{ticket_id}"
    told = notification(workflow_id, 2)
    entry = TimelineEntry(seq=1, at=NOW, type="note", detail="the note")
    batch = changes(ticket_id, "L1", [entry]).model_copy(update={"notifications": [told]})
    first = await asyncpg.connect(database_url)
    try:
        async with first.transaction():
            await first.execute(INSERT_OUTBOX, *outbox_row(told, structlog.get_logger()))
            second = asyncio.create_task(ActivityEnvironment().run(CaseStore(pool).record_changes, batch))
            while not await pool.fetchval(_WAITING_FOR_A_LOCK):
                assert not second.done(), second.result()
                await asyncio.sleep(0.01)
        assert await second == [told.dedupe_key]
    finally:
        await first.close()


async def _kept_as_it_is(conn: asyncpg.Connection) -> None:
    """As the worker's pool hands a connection back: without asyncpg's reset statements."""


@pytest.mark.parametrize("refused", [False, True])
async def test_a_batch_is_one_statement_until_postgresql_refuses_it(
    pool: asyncpg.Pool, database_url: str, ticket_id: str, refused: bool
) -> None:
    """A clean batch (an entry with its SLA rows, a Tech Lead ticket, two notifications) is one statement,
    one round trip; a refused one is stored again in a transaction, each row in a savepoint. Stored twice,
    as a retry would, and watched the second time (the first also reads the array types once a
    connection). `pool` has migrated the database; this test watches a pool of its own."""
    workflow_id = f"case-{ticket_id}"
    started = SlaClockEvent(
        clock="escalation", event=SlaEventKind.START, starts_at=NOW, target=timedelta(hours=1), due_at=NOW
    )
    entry = TimelineEntry(
        seq=1,
        at=NOW,
        type="sla_clock",
        detail="engagement clock started",
        data={
            "ratio": float("nan") if refused else 1.5,
            "event": "start",
            "clocks": [started.model_dump(mode="json")],
        },
    )
    raised = TechLeadTicket(
        ticket_key=f"tl-{ticket_id}", workflow_id=workflow_id, life="L1", engagement=1, level="tech_lead",
        priority=Priority.P2, assignee="lead@example.com", reason="unresolved", raised_at=NOW,
    )  # fmt: skip
    told = [notification(workflow_id, 2), notification(workflow_id, 3)]
    batch = changes(ticket_id, "L1", [entry]).model_copy(update={"tickets": [raised], "notifications": told})
    watched = await asyncpg.create_pool(
        database_url, min_size=1, max_size=1, connection_class=_Statements, reset=_kept_as_it_is
    )
    assert watched is not None
    try:
        await ActivityEnvironment().run(CaseStore(watched).record_changes, batch)
        _Statements.sent = []
        pending = await ActivityEnvironment().run(CaseStore(watched).record_changes, batch)
    finally:
        await watched.close()
    assert pending == [n.dedupe_key for n in told]
    assert await count(pool, "notifications", workflow_id) == 2
    assert await count(pool, "escalations", workflow_id) == 1
    assert await count(pool, "sla_events", workflow_id) == 1
    if refused:
        assert _Statements.sent[0] == "WITH" and "SAVEPOINT" in _Statements.sent
        assert _Statements.sent[1:].count("BEGIN") == 1
    else:
        assert _Statements.sent == ["WITH"]


async def test_an_edited_policy_file_applies_to_the_next_case_and_a_broken_one_fails_until_mended(
    tmp_path: Path,
) -> None:
    """The snapshot a new case starts with is read from the file each time, without a restart; a broken
    edit fails it (Temporal retries the snapshot) until the file is mended."""
    path = tmp_path / "policy.toml"
    text = DEFAULT_POLICY_FILE.read_text()
    path.write_text(text)
    source, env = PolicySource(path), ActivityEnvironment()
    assert (await env.run(source.current_policy)).warn_at == 0.75
    path.write_text(text.replace("warn_at = 0.75", "warn_at = 0.5"))
    assert (await env.run(source.current_policy)).warn_at == 0.5
    path.write_text(text.replace("warn_at = 0.75", "warn_at = 7"))
    with pytest.raises(ValidationError, match="warn_at"):
        await env.run(source.current_policy)
    path.write_text(text)
    assert (await env.run(source.current_policy)).warn_at == 0.75
