"""Where the simulator's tickets come from and when their actions arrive: PostgreSQL's record of a real
case, the 28-year move onto the test server's clock, the actions a queued case defers, and how a large
file is shared out over servers."""

from __future__ import annotations

import asyncio
import gc
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any

import asyncpg
from temporalio.testing import WorkflowEnvironment

from activities.case_store import CaseChanges
from simulator.books import Books, case_id
from simulator.from_db import tickets_from_db
from simulator.replay import HORIZON, Replayed
from simulator.run import fewer_collections, replay_shard, replay_worker, run_replays, simulate, split
from simulator.sample import month_of_tickets
from simulator.schedule import AFTER_ENGAGEMENT, replay_of
from simulator.tickets import RecordedTicket
from simulator.timeshift import cycles_needed, moved, moved_policy
from stack.cases import signal_action
from tests.cases import advance_to, case_worker, settled, ticket
from workflows.calendar import CalendarSpec
from workflows.clocks import clocks_for, engagement_start
from workflows.models import CloseReason, EventType
from workflows.policy import load_policy
from workflows.rotation import Rotation

WEDNESDAY = 2
END = datetime(2026, 11, 6, 23, tzinfo=UTC)  # a Friday night: the recorded window's last instant


async def test_a_recorded_case_comes_back_from_the_database_and_replays_to_the_same_outcome(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    policy = load_policy()
    await advance_to(time_env, WEDNESDAY, time(10, 0))
    steps: list[tuple[str, dict[str, Any]]] = [
        ("customer_contacted", {"channel": "email"}),
        ("milestone_verified", {"milestone": "data_verified"}),
        ("change_priority", {"priority": "P1", "reason": "checkout down"}),
        ("waiting_on_customer", {}),
        ("customer_replied", {}),
        ("customer_updated", {"note": "rolling back"}),
        ("milestone_verified", {"milestone": "troubleshooting"}),
        ("resolved", {"summary": "rolled back"}),
        ("customer_confirmed", {}),
    ]
    async with case_worker(time_env, pool, task_queue, policy=policy) as cases:
        handle = await cases.open(ticket(ticket_id, "P2"))
        for action, payload in steps:
            await time_env.sleep(timedelta(minutes=17))
            await signal_action(time_env.client, ticket_id, action, payload)
        original = await handle.result()
        status = await settled(handle, pool)

    opened = status.opened_at
    found = await tickets_from_db(pool, opened - timedelta(seconds=1), opened + timedelta(seconds=1))
    recorded = next(t for t in found.tickets if t.ticket_id == ticket_id)

    def at(kind: EventType, nth: int = 0) -> datetime:
        return [e.at for e in status.timeline if e.type == kind][nth]

    verified = {m.name.value: m.verified_at for m in status.milestones}
    assert recorded.priority == "P2" and recorded.new_priority == "P1"
    assert recorded.opened_at == opened
    assert recorded.contacted_at == at(EventType.CUSTOMER_CONTACTED)
    assert recorded.data_verified_at == verified["data_verified"]
    assert recorded.priority_changed_at == at(EventType.PRIORITY_CHANGED)
    assert recorded.paused_at == at(EventType.PAUSED)
    assert recorded.resumed_at == at(EventType.RESUMED)
    assert recorded.customer_updates == [at(EventType.CUSTOMER_UPDATED)]
    assert recorded.troubleshooting_at == verified["troubleshooting"]
    assert recorded.resolved_at == at(EventType.RESOLVED)
    assert recorded.confirmed_at == at(EventType.CUSTOMER_CONFIRMED)

    sim = await simulate([recorded], policy, policy)
    assert sim.changed == []
    replayed = sim.baseline.report
    assert [e.level for e in replayed.escalations] == sorted({e.level for e in original.escalations})
    breached = {m.milestone for m in replayed.milestones if m.breached}
    assert breached == {m.value for m in original.breached_milestones}
    mttr = replayed.priorities[0].to_resolved.median
    assert mttr is not None and original.time_to_resolution is not None
    assert abs(mttr - original.time_to_resolution) < timedelta(
        seconds=1
    )  # the simulator counts whole seconds


async def test_a_cancelled_case_is_left_out_of_the_database_s_tickets_and_counted(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """A duplicate or withdrawn ticket, cancelled, would replay as a case left open (a row has no field
    for the cancel): it is no work for the policy, so it is left out, and said to be."""
    await advance_to(time_env, WEDNESDAY, time(10, 0))
    duplicate = f"{ticket_id}-D"
    async with case_worker(time_env, pool, task_queue) as cases:
        handles = [await cases.open(ticket(t, "P2")) for t in (ticket_id, duplicate)]
        await time_env.sleep(timedelta(minutes=5))
        await signal_action(time_env.client, ticket_id, "customer_contacted", {"channel": "email"})
        await signal_action(time_env.client, duplicate, "cancel", {"reason": "duplicate"})
        await time_env.sleep(timedelta(minutes=5))
        kept = await settled(handles[0], pool)
        cancelled = await settled(handles[1], pool)
    assert cancelled.close_reason is CloseReason.CANCELLED
    around = [kept.opened_at - timedelta(seconds=1), cancelled.opened_at + timedelta(seconds=1)]
    found = await tickets_from_db(pool, min(around), max(around))
    ids = {t.ticket_id for t in found.tickets}
    assert ticket_id in ids and duplicate not in ids
    query = "SELECT count(*) FROM cases WHERE opened_at BETWEEN $1 AND $2 AND close_reason = 'cancelled'"
    assert found.cancelled == await pool.fetchval(query, min(around), max(around)) >= 1  # other tests' too


def test_the_move_keeps_weekdays_dates_and_local_hours() -> None:
    t = datetime(2026, 3, 29, 0, 30, tzinfo=UTC)  # the night Europe/London moves to summer time
    later = moved(t, 28)
    assert later.weekday() == t.weekday() and (later.month, later.day) == (3, 29)
    london = "Europe/London"
    from zoneinfo import ZoneInfo

    assert later.astimezone(ZoneInfo(london)).hour == t.astimezone(ZoneInfo(london)).hour
    assert moved(date(2028, 2, 29), 28) == date(2056, 2, 29)
    assert cycles_needed(datetime(2026, 11, 2, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC)) == 28
    assert cycles_needed(datetime(1990, 1, 1, tzinfo=UTC), datetime(2026, 12, 6, tzinfo=UTC)) == 56


def test_the_policy_dates_move_with_the_tickets() -> None:
    policy = load_policy()
    spec = CalendarSpec(
        timezone="Europe/London",
        hours={"mon": ["09:00-17:00"]},
        holidays=[date(2026, 12, 25)],
        holidays_by_year={2026: ["12-26"]},
        closures=[{"date": date(2026, 12, 24), "start": "13:00", "end": "24:00"}],
    )
    rotation = Rotation(
        people=["ana@x.example", "ben@x.example"],
        handoff_day="mon",
        handoff_time=time(9),
        timezone="Europe/London",
        starting=date(2026, 1, 5),
    )
    policy = policy.model_copy(
        update={
            "calendars": {**policy.calendars, "uk": spec},
            "roster": policy.roster.model_copy(update={"tech_lead": rotation}),
        }
    )
    later = moved_policy(policy, 28)
    uk = later.calendars["uk"]
    assert uk.holidays == [date(2054, 12, 25)] and uk.holidays_by_year == {2054: ["12-26"]}
    assert uk.closures[0].date == date(2054, 12, 24)
    assert isinstance(later.roster.tech_lead, Rotation) and later.roster.tech_lead.starting == date(
        2054, 1, 5
    )
    instant = datetime(2026, 3, 10, 10, tzinfo=UTC)
    assert later.roster.tech_lead_at(moved(instant, 28)) == policy.roster.tech_lead_at(instant)


def test_an_action_the_policy_would_keep_queued_waits_for_the_engagement() -> None:
    """Recorded at 08:30 under a policy that opened at 08:00; replayed under one that opens at 09:00."""
    policy = load_policy()
    recorded = RecordedTicket(
        ticket_id="Q1",
        priority="P3",
        opened_at=datetime(2026, 11, 4, 7, 55, tzinfo=UTC),
        account_id="acme",
        contacted_at=datetime(2026, 11, 4, 8, 30, tzinfo=UTC),
        data_verified_at=datetime(2026, 11, 4, 9, 30, tzinfo=UTC),
        priority_changed_at=datetime(2026, 11, 4, 8, 40, tzinfo=UTC),
        new_priority="P4",
    )
    replay = replay_of("baseline/case-Q1", recorded, policy, 0, END)
    engaged = datetime(2026, 11, 4, 9, tzinfo=UTC)
    assert [(s.action, s.at) for s in replay.steps] == [
        ("change_priority", datetime(2026, 11, 4, 8, 40, tzinfo=UTC)),
        ("customer_contacted", engaged + AFTER_ENGAGEMENT),
        ("milestone_verified", datetime(2026, 11, 4, 9, 30, tzinfo=UTC)),
    ]
    raised_to_p1 = recorded.model_copy(update={"new_priority": "P1"})
    steps = replay_of("baseline/case-Q1", raised_to_p1, policy, 0, END).steps
    assert [(s.action, s.at) for s in steps][:2] == [
        ("change_priority", datetime(2026, 11, 4, 8, 40, tzinfo=UTC)),
        ("customer_contacted", datetime(2026, 11, 4, 8, 40, tzinfo=UTC) + AFTER_ENGAGEMENT),
    ]


def test_a_replay_follows_an_open_case_to_the_window_end_and_a_resolved_one_through_its_follow_up() -> None:
    """Nothing is known of a case after the recorded window; a resolved one still has its follow-up."""
    policy = load_policy()
    opened = datetime(2026, 11, 4, 10, tzinfo=UTC)
    minutes = [opened + timedelta(minutes=m) for m in (10, 30, 50, 70)]
    open_p1 = RecordedTicket(
        ticket_id="O1",
        priority="P1",
        opened_at=opened,
        account_id="acme",
        contacted_at=minutes[0],
        customer_updates=minutes[1:3],
    )
    assert replay_of("baseline/case-O1", open_p1, policy, 28, END).ends_at == moved(END, 28)
    resolved = open_p1.model_copy(update={"resolved_at": minutes[3]})
    assert replay_of("baseline/case-O1", resolved, policy, 28, END).ends_at == moved(minutes[3], 28) + HORIZON
    rejected = resolved.model_copy(update={"rejected_at": minutes[3] + timedelta(hours=2)})
    assert replay_of("baseline/case-O1", rejected, policy, 28, END).ends_at == moved(END, 28)
    deferred = RecordedTicket(  # a P4 contacted on Friday night, when the policy keeps it queued
        ticket_id="O2",
        priority="P4",
        opened_at=END - timedelta(hours=1),
        account_id="acme",
        contacted_at=END - timedelta(minutes=30),
    )
    steps = replay_of("baseline/case-O2", deferred, policy, 0, END).steps
    assert replay_of("baseline/case-O2", deferred, policy, 0, END).ends_at == steps[-1].at > END


def test_the_sample_works_a_ticket_raised_to_p1_as_a_p1_from_the_change() -> None:
    """A made-up ticket queued for business hours and raised to P1 at night is contacted soon after the
    change, not at the next opening, and its customer hears from the team every half hour or so."""
    policy = load_policy()
    raised = [t for t in month_of_tickets(500) if t.new_priority == "P1"]
    assert len(raised) >= 10
    queued = 0
    for t in raised:
        assert t.priority_changed_at is not None and t.contacted_at is not None and t.resolved_at is not None
        first = engagement_start(clocks_for(policy, t.priority, t.calendar), t.opened_at)
        if t.priority_changed_at < first:
            queued += 1
            assert t.contacted_at - t.priority_changed_at <= timedelta(minutes=30)
        told = [t.priority_changed_at, *t.customer_updates, t.resolved_at]
        assert max(b - a for a, b in pairwise(told)) <= timedelta(minutes=35)
    assert queued >= 5


def test_the_sample_works_every_p1_to_its_resolution_and_updates_its_customer_all_along() -> None:
    """No made-up P1 is left open for the rest of the month with nobody telling its customer anything;
    some lower priorities are left unresolved, as before."""
    policy = load_policy()
    month = month_of_tickets(1000)
    p1s = [t for t in month if t.priority == "P1" and t.new_priority is None]
    assert len(p1s) >= 50
    for t in p1s:
        assert t.resolved_at is not None, t.ticket_id
        engaged = engagement_start(clocks_for(policy, t.priority, t.calendar), t.opened_at)
        told = [engaged, *t.customer_updates, t.resolved_at]
        assert all(timedelta(0) < b - a <= timedelta(minutes=35) for a, b in pairwise(told)), t.ticket_id
        assert t.confirmed_at is None or t.confirmed_at > t.resolved_at
    assert sum(1 for t in month if t.resolved_at is None) >= 30


def test_a_shard_runs_the_garbage_collector_less_often_and_leaves_it_as_it_found_it() -> None:
    before = gc.get_threshold()
    with fewer_collections():
        assert gc.get_threshold()[0] >= 50 * before[0]
    assert gc.get_threshold() == before


def test_a_large_file_is_split_into_even_shards_in_whole_rounds_of_the_processes() -> None:
    replays = [(str(n), n) for n in range(2000)]
    assert [len(s) for s in split(replays, 250, 2)] == [250] * 8
    assert [len(s) for s in split(replays[:300], 250, 2)] == [150, 150]
    assert [len(s) for s in split(replays[:1000], 250, 3)] == [167] * 5 + [165]
    assert split(replays[:250], 250, 2) == [replays[:250]]
    assert [r for shard in split(replays[:1000], 250, 3) for r in shard] == replays[:1000]


def _p1_with_updates(
    ticket_id: str, opened: datetime, updates: int, every: timedelta = timedelta(minutes=20)
) -> RecordedTicket:
    told = [opened + every * n for n in range(1, updates + 1)]
    return RecordedTicket(
        ticket_id=ticket_id,
        priority="P1",
        opened_at=opened,
        account_id="acme",
        contacted_at=opened + timedelta(minutes=5),
        customer_updates=told,
        resolved_at=told[-1] + timedelta(minutes=5),
        confirmed_at=told[-1] + timedelta(minutes=30),
    )


async def _replay_alone(
    env: WorkflowEnvironment, books: Books, recorded: RecordedTicket, cached_cases: int = 10_000
) -> tuple[str, Replayed]:
    """One recorded ticket replayed on `env` under the books' baseline policy: its case id and end."""
    policy, case = books.policy("baseline"), case_id("baseline", recorded.ticket_id)
    replay = replay_of(case, recorded, policy, 0, recorded.last_instant())
    async with replay_worker(env.client, books, cached_cases=cached_cases):
        ends = await run_replays(env, [replay], lambda: None)
    return case, ends[case]


async def test_a_case_that_continues_as_new_plays_each_recorded_action_once(
    time_env: WorkflowEnvironment,
) -> None:
    """The actions not yet played go with the case into its next run, and only they; its writes go to
    the books from its own activations, with no local activity in its history."""
    policy = load_policy().model_copy(update={"continue_as_new_after_events": 100})
    opened = await time_env.get_current_time() + timedelta(hours=1)
    recorded = _p1_with_updates("L1", opened, 40)
    updates = recorded.customer_updates
    books = Books({"baseline": policy})
    case, end = await _replay_alone(time_env, books, recorded)

    assert end.closed and end.failure is None
    latest = await time_env.client.get_workflow_handle(case).fetch_history()
    first_run = latest.events[0].workflow_execution_started_event_attributes.continued_execution_run_id
    assert first_run
    first = await time_env.client.get_workflow_handle(case, run_id=first_run).fetch_history()
    markers = {e.marker_recorded_event_attributes.marker_name for e in [*first.events, *latest.events]}
    assert "core_local_activity" not in markers
    timeline = books.cases[case].timeline()
    told = [e.at for e in timeline if e.type == EventType.CUSTOMER_UPDATED]
    assert len(told) == len(updates)  # the test server's clock runs on while a timer's task is handled
    assert all(timedelta(0) <= t - u < timedelta(seconds=1) for t, u in zip(told, updates, strict=True))
    assert [e.type for e in timeline][-2:] == [EventType.CUSTOMER_CONFIRMED, EventType.CLOSED]


async def test_a_case_replayed_from_its_history_keeps_each_write_once(
    time_env: WorkflowEnvironment,
) -> None:
    """With no case cached, every activation replays the case from its history and makes its writes
    again: the books come out as from a worker that keeps it (a shard of its own, on its own server)."""
    policy = load_policy()
    # No update at the instant of a deadline, where the order of the two is not fixed.
    recorded = _p1_with_updates("E1", END - timedelta(days=2), 6, every=timedelta(minutes=25))
    kept = await replay_shard([("baseline", recorded)], {"baseline": policy}, END, lambda: None)

    opened = await time_env.get_current_time() + timedelta(hours=1)
    again = _p1_with_updates("E1", opened, 6, every=timedelta(minutes=25))
    books = Books({"baseline": policy})
    case, end = await _replay_alone(time_env, books, again, cached_cases=0)

    assert end.closed and end.failure is None
    once, evicted = kept.books[case], books.cases[case]
    assert [(e.seq, e.type) for e in evicted.timeline()] == [(e.seq, e.type) for e in once.timeline()]
    assert sorted(n.kind for n in evicted.notifications.values()) == sorted(
        n.kind for n in once.notifications.values()
    )
    assert evicted.status is not None and once.status is not None
    assert evicted.status.close_reason == once.status.close_reason
    assert evicted.seq == once.seq == evicted.timeline()[-1].seq


class _FullBooks(Books):
    def keep(self, changes: CaseChanges) -> list[str]:
        raise RuntimeError("the books are full")


async def test_a_write_to_the_books_that_fails_fails_its_replay_with_the_reason(
    time_env: WorkflowEnvironment,
) -> None:
    """A case would take the failed write for a store that failed for good and go on; the replay fails
    instead, so a simulator bug is never a quiet hole in the figures."""
    policy = load_policy()
    books = _FullBooks({"baseline": policy})
    opened = await time_env.get_current_time() + timedelta(hours=1)
    recorded = _p1_with_updates("F1", opened, 1)
    _, end = await asyncio.wait_for(_replay_alone(time_env, books, recorded), timeout=60)

    assert not end.closed
    assert end.failure is not None and "the books are full" in end.failure
    assert "write to the simulation's books failed" in end.failure
