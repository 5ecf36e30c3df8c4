"""Hundreds of generated signals and updates, in every shape a broken client sends, against live P1 and
P2 cases on the dev server, with the real senders on loopback: e-mail over SMTP, chat, page and call over
HTTP. No workflow task fails, nothing is left retrying, every bad signal is kept as a bounded `rejected`
entry, every update is answered, and a clock that falls due in the middle of it fires on time."""

from __future__ import annotations

import asyncio
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

import asyncpg
import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.senders import Senders
from tests.cases import (
    case_worker,
    failed_tasks,
    highest_attempt,
    quiet,
    round_the_clock_policy,
    status_when,
    ticket,
)
from tests.test_senders import Mailbox, Receiver
from workflows.case import CaseWorkflow
from workflows.models import ACTIONS, CaseStatus, Phase

SEED = int(os.environ.get("ABH_FUZZ_SEED", "20261202"))
SHOTS_PER_CASE = 200
UPDATE_SHARE = 0.3
# Huge keys and values: each up to HUGE_MAX bytes of JSON, HUGE_BUDGET bytes in all, so that no
# workflow task has to carry more than a few megabytes of signals.
HUGE_MAX = 200_000
HUGE_BUDGET = 3_000_000
# A refusal names what was wrong without repeating it.
DETAIL_LIMIT = 2_000
# The clock case is opened this long before its 60-minute Tech Lead deadline, and must escalate within
# ON_TIME of it while the fuzz goes on.
LEAD = timedelta(seconds=18)
ON_TIME = timedelta(seconds=3)
ESCALATE_AFTER = timedelta(minutes=60)
# First response is due after 15 minutes for a P1 and 1 hour for a P2; warned at 75%.
WARN_P1 = timedelta(minutes=15) * 0.75
WARN_P2 = timedelta(hours=1) * 0.75

# What must never reach a mail header: a line break, a separator, a control character.
LINE_BREAK = re.compile("[\x00-\x1f\x7f\u2028\u2029]")

# Text no client should send but some do; all of it valid in a note.
ODD = [
    "\r\n", "\n", "\r", "\u2028", "\u2029", "\u0085", "\t", "\x1b[31m", "\x7f", "\u202e", "\ufeff",
    "🧨", "Ω≈ç√∫", "'; DROP TABLE cases; --", "<script>alert(1)</script>", "{{ 7*7 }}", "{% raw %}",
    "%s%n", "\\u0000", "&amp;", "\U0001f468\u200d\U0001f469\u200d\U0001f467",
]  # fmt: skip
NUL = ["\x00", "a\x00b", "\x00\x00"]
# A field's name made a different key.
KEY_SUFFIXES = [*NUL, "\u2028", " ", "~"]
WHITESPACE_ONLY = [" ", "\t\r\n", " \u2028 \u2029 ", "\n\n\n"]
UNKNOWN_NAMES = [
    "escalate", "reopen", "close", "status", "Add_Note", "add_note ", " assign", "add_note\x00", "\x00",
    "assign\x00evil", "add\u2028note", "resolved\r\n", "🧨", "x" * 999, "cancel\x00", "__stack_trace",
    "__temporal_workflow_metadata", "ASSIGN", "add-note", "add_note\u200b",
]  # fmt: skip
# Actions that take an empty payload: never sent one here, or a fuzz might pause or close a case.
OPTIONAL_ONLY = {
    name for name, model in ACTIONS.items() if not any(f.is_required() for f in model.model_fields.values())
}
# The text field of each action that has one, and its longest accepted value.
TEXT_FIELDS = {"add_note": ("text", 10_000), "assign": ("assignee", 200), "resolved": ("summary", 10_000),
               "cancel": ("reason", 2_000)}  # fmt: skip
WRONG_TYPES: list[Any] = [42, -1, 3.5, -1e308, True, False, [], [1, "a"], {"nested": {"deeper": [1, {}]}}]
NOT_OBJECTS: list[Any] = [42, -0.0, "text", "", [], [{"text": "hi"}], True, [[["deep"]]], 10**30]
# Raw JSON bodies a client converter would refuse to produce: lone surrogates, bytes that are not UTF-8,
# broken or bottomless JSON, non-JSON numbers.
RAW_BODIES = [
    b'{"text": "lone \\ud800 surrogate"}', b'{"te\\udc00xt": "lone surrogate in a key"}',
    b'{"text": "\\udfff\\ud800 reversed pair"}', b'{"text": "ok", "by": "\\ud83d"}', b"\xff\xfe\xfd",
    b'{"text": "\xc3\x28 bad utf-8"}', b"", b'{"text": ', b"nul", b"[" * 5_000, b'{"text": NaN}',
    b'{"text": Infinity}', b'{"text": "a"} trailing', b'{"\\u0000": "\\u0000"}', b'{"text": "a", "text": 1}',
]  # fmt: skip
RAW_ENCODINGS = [b"json/plain", b"json/plain", b"json/plain", b"x/unknown", b"json/protobuf", b"binary/plain"]


@dataclass
class Shot:
    """One generated action: how it is sent, and what the case must do with it."""

    via: str
    name: str
    args: list[Any]
    kind: str
    takes: bool = False
    note: str | None = None


@dataclass
class Plan:
    """The generated actions for one case, and what its journal must show once they are all in."""

    handle: WorkflowHandle[CaseWorkflow, Any]
    shots: list[Shot]
    rejected: int = 0
    notes: list[str] = field(default_factory=list)
    assigned: int = 0
    answers: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)


class Generator:
    def __init__(self, rng: Random) -> None:
        self.rng = rng
        self.huge_left = HUGE_BUDGET
        self.n = 0

    def odd(self, nul: bool = False) -> str:
        return "".join(self.rng.choices(ODD + (NUL if nul else []), k=self.rng.randint(1, 4)))

    def size(self) -> int:
        """A huge size in bytes while the budget lasts, else a small one."""
        wanted = self.rng.randint(20_000, HUGE_MAX)
        if wanted > self.huge_left:
            return self.rng.randint(1, 300)
        self.huge_left -= wanted
        return wanted

    def long_text(self, size: int) -> str:
        """About `size` bytes of JSON: one odd unit repeated (a NUL is six bytes as JSON, 🧨 four)."""
        unit = self.rng.choice(["y", "é", "\u2028", "🧨", "a\x00", "\r\n"])
        cost = len(json.dumps(unit, ensure_ascii=False).encode()) - 2
        return unit * max(size // cost, 1)

    def weird_key(self, model_fields: set[str]) -> str:
        choice = self.rng.randrange(5)
        if choice == 0:
            key = "k" * self.size()
        elif choice == 1:
            key = self.rng.choice(sorted(model_fields) or ["text"]) + self.rng.choice(KEY_SUFFIXES)
        else:
            key = self.odd(nul=True)
        return key if key not in model_fields else key + "~"

    def value(self) -> Any:
        """Anything JSON can carry, odd text included."""
        choice = self.rng.randrange(6)
        if choice == 0:
            return self.long_text(self.size())
        if choice == 1:
            return self.rng.choice(WRONG_TYPES)
        if choice == 2:
            return {self.odd(nul=True): [self.odd(nul=True), {"\x00": None}], "n": 1.5}
        return self.odd(nul=True)

    def shot(self, case: int, current: dict[str, Any]) -> Shot:
        """The next action for the case whose assignee and priority are `current` (kept up to date)."""
        self.n += 1
        rng, n = self.rng, self.n
        via = "update" if rng.random() < UPDATE_SHARE else "signal"
        kind = rng.choices(
            ["note", "assign", "unknown", "extra_key", "wrong_type", "not_object", "bad_text", "raw",
             "several", "nothing", "wrong_phase", "same_value"],
            weights=[14, 6, 10, 12, 10, 8, 10, 12, 4, 4, 5, 5],
        )[0]  # fmt: skip
        known = rng.choice(list(ACTIONS))
        fields = set(ACTIONS[known].model_fields)
        if kind == "note":
            text = f"[{case}:{n}{self.odd()}{self.odd()}]"
            if rng.random() < 0.1:
                text = f"[{case}:{n}:{'y' * rng.randint(5_000, 9_980)}]"
            payload: dict[str, Any] = {"text": text}
            if rng.random() < 0.5:
                payload["by"] = f"eng{n}{self.odd()}x"[:200]
            return Shot(via, "add_note", [payload], kind, takes=True, note=text)
        if kind == "assign":
            assignee = rng.choice(
                [f"eng{n}@acme.example", f"José{n}@acme.example", f"ops+{n}\u2028x@acme.example",
                 f"x{n}\r\nBcc: evil@x.example", f"<b>{n}</b>", f"eng {n} 🧨",
                 f"{n}{self.odd()}@acme.example"]
            )[:200]  # fmt: skip
            current["assignee"] = assignee.strip()
            return Shot(via, "assign", [{"assignee": assignee}], kind, takes=True)
        if kind == "unknown":
            name = rng.choice(UNKNOWN_NAMES) if rng.random() < 0.7 else f"act{self.odd(nul=True)}"
            return Shot(via, name, [self.value()], kind)
        if kind == "extra_key":
            payload = {self.weird_key(fields): self.value()}
            if known in TEXT_FIELDS:
                payload[TEXT_FIELDS[known][0]] = f"fine {n}"
            return Shot(via, known, [payload], kind)
        if kind == "wrong_type":
            name = rng.choice([a for a in ACTIONS if ACTIONS[a].model_fields])
            target = rng.choice(sorted(ACTIONS[name].model_fields))
            return Shot(via, name, [{target: rng.choice(WRONG_TYPES)}], kind)
        if kind == "not_object":
            return Shot(via, known, [rng.choice(NOT_OBJECTS)], kind)
        if kind == "bad_text":
            name = rng.choice(list(TEXT_FIELDS))
            text_field, limit = TEXT_FIELDS[name]
            choice = rng.randrange(5)
            if choice == 4:  # no converter writes a lone surrogate: the JSON is written here
                body = b'{"%s": "lone \\ud800 %d"}' % (text_field.encode(), n)
                return Shot(via, name, [raw(body)], "raw")
            if choice == 3:
                text = "y" * max(limit + 1, self.size())
            else:
                text = [f"before{rng.choice(NUL)}after {n}", rng.choice(WHITESPACE_ONLY), ""][choice]
            return Shot(via, name, [{text_field: text}], kind)
        if kind == "raw":
            name = known if known not in OPTIONAL_ONLY else "add_note"
            body = rng.choice(RAW_BODIES)
            return Shot(via, name, [raw(body, rng.choice(RAW_ENCODINGS))], kind)
        if kind == "several":
            name = rng.choice(list(ACTIONS))
            return Shot(via, name, [{"text": f"one {n}"}, {"text": f"two {n}"}], kind)
        if kind == "nothing":
            name = rng.choice([a for a in ACTIONS if a not in OPTIONAL_ONLY])
            return Shot(via, name, [], kind)
        if kind == "wrong_phase":  # well-formed, but not while the case is engaged and not paused
            name = rng.choice(["customer_confirmed", "customer_rejected", "customer_replied"])
            return Shot(via, name, [{"note": f"not now {n}{self.odd()}"}], kind)
        # same_value: well-formed, but it changes nothing
        if rng.random() < 0.5:
            return Shot(via, "assign", [{"assignee": current["assignee"]}], kind)
        return Shot(via, "change_priority", [{"priority": current["priority"]}], kind)


def raw(body: bytes, encoding: bytes = b"json/plain") -> RawValue:
    """A payload sent as these bytes, whatever the client's converter thinks of them."""
    return RawValue(Payload(metadata={"encoding": encoding}, data=body))


def plan_for(gen: Generator, case: int, handle: WorkflowHandle[CaseWorkflow, Any], start: CaseStatus) -> Plan:
    current = {"assignee": start.assignee, "priority": start.priority.value}
    shots = [gen.shot(case, current) for _ in range(SHOTS_PER_CASE)]
    plan = Plan(handle, shots)
    for s in shots:
        if s.takes and s.note is not None:
            plan.notes.append(s.note)
        plan.assigned += s.takes and s.name == "assign"
        plan.rejected += s.via == "signal" and not s.takes
    return plan


async def fire(env: WorkflowEnvironment, plan: Plan, ends_at: float) -> None:
    """Send the plan's shots in order, spread until `ends_at` (loop time), and check each answer."""
    live = env.client.get_workflow_handle(plan.handle.id)
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i, s in enumerate(plan.shots):
        try:
            if s.via == "signal":
                await live.signal(s.name, args=s.args)
                plan.answers["signal sent"] += 1
            else:
                answer = await live.execute_update(s.name, args=s.args, result_type=CaseStatus)
                assert isinstance(answer, CaseStatus)
                plan.answers["update accepted"] += 1
                if not s.takes:
                    plan.failures.append(f"update {s.name!r} ({s.kind}) was accepted")
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if not isinstance(cause, ApplicationError) or not cause.message:
                plan.failures.append(f"update {s.name!r} ({s.kind}) failed without a message: {cause!r}")
                continue
            plan.answers[f"update refused: {cause.type}"] += 1
            if s.takes:
                plan.failures.append(f"update {s.name!r} ({s.kind}) refused: {cause.message[:300]}")
            if cause.type == "ActionRefused" and len(cause.message) >= DETAIL_LIMIT:
                plan.failures.append(f"refusal of {len(cause.message)} characters for {s.name[:50]!r}")
        except Exception as err:
            plan.failures.append(f"{s.via} {s.name[:50]!r} ({s.kind}): {type(err).__name__}: {err}"[:500])
        pause = began + (i + 1) / len(plan.shots) * (ends_at - began) - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)


async def journal_holds(pool: asyncpg.Pool, plan: Plan, timeout: float = 20) -> None:
    """Until PostgreSQL holds the plan's rejected signals and its notes, or `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    query = "SELECT count(*) FILTER (WHERE type = 'rejected'), count(*) FILTER (WHERE type = 'note')"
    while True:
        row = await pool.fetchrow(f"{query} FROM case_events WHERE workflow_id = $1", plan.handle.id)
        assert row is not None
        if (row[0], row[1]) == (plan.rejected, len(plan.notes)):
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"{plan.handle.id}: {row[0]} of {plan.rejected} rejections and {row[1]} of"
                f" {len(plan.notes)} notes stored"
            )
        await asyncio.sleep(0.1)


@pytest.mark.timeout(120)
async def test_generated_signals_and_updates_on_every_channel_break_nothing(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    wired: tuple[Senders, Receiver, Mailbox],
) -> None:
    print(f"\nfuzz seed {SEED} (set ABH_FUZZ_SEED to replay another)")
    senders, receiver, box = wired
    loop = asyncio.get_running_loop()
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy(), sender=senders) as cases:
        opened = datetime.now(UTC) - (ESCALATE_AFTER - LEAD)
        due = opened + ESCALATE_AFTER
        clock = await cases.open(ticket(f"{ticket_id}-clock", "P1", opened_at=opened))
        # Their first 75% warnings, to whoever the fuzz has made the assignee by then, fall due during it.
        now = datetime.now(UTC)
        others = [
            await cases.open(ticket(f"{ticket_id}-p1", "P1", opened_at=now - WARN_P1 + timedelta(seconds=8))),
            await cases.open(
                ticket(f"{ticket_id}-p2", "P2", opened_at=now - WARN_P2 + timedelta(seconds=12),
                       subject="Invoices\u2028late\r\nagain")
            ),
        ]  # fmt: skip
        handles = [clock, *others]
        starts = [await status_when(h, lambda s: s.phase is Phase.ENGAGED) for h in handles]
        gen = Generator(Random(SEED))
        plans = [plan_for(gen, n, h, s) for n, (h, s) in enumerate(zip(handles, starts, strict=True))]
        print(
            f"{sum(len(p.shots) for p in plans)} shots:",
            dict(Counter(s.kind for p in plans for s in p.shots)),
        )
        assert sum(len(p.shots) for p in plans) >= 500

        seen: dict[str, Any] = {"attempt": 0}

        async def watch() -> None:
            """The clock case's escalation as the fuzz goes on, and the highest activity attempt."""
            while True:
                status = await clock.query(CaseWorkflow.status)
                if status.escalated and "escalated" not in seen:
                    seen["escalated"], seen["at"] = status, datetime.now(UTC)
                seen["attempt"] = max([seen["attempt"]] + [await highest_attempt(h) for h in handles])
                await asyncio.sleep(0.1)

        watcher = asyncio.create_task(watch())
        ends_at = loop.time() + (due - datetime.now(UTC) + timedelta(seconds=4)).total_seconds()
        began = datetime.now(UTC)
        await asyncio.wait_for(asyncio.gather(*(fire(dev_env, p, ends_at) for p in plans)), 90)
        fuzz_ended = datetime.now(UTC)
        for p in plans:
            await journal_holds(pool, p)
        for h in handles:
            await quiet(h, timeout=30)
        if watcher.done():
            watcher.result()
        watcher.cancel()
        finals = [await h.query(CaseWorkflow.status) for h in handles]
        tasks_failed = [await failed_tasks(h) for h in handles]
        attempts = [await highest_attempt(h) for h in handles]
        await cases.terminate_running()

    for p in plans:
        print(p.handle.id, dict(p.answers))
    took = (fuzz_ended - began).total_seconds()
    print(f"fuzz ran {took:.1f} s; highest activity attempt seen {seen['attempt']}")
    assert [f for p in plans for f in p.failures] == []
    assert tasks_failed == [0, 0, 0]
    assert max(attempts) <= 1
    for status in finals:
        assert status.phase is Phase.ENGAGED and status.attention == [], status.attention

    # The clock fired on time, in the middle of the fuzz.
    assert "escalated" in seen, "the clock case never escalated"
    escalated: CaseStatus = seen["escalated"]
    (raised,) = escalated.escalations
    assert raised.due_at == due and raised.level == "tech_lead"
    assert timedelta(0) <= raised.raised_at - due <= ON_TIME
    assert began < due and seen["at"] < fuzz_ended
    print(f"escalated {(raised.raised_at - due).total_seconds():.2f} s after its deadline (seen after"
          f" {(seen['at'] - due).total_seconds():.2f} s)")  # fmt: skip
    assert [s.escalated for s in finals[1:]] == [False, False]

    # What PostgreSQL holds: every rejected signal, bounded and named safely; every note as sent.
    for p in plans:
        events = await pool.fetch(
            "SELECT type, detail, data->>'action' AS action, storage_error FROM case_events"
            " WHERE workflow_id = $1 ORDER BY seq",
            p.handle.id,
        )
        rejected = [e for e in events if e["type"] == "rejected"]
        assert len(rejected) == p.rejected
        assert max(len(e["detail"]) for e in rejected) < DETAIL_LIMIT
        assert all(e["detail"].startswith(("unknown action '", "invalid ", "case ")) for e in rejected)
        assert all(e["action"] and len(e["action"]) <= 80 and e["action"].isprintable() for e in rejected)
        assert Counter(e["detail"] for e in events if e["type"] == "note") == Counter(p.notes)
        assert len([e for e in events if e["type"] == "assigned"]) == 1 + p.assigned
        assert [e["storage_error"] for e in events if e["storage_error"]] == []

    # Every notification settled; webhook providers got each key once, and the mails arrived.
    notes = await pool.fetch(
        "SELECT dedupe_key, channel, recipient, state, last_error FROM notifications"
        " WHERE workflow_id = ANY($1::text[])",
        [h.id for h in handles],
    )
    print("notifications:", dict(Counter((n["channel"], n["state"]) for n in notes)))
    assert {n["state"] for n in notes} <= {"sent", "failed"}
    for n in notes:
        if n["state"] == "failed":
            assert n["last_error"] and len(n["last_error"]) <= DETAIL_LIMIT, n["dedupe_key"]
            assert n["channel"] == "email" and n["dedupe_key"].endswith(":assignee:email"), dict(n)
    warned = {
        n["dedupe_key"].split("/")[0] for n in notes if ":milestone_warning:assignee:" in n["dedupe_key"]
    }
    assert warned == {h.id for h in handles}, "a warning to the fuzzed assignee did not fall due"
    sent = {n["dedupe_key"]: n["channel"] for n in notes if n["state"] == "sent"}
    hooks = Counter(h.key for h in receiver.hits)
    assert {k for k, c in sent.items() if c != "email"} == set(hooks) and set(hooks.values()) == {1}
    assert {c for c in sent.values()} == {"email", "chat", "page", "call"}
    assert len(box.envelopes) == list(sent.values()).count("email")
    recipients = {n["dedupe_key"]: n["recipient"] for n in notes}
    for envelope, mail in zip(box.envelopes, box.messages(), strict=True):
        for header in ("To", "Subject", "X-ABH-Dedupe-Key"):
            assert not LINE_BREAK.search(str(mail[header])), (header, str(mail[header]))
        meant = recipients[str(mail["X-ABH-Dedupe-Key"])]
        assert envelope.rcpt_tos == [meant], f"mail for {meant!r} went to {envelope.rcpt_tos}"


async def test_an_unreadable_signal_payload_is_rejected_saying_why(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy()) as cases:
        handle = await cases.open(ticket(ticket_id, "P2"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        live = dev_env.client.get_workflow_handle(handle.id)
        await live.signal("add_note", raw(b'{"text": "lone \\ud800"}'))
        await live.signal("add_note", args=[{"text": "one"}, {"text": "two"}])
        status = await status_when(
            handle, lambda s: len([e for e in s.timeline if e.type == "rejected"]) == 2
        )
        await cases.terminate_running()
    details = [e.detail for e in status.timeline if e.type == "rejected"]
    print(json.dumps(details, indent=1))
    assert details[0].startswith("invalid add_note payload: not readable as JSON: ")
    assert details[1] == "invalid add_note payload: expected one JSON object, got 2 values"


async def test_a_line_break_in_an_assignee_does_not_choose_another_mail_recipient(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    task_queue: str,
    ticket_id: str,
    wired: tuple[Senders, Receiver, Mailbox],
) -> None:
    senders, _, box = wired
    breached = datetime.now(UTC) - timedelta(minutes=16)  # first response (15 minutes) missed at once
    assignee = "Ana\r\nBcc: evil@x.example"
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy(), sender=senders) as cases:
        handle = await cases.open(ticket(ticket_id, "P1", opened_at=breached, assignee=assignee))
        await status_when(handle, lambda s: s.sla_breached)
        await quiet(handle)
        rows = await pool.fetch(
            "SELECT channel, state, recipient, last_error FROM notifications"
            " WHERE workflow_id = $1 AND role = 'assignee'",
            handle.id,
        )
        await cases.terminate_running()
    assert rows and {r["recipient"] for r in rows} == {assignee}
    # Refused by ABH itself (the email package would refuse the header too, so no mail alone proves less).
    assert [(r["channel"], r["state"]) for r in rows] == [("email", "failed")]
    assert "is not an e-mail address" in rows[0]["last_error"], rows[0]["last_error"]
    to = [(str(m["To"]), e.rcpt_tos) for m, e in zip(box.messages(), box.envelopes, strict=True)]
    print("To header and envelope recipients:", to)
    assert "evil@x.example" not in box.rcpts
