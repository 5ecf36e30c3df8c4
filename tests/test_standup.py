"""The standup Schedule on the dev server: the digest's content, its next runs, idempotent set-up.

The digest reads every open case, so these tests use a database of their own on the session's PostgreSQL:
cases other tests leave open would otherwise show up in the sections.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import asyncpg
import jinja2
import pytest
import pytest_asyncio
from temporalio.client import (
    Client,
    ScheduleActionExecutionStartWorkflow,
    ScheduleHandle,
    WorkflowFailureError,
)
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities.database import connect, migrate
from activities.notifications import Message, Notifier
from activities.policy_source import PolicySource
from activities.standup import DigestCase, DigestSection, StandupActivities, StandupDigest
from stack.schedules import ensure_standup_schedule, next_standups, parse_at, schedule_standup_command
from tests.cases import default_policy
from worker import STRICT_FAILURES, workflow_runner
from workflows.calendar import CalendarSpec
from workflows.digest import digest_facts, section_text
from workflows.models import Phase, Priority
from workflows.policy import Policy
from workflows.standup import DEFAULT_TEAM_EMAIL, StandupDigestWorkflow, StandupRequest, StandupResult

NEW_YORK = "America/New_York"


@pytest_asyncio.fixture(scope="module")
async def own_pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    name = f"standup_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        pool = await connect(urlunsplit(urlsplit(database_url)._replace(path=f"/{name}")))
        await migrate(pool)
        yield pool
        await pool.close()
        await admin.execute(f'DROP DATABASE "{name}"')
    finally:
        await admin.close()


def policy_in(zone: str, holidays: list[date] | None = None) -> Policy:
    weekdays = {day: ["09:00-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")}
    spec = CalendarSpec(timezone=zone, hours=weekdays, holidays=holidays or [])
    return default_policy(calendars={"business": spec})


class Outbox:
    """The sender tests plug in: keeps what would have gone out."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.sent.append(message)


def standup_worker(
    client: Client, pool: asyncpg.Pool, task_queue: str, policy: Policy, outbox: Outbox
) -> Worker:
    """In the strict sandbox, so the digest workflow's own modules are checked as the case's are."""
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[StandupDigestWorkflow],
        activities=[
            PolicySource(policy=policy).current_policy,
            StandupActivities(pool).collect_standup_digest,
            Notifier(pool, outbox).send_notifications,
        ],
        workflow_runner=workflow_runner(strict=True),
        workflow_failure_exception_types=STRICT_FAILURES,
    )


async def seed_case(
    pool: asyncpg.Pool,
    ticket: str,
    priority: str,
    phase: str,
    opened: datetime,
    *,
    escalated: bool = False,
    breached: dict[str, str] | None = None,
    paused: bool = False,
    levels: tuple[str, ...] = (),
) -> None:
    wf = f"case-{ticket}"
    snapshot: dict[str, Any] = {
        "paused": paused,
        "milestones": [{"name": n, "state": s} for n, s in (breached or {}).items()],
    }
    await pool.execute(
        """
        INSERT INTO cases (workflow_id, ticket_id, priority, phase, customer_account, customer_name, subject,
            assignee, opened_at, escalated, on_standup, sla_breached, last_seq, snapshot)
        VALUES ($1, $2, $3, $4, 'acme', 'Acme Corp', $5, 'alice@support.example', $6, $7, $7, $8, 1, $9)
        """,
        wf,
        ticket,
        priority,
        phase,
        f"subject of {ticket}",
        opened,
        escalated,
        bool(breached),
        json.dumps(snapshot),
    )
    for n, level in enumerate(levels):
        await pool.execute(
            """
            INSERT INTO escalations (ticket_key, workflow_id, engagement, level, priority, assignee, reason,
                raised_at)
            VALUES ($1, $2, 1, $3, $4, 'tl@support.example', 'unresolved', $5)
            """,
            f"{wf}:1:{level}",
            wf,
            level,
            priority,
            opened + timedelta(hours=1 + n),
        )


async def scheduled_run(handle: ScheduleHandle, timeout: float = 30) -> str:
    """The workflow id of the schedule's most recent action, once it has one."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        recent = (await handle.describe()).info.recent_actions
        if recent and isinstance(recent[-1].action, ScheduleActionExecutionStartWorkflow):
            return recent[-1].action.workflow_id
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the schedule never started its workflow")
        await asyncio.sleep(0.2)


async def test_scheduled_digest_lists_each_case_in_its_sections(
    dev_env: WorkflowEnvironment, own_pool: asyncpg.Pool, task_queue: str
) -> None:
    now = datetime.now(UTC)
    tag = uuid.uuid4().hex[:6]
    t = {name: f"{name}-{tag}" for name in ("U1", "U2", "E1", "E2", "B1", "O1", "Q1", "C1")}
    await seed_case(own_pool, t["U1"], "P1", "engaged", now - timedelta(hours=3))
    await seed_case(own_pool, t["U2"], "P2", "awaiting_confirmation", now - timedelta(days=1))
    await seed_case(
        own_pool, t["E1"], "P2", "engaged", now - timedelta(days=2), escalated=True, levels=("tech_lead",)
    )
    await seed_case(
        own_pool,
        t["E2"],
        "P3",
        "engaged",
        now - timedelta(days=5),
        escalated=True,
        breached={"first_response": "breached", "data_verified": "met"},
        levels=("tech_lead",),
    )
    await seed_case(
        own_pool,
        t["B1"],
        "P4",
        "engaged",
        now - timedelta(days=4),
        breached={"troubleshooting": "met_late"},
        paused=True,
    )
    await seed_case(own_pool, t["O1"], "P4", "queued", now - timedelta(days=10))
    await seed_case(own_pool, t["Q1"], "P3", "triage", now - timedelta(minutes=30))
    await seed_case(
        own_pool,
        t["C1"],
        "P1",
        "closed",
        now - timedelta(days=20),
        escalated=True,
        breached={"first_response": "breached"},
        levels=("tech_lead",),
    )

    client = dev_env.client
    schedule_id = f"standup-test-{tag}"
    outbox = Outbox()
    policy = policy_in("UTC")
    # `force`: the digest runs whatever the weekday this test runs on; the calendar skip has its own test.
    request = StandupRequest(force=True, oldest=3)
    # Twelve hours away, so only the trigger below runs it.
    at = (datetime.now(UTC) + timedelta(hours=12)).time().replace(second=0, microsecond=0)
    async with standup_worker(client, own_pool, task_queue, policy, outbox):
        await ensure_standup_schedule(
            client, policy, task_queue, at=at, schedule_id=schedule_id, request=request
        )
        handle = client.get_schedule_handle(schedule_id)
        try:
            await handle.trigger()
            run_id = await scheduled_run(handle)
            result = await client.get_workflow_handle(run_id, result_type=StandupResult).result()
        finally:
            await handle.delete()

        assert run_id.startswith(f"{schedule_id}-")
        assert result.sections == {
            "urgent": [t["U1"], t["E1"], t["U2"]],
            "escalated": [t["E1"], t["E2"]],
            "breached": [t["E2"], t["B1"]],
            "oldest": [t["O1"], t["E2"], t["B1"]],
        }
        assert result.delivered == 2 and not result.skipped

        assert sorted((m.channel, m.recipient) for m in outbox.sent) == [
            ("chat", "#support-standup"),
            ("email", DEFAULT_TEAM_EMAIL),
        ]
        message = outbox.sent[0]
        assert message.subject == (
            f"Support standup {result.day:%A} {result.day}: 3 P1/P2 open, 2 escalated, 2 breached"
        )
        assert "7 cases open" in message.body
        lines = message.body.splitlines()
        e2 = next(line for line in lines if t["E2"] in line)
        assert e2.startswith(
            f"- P3 {t['E2']} | Acme Corp | subject of {t['E2']} | engaged | alice@support.example"
        )
        assert e2.endswith("(5d ago) | escalated: tech_lead | breached: first_response")
        assert any(f"{t['B1']} |" in line and "| engaged, paused |" in line for line in lines)
        assert not any(t["Q1"] in line or t["C1"] in line for line in lines)

        rows = await own_pool.fetch("SELECT * FROM notifications WHERE workflow_id = $1", run_id)
        assert sorted(r["dedupe_key"] for r in rows) == [
            f"{run_id}:standup_digest:team:chat",
            f"{run_id}:standup_digest:team:email",
        ]
        assert {r["state"] for r in rows} == {"sent"}

        # The same run again (a reset, a retry of the whole workflow): the outbox sends nothing more.
        again = await client.execute_workflow(
            StandupDigestWorkflow.run, request, id=run_id, task_queue=task_queue
        )
        assert again.sections == result.sections and again.delivered == 0
        assert len(outbox.sent) == 2


async def test_digest_stops_on_a_holiday(
    dev_env: WorkflowEnvironment, own_pool: asyncpg.Pool, task_queue: str
) -> None:
    today = datetime.now(UTC).date()
    # The day before and after too, should the run cross midnight.
    holidays = [today - timedelta(days=1), today, today + timedelta(days=1)]
    outbox = Outbox()
    policy = policy_in("UTC", holidays=holidays)
    async with standup_worker(dev_env.client, own_pool, task_queue, policy, outbox):
        result = await dev_env.client.execute_workflow(
            StandupDigestWorkflow.run,
            StandupRequest(),
            id=f"standup-holiday-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
        )
    assert result.skipped and result.day in holidays and result.sections == {}
    assert "is not a business day in calendar 'business'" in result.note
    assert outbox.sent == []


async def test_a_calendar_the_policy_no_longer_has_fails_the_run_naming_it(
    dev_env: WorkflowEnvironment, own_pool: asyncpg.Pool, task_queue: str
) -> None:
    """Not a workflow task retried every morning until the schedule's timeout: a failed run, saying why."""
    outbox = Outbox()
    async with standup_worker(dev_env.client, own_pool, task_queue, policy_in("UTC"), outbox):
        with pytest.raises(WorkflowFailureError) as failed:
            await dev_env.client.execute_workflow(
                StandupDigestWorkflow.run,
                StandupRequest(calendar="emea"),
                id=f"standup-gone-{uuid.uuid4().hex[:6]}",
                task_queue=task_queue,
                execution_timeout=timedelta(seconds=30),
            )
    assert "calendar 'emea' is not in the policy (it has business)" in str(failed.value.cause)
    assert outbox.sent == []


def expected_runs(now: datetime, holiday: date, count: int) -> list[datetime]:
    """09:15 New York time on each weekday but the holiday, from now on: worked out independently."""
    zone = ZoneInfo(NEW_YORK)
    runs: list[datetime] = []
    day = now.astimezone(zone).date()
    while len(runs) < count:
        instant = datetime.combine(day, time(9, 15), tzinfo=zone)
        if day.weekday() < 5 and day != holiday and instant > now:
            runs.append(instant)
        day += timedelta(days=1)
    return runs


async def test_schedule_runs_at_0915_new_york_on_business_days(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    before = datetime.now(UTC)
    local_today = before.astimezone(ZoneInfo(NEW_YORK)).date()
    holiday = next(
        d for d in (local_today + timedelta(days=n) for n in range(2, 9)) if d.weekday() < 5
    )  # a weekday among the next ten runs
    policy = policy_in(NEW_YORK, holidays=[holiday, date(2000, 1, 3)])
    schedule_id = f"standup-ny-{uuid.uuid4().hex[:6]}"
    client = dev_env.client
    await ensure_standup_schedule(client, policy, task_queue, schedule_id=schedule_id)
    try:
        runs = await next_standups(client, NEW_YORK, schedule_id)
        description = await client.get_schedule_handle(schedule_id).describe()
    finally:
        await client.get_schedule_handle(schedule_id).delete()
    after = datetime.now(UTC)

    assert len(runs) == 10
    # 09:15 may pass while the schedule is created: today's run is then rightly left out.
    assert runs in (expected_runs(before, holiday, 10), expected_runs(after, holiday, 10))
    assert all((r.hour, r.minute, r.second) == (9, 15, 0) and r.weekday() < 5 for r in runs)
    assert holiday not in {r.date() for r in runs}
    assert description.schedule.spec.time_zone_name == NEW_YORK
    # Only holidays still ahead become skips; the one in 2000 is gone.
    assert [s.comment for s in description.schedule.spec.skip] == [f"holiday {holiday.isoformat()}"]


async def test_ensuring_twice_updates_the_one_schedule(dev_env: WorkflowEnvironment, task_queue: str) -> None:
    client = dev_env.client
    policy = policy_in(NEW_YORK)
    schedule_id = f"standup-twice-{uuid.uuid4().hex[:6]}"
    handle = client.get_schedule_handle(schedule_id)
    try:
        assert await ensure_standup_schedule(client, policy, task_queue, schedule_id=schedule_id) == "created"
        await handle.pause(note="paused by an operator")
        second = await ensure_standup_schedule(
            client, policy, task_queue, schedule_id=schedule_id, at=time(10, 30)
        )
        assert second == "updated"

        description = await handle.describe()
        assert description.schedule.state.paused
        assert description.schedule.state.note == "paused by an operator"
        (calendar,) = description.schedule.spec.calendars
        assert [(r.start, r.end) for r in calendar.hour] == [(10, 10)]
        assert [(r.start, r.end) for r in calendar.minute] == [(30, 30)]
        assert [(r.start, r.end) for r in calendar.day_of_week] == [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5)]

        assert await _schedules_named(client, schedule_id) == 1
    finally:
        await handle.delete()


async def _schedules_named(client: Client, schedule_id: str) -> int:
    """Count through the list API, after giving visibility a moment to catch up."""
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        found = [s.id async for s in await client.list_schedules() if s.id == schedule_id]
        if found or asyncio.get_running_loop().time() > deadline:
            return len(found)
        await asyncio.sleep(0.2)


async def test_schedule_standup_command_reports_the_next_runs(
    dev_env: WorkflowEnvironment, task_queue: str
) -> None:
    schedule_id = f"standup-cli-{uuid.uuid4().hex[:6]}"
    policy = policy_in(NEW_YORK)
    try:
        first = await schedule_standup_command(
            dev_env.client, policy, task_queue, at="08:45", schedule_id=schedule_id
        )
        second = await schedule_standup_command(
            dev_env.client, policy, task_queue, at="08:45", schedule_id=schedule_id
        )
    finally:
        await dev_env.client.get_schedule_handle(schedule_id).delete()
    head, *runs = first.splitlines()
    assert head == f"created schedule {schedule_id}: standup digest at 08:45 {NEW_YORK}; next runs:"
    assert second.startswith(f"updated schedule {schedule_id}:")
    assert len(runs) == 5 and all(" 08:45 E" in r for r in runs)  # EST or EDT


def digest_case(opened_at: datetime, **fields: Any) -> DigestCase:
    """An engaged P1, T-1, as the digest reads it; `fields` say what the test is about."""
    base: dict[str, Any] = {"customer_name": "Acme", "subject": "Checkout down"}
    return DigestCase(
        workflow_id="case-T-1",
        ticket_id="T-1",
        priority=Priority.P1,
        phase=Phase.ENGAGED,
        opened_at=opened_at,
        **(base | fields),
    )


def test_html_digest_shows_a_row_per_case_escaped() -> None:
    as_of = datetime(2026, 3, 9, 13, 15, tzinfo=UTC)
    case = digest_case(
        as_of - timedelta(hours=26),
        customer_name="Smith <&> Sons",
        escalated=True,
        escalation_levels=["tech_lead"],
    )
    digest = StandupDigest(
        as_of=as_of,
        open_cases=4,
        urgent=DigestSection(cases=[case], more=2),
        escalated=DigestSection(cases=[case]),
        breached=DigestSection(),
        oldest=DigestSection(cases=[case]),
    )
    facts = digest_facts(digest, ZoneInfo(NEW_YORK), "business")
    templates = jinja2.Environment(
        loader=jinja2.PackageLoader("activities", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",)),
    )
    html = templates.get_template("standup_digest.html").render(**facts, email_subject="standup")
    assert "Support standup, Monday 2026-03-09" in html
    assert html.count(">P1 T-1</td>") == 3
    assert ">Smith &lt;&amp;&gt; Sons</td>" in html
    assert ">opened Sun 08 Mar 07:15 EDT (1d2h ago)</td>" in html
    assert ">... and 2 more</td>" in html and ">none</td>" in html
    assert "Open P1/P2 cases (3)" in html


def test_a_subject_can_neither_add_a_case_line_nor_shift_the_cells() -> None:
    as_of = datetime(2026, 3, 9, 13, 15, tzinfo=UTC)
    case = digest_case(
        as_of - timedelta(hours=2),
        customer_name="Acme | Fake Corp",
        subject="Checkout down\n- P1 T-999 | Fake Corp | all fine",
    )
    lines = section_text(DigestSection(cases=[case]), as_of, ZoneInfo(NEW_YORK)).splitlines()
    assert len(lines) == 1
    assert lines[0].split(" | ")[1:4] == [
        "Acme ¦ Fake Corp",
        "Checkout down - P1 T-999 ¦ Fake Corp ¦ all fine",
        "engaged",
    ]


@pytest.mark.parametrize("text", ["9:15", "25:00", "nine"])
def test_bad_standup_time_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not HH:MM"):
        parse_at(text)
