"""Visibility on the dev server: the case search attributes give exact answers to operators' filters
after priority changes, escalations, pauses and closures; `starter.py list/status/history` read them.

Every case is opened before the worker polls, so actions sent with the case (a cancel) land before any
clock can fire; every later action waits for the state it needs. Nothing depends on how fast this
machine is, only on the order of events.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from rich.console import Console
from temporalio.client import Client, WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from console.views import build_query, list_cases, run_command
from stack.cases import signal_action
from tests.cases import Cases, case_worker, console_args, status_when, ticket
from workflows.calendar import DAY_KEYS, CalendarSpec
from workflows.case import CaseWorkflow
from workflows.models import CaseInput, CaseStatus, Customer, Milestone, Phase, Priority
from workflows.policy import EscalationLevel, FollowUpPolicy, Policy, Role, load_policy

ROOT = Path(__file__).resolve().parent.parent
WAIT = 60.0  # seconds; generous for a loaded 2-core machine, still bounded
DAY = timedelta(days=1)


def seconds_policy(escalate_after: timedelta = timedelta(seconds=2)) -> Policy:
    """The demo policy, reshaped so only the clocks a test watches can fire while it runs.

    P1 escalates to the Tech Lead `escalate_after` engagement (no other priority escalates); P4 misses
    first response after 2 s; every other target is a day away. Calendar `later` opens only in three
    days, so a business-time case for it stays queued.
    """
    base = load_policy(ROOT / "policies" / "demo.toml")
    later_day = DAY_KEYS[(datetime.now(UTC).weekday() + 3) % 7]
    calendars = base.calendars | {"later": CalendarSpec(timezone="UTC", hours={later_day: ["00:00-24:00"]})}
    slow = dict.fromkeys(Milestone, DAY)
    priorities = {p: base.priorities[p].model_copy(update={"targets": slow, "every": {}}) for p in Priority}
    priorities[Priority.P4] = base.priorities[Priority.P4].model_copy(
        update={"targets": slow | {Milestone.FIRST_RESPONSE: timedelta(seconds=2)}}
    )
    tech_lead = EscalationLevel(
        name="tech_lead",
        after=escalate_after,
        priorities=[Priority.P1],
        notify=[Role.TECH_LEAD, Role.TAM, Role.TEAM],
    )
    return Policy.model_validate(
        base.model_dump()
        | {
            "name": "visibility-test",
            "calendars": calendars,
            "priorities": priorities,
            "escalations": [tech_lead],
            "follow_up": FollowUpPolicy(window=DAY, reminder_after=DAY / 2),
        }
    )


def customer(account_id: str, name: str, calendar: str | None = None) -> Customer:
    return Customer(
        account_id=account_id,
        name=name,
        contact_email=f"ops@{''.join(ch for ch in account_id if ch.isalnum())}.example",
        contact_phone="+1 555 0100",
        tam_email="tam@support.example",
        calendar=calendar,
    )


ACME = customer("acme", "Acme Corp")
GLOBEX = customer("globex", "Globex Inc")
INITECH = customer("initech", "Initech LLC")
QUOTED = customer("o'hare", "O'Hare Freight", calendar="later")  # a quote inside the value

# short name: (priority, customer) at opening
OPENED: dict[str, tuple[str, Customer]] = {
    "p1-escalated": ("P1", ACME),
    "p1-escalated-closed": ("P1", GLOBEX),
    "p1-cancelled-at-once": ("P1", ACME),
    "p3-raised-to-p1": ("P3", INITECH),
    "p1-lowered-to-p2": ("P1", GLOBEX),
    "p2-paused": ("P2", ACME),
    "p2-resolved": ("P2", GLOBEX),
    "p2-reassigned": ("P2", ACME),
    "p4-breached-cancelled": ("P4", ACME),
    "p4-breached": ("P4", INITECH),
    "p3-lowered-to-p4": ("P3", ACME),
    "p3-queued": ("P3", customer("acme", "Acme Corp", calendar="later")),
    "p4-queued": ("P4", QUOTED),
    "p2-closed": ("P2", INITECH),
}


class Story:
    """One test's cases by short name, and the waits and actions that drive them."""

    def __init__(self, client: Client, cases: Cases) -> None:
        self.client = client
        self.cases = cases
        self.run = uuid.uuid4().hex[:8]
        self.handles: dict[str, WorkflowHandle[CaseWorkflow, Any]] = {}

    def tid(self, name: str) -> str:
        return f"V-{self.run}-{name}"

    def wid(self, name: str) -> str:
        return f"case-{self.tid(name)}"

    def ids(self, *names: str) -> set[str]:
        return {self.wid(n) for n in names}

    async def open(self, name: str, t: CaseInput) -> None:
        self.handles[name] = await self.cases.open(t)

    async def act(self, name: str, action: str, payload: dict[str, Any] | None = None) -> None:
        await signal_action(self.client, self.tid(name), action, payload or {})

    async def until(self, name: str, ready: Callable[[CaseStatus], bool]) -> CaseStatus:
        return await status_when(self.handles[name], ready, timeout=WAIT)


def engaged(s: CaseStatus) -> bool:
    return s.phase is Phase.ENGAGED


def escalated(s: CaseStatus) -> bool:
    return s.escalated


def closed(s: CaseStatus) -> bool:
    return s.phase is Phase.CLOSED


def awaiting(s: CaseStatus) -> bool:
    return s.phase is Phase.AWAITING_CONFIRMATION and s.follow_up_sent_at is not None


async def drive(story: Story) -> None:
    """Each case's own story, all at once; each step waits for the state it needs."""

    async def escalate_then_close() -> None:
        await story.until("p1-escalated-closed", escalated)
        await story.act("p1-escalated-closed", "resolved", {"summary": "rolled back", "by": "alice"})
        await story.until("p1-escalated-closed", awaiting)
        await story.act("p1-escalated-closed", "customer_confirmed")
        await story.until("p1-escalated-closed", closed)

    async def raise_to_p1() -> None:
        await story.until("p3-raised-to-p1", engaged)
        await story.act("p3-raised-to-p1", "change_priority", {"priority": "P1", "reason": "outage"})
        await story.until("p3-raised-to-p1", escalated)

    async def lower_to_p2() -> None:
        await story.until("p1-lowered-to-p2", escalated)
        await story.act("p1-lowered-to-p2", "change_priority", {"priority": "P2"})
        await story.until("p1-lowered-to-p2", lambda s: s.priority is Priority.P2)

    async def pause() -> None:
        await story.until("p2-paused", engaged)
        await story.act("p2-paused", "waiting_on_customer", {"note": "needs logs"})
        await story.until("p2-paused", lambda s: s.paused)

    async def resolve() -> None:
        await story.until("p2-resolved", engaged)
        await story.act("p2-resolved", "resolved", {"summary": "config fixed"})
        await story.until("p2-resolved", awaiting)

    async def reassign() -> None:
        await story.until("p2-reassigned", engaged)
        await story.act("p2-reassigned", "assign", {"assignee": "alice"})
        await story.until("p2-reassigned", lambda s: s.assignee == "alice")

    async def breach_then_cancel() -> None:
        await story.until("p4-breached-cancelled", lambda s: s.sla_breached)
        await story.act("p4-breached-cancelled", "cancel", {"reason": "duplicate of another ticket"})
        await story.until("p4-breached-cancelled", closed)

    async def lower_to_p4() -> None:
        await story.until("p3-lowered-to-p4", engaged)
        await story.act("p3-lowered-to-p4", "change_priority", {"priority": "P4"})
        await story.until("p3-lowered-to-p4", lambda s: s.sla_breached)

    async def confirm() -> None:
        await story.until("p2-closed", engaged)
        await story.act("p2-closed", "resolved", {"summary": "patched"})
        await story.until("p2-closed", awaiting)
        await story.act("p2-closed", "customer_confirmed", {"note": "works"})
        await story.until("p2-closed", closed)

    def queued(s: CaseStatus) -> bool:
        return s.phase is Phase.QUEUED

    steps: list[Awaitable[object]] = [
        story.until("p1-escalated", escalated),
        escalate_then_close(),
        story.until("p1-cancelled-at-once", closed),
        raise_to_p1(),
        lower_to_p2(),
        pause(),
        resolve(),
        reassign(),
        breach_then_cancel(),
        story.until("p4-breached", lambda s: s.sla_breached),
        lower_to_p4(),
        story.until("p3-queued", queued),
        story.until("p4-queued", queued),
        confirm(),
    ]
    await asyncio.gather(*steps)


async def matching(client: Client, query: str, expected: set[str]) -> set[str]:
    """The listing once visibility has caught up with `expected` (or what it says at the deadline)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        found = {row.workflow_id for row in await list_cases(client, query)}
        if found == expected or asyncio.get_running_loop().time() > deadline:
            return found
        await asyncio.sleep(0.25)


async def test_filters_give_exact_sets_after_changes(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    client = dev_env.client
    # Opened, and one cancelled, before the worker polls: the cancel is in each history before any clock.
    opened = Cases(dev_env, task_queue)
    story = Story(client, opened)
    for name, (priority, who) in OPENED.items():
        await story.open(name, ticket(story.tid(name), priority, customer=who, subject=f"Story {name}"))
    await story.act("p1-cancelled-at-once", "cancel", {"reason": "opened by mistake"})
    async with case_worker(dev_env, pool, task_queue, seconds_policy()):
        try:
            await drive(story)
            await check_listings(client, story, task_queue)
            await check_commands(client, story, f'TaskQueue="{task_queue}"')
        finally:
            await opened.terminate_running()


async def check_listings(client: Client, story: Story, task_queue: str) -> None:
    scope = f'TaskQueue="{task_queue}"'
    expectations = {
        f'CasePriority="P1" AND CaseEscalated=true AND {scope}': story.ids(
            "p1-escalated", "p1-escalated-closed", "p3-raised-to-p1"
        ),
        f'CaseCustomer="acme" AND CasePhase!="closed" AND {scope}': story.ids(
            "p1-escalated", "p2-paused", "p2-reassigned", "p3-lowered-to-p4", "p3-queued"
        ),
        f'CasePhase="closed" AND {scope}': story.ids(
            "p1-escalated-closed", "p1-cancelled-at-once", "p4-breached-cancelled", "p2-closed"
        ),
        f"CaseSlaBreached=true AND {scope}": story.ids(
            "p4-breached-cancelled", "p4-breached", "p3-lowered-to-p4"
        ),
        f'CasePriority="P2" AND CasePhase="engaged" AND {scope}': story.ids(
            "p1-lowered-to-p2", "p2-paused", "p2-reassigned"
        ),
        f'CasePhase="awaiting_confirmation" AND {scope}': story.ids("p2-resolved"),
        f'CasePhase="queued" AND {scope}': story.ids("p3-queued", "p4-queued"),
        f'CaseAssignee="alice" AND {scope}': story.ids("p2-reassigned"),
        build_query(priority="P1", escalated=False, extra=scope): story.ids("p1-cancelled-at-once"),
        build_query(customer="o'hare", extra=scope): story.ids("p4-queued"),
        build_query(phase="open", escalated=True, extra=scope): story.ids(
            "p1-escalated", "p3-raised-to-p1", "p1-lowered-to-p2"
        ),
        build_query(customer="globex", breached=False, extra=scope): story.ids(
            "p1-escalated-closed", "p1-lowered-to-p2", "p2-resolved"
        ),
    }
    for query, expected in expectations.items():
        assert await matching(client, query, expected) == expected, query

    everything = await list_cases(client, build_query(extra=scope))
    assert len(everything) == len(OPENED)
    row = next(r for r in everything if r.workflow_id == story.wid("p1-lowered-to-p2"))
    assert (row.priority, row.phase, row.customer, row.escalated, row.breached) == (
        "P2",
        "engaged",
        "globex",
        True,
        False,
    )
    assert row.ticket_id == story.tid("p1-lowered-to-p2") and row.status == "RUNNING"


async def output_of(client: Client, *argv: str) -> tuple[int, str]:
    console = Console(record=True, width=200, force_terminal=False)
    with console.capture() as captured:
        code = await run_command(client, console_args(*argv), console)
    return code, captured.get()


async def check_commands(client: Client, story: Story, scope: str) -> None:
    """`starter.py list`, `status` and `history` over the same cases, for terminals and for scripts."""
    code, out = await output_of(client, "list", "--priority", "P1", "--escalated", "--query", scope, "--json")
    assert code == 0
    rows = json.loads(out)
    assert {r["workflow_id"] for r in rows} == story.ids(
        "p1-escalated", "p1-escalated-closed", "p3-raised-to-p1"
    )
    assert all(r["priority"] == "P1" and r["escalated"] is True for r in rows)

    code, out = await output_of(client, "list", "--customer", "acme", "--phase", "open", "--query", scope)
    assert code == 0 and "5 cases" in out and story.wid("p3-queued") in out

    code, out = await output_of(client, "status", story.tid("p1-escalated-closed"))
    assert code == 0
    for text in ("P1", "closed", "confirmed at", "tech_lead", "Globex Inc (globex)", "rolled back"):
        assert text in out, text

    code, out = await output_of(client, "status", story.tid("p2-paused"), "--json")
    assert json.loads(out)["paused"] is True

    code, out = await output_of(client, "history", story.tid("p1-cancelled-at-once"), "--json")
    assert [e["type"] for e in json.loads(out)][-2:] == ["cancelled", "closed"]

    code, out = await output_of(client, "history", story.tid("p2-paused"))
    assert code == 0 and "paused" in out and "needs logs" in out

    code, _ = await output_of(client, "status", f"{story.tid('nothing')}-here")
    assert code == 4

    code, _ = await output_of(client, "list", "--query", "CasePriority = P1")  # P1 unquoted
    assert code == 2
    with pytest.raises(SystemExit):
        console_args("list", "--limit", "0")
