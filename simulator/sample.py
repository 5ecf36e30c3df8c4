"""A month of made-up tickets, the same for the same seed: for the benchmark and a first look at the
simulator without a ticket file (`starter.py simulate --sample 1000`)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from simulator.schedule import engaged_at
from simulator.tickets import RecordedTicket
from workflows.clocks import clocks_for, engagement_start
from workflows.models import Priority
from workflows.policy import Policy, load_policy

# Shares of the priorities, and how long (minutes) people take for each step after the one before.
PRIORITIES = ((Priority.P1, 0.1), (Priority.P2, 0.25), (Priority.P3, 0.4), (Priority.P4, 0.25))
STEP_MINUTES = {
    "contacted_at": (2, 30),
    "data_verified_at": (5, 60),
    "troubleshooting_at": (10, 90),
    "resolved_at": (5, 150),
    "confirmed_at": (30, 2000),
}
UPDATE_EVERY_MINUTES = (20, 35)


def month_of_tickets(
    count: int, start: datetime = datetime(2026, 11, 2, tzinfo=UTC), seed: int = 7
) -> list[RecordedTicket]:
    """`count` tickets opened over 30 days from `start`, acted on from their engagement under the
    shipped policy: most followed to a confirmed close, some left unconfirmed, a few paused,
    re-prioritised or never resolved (a P2-P4: a P1 is always worked to its resolution)."""
    rnd = random.Random(seed)
    policy = load_policy()
    tickets = []
    for n in range(count):
        opened = start + timedelta(minutes=rnd.uniform(0, 30 * 24 * 60))
        priority = rnd.choices([p for p, _ in PRIORITIES], [w for _, w in PRIORITIES])[0]
        row: dict[str, object] = {
            "ticket_id": f"T-{n + 1:05d}",
            "priority": priority,
            "opened_at": opened,
            "account_id": f"account-{rnd.randrange(40):02d}",
        }
        at = engaged = engagement_start(clocks_for(policy, priority, None), opened)
        for name, (low, high) in STEP_MINUTES.items():
            if name == "resolved_at" and rnd.random() < 0.05:
                break
            if name == "confirmed_at" and rnd.random() < 0.2:
                break
            at += timedelta(minutes=rnd.uniform(low, high))
            row[name] = at
            if name == "data_verified_at" and rnd.random() < 0.1:
                row["paused_at"] = at + timedelta(minutes=5)
                at += timedelta(minutes=rnd.uniform(30, 600))
                row["resumed_at"] = at
        if priority is Priority.P1:
            row["customer_updates"] = _updates(rnd, engaged, row.get("resolved_at", at))
        if rnd.random() < 0.05 and "resolved_at" in row:
            changed = opened + timedelta(minutes=rnd.uniform(1, 30))
            row["priority_changed_at"] = changed
            row["new_priority"] = Priority.P1 if priority is not Priority.P1 else Priority.P2
            if row["new_priority"] is Priority.P1:
                _raised_to_p1(row, engaged, changed, policy, random.Random(f"{seed}:{n}"))
        if priority is Priority.P1 and "resolved_at" not in row:
            _worked_to_resolution(row, engaged, at, random.Random(f"{seed}:{n}:worked"))
        tickets.append(RecordedTicket.model_validate(row))
    return tickets


def _raised_to_p1(
    row: dict[str, object], engaged: datetime, changed: datetime, policy: Policy, rnd: random.Random
) -> None:
    """A ticket raised to P1 is worked as one from its engagement as a P1: a queued one engages at the
    change, so its steps come as much earlier, and the customer is updated every half hour from then
    until it is resolved. (Its own random numbers, so the other tickets of the month stay as they were.)"""
    as_p1 = engaged_at(RecordedTicket.model_validate(row), policy)
    earlier = max(engaged - as_p1, timedelta(0))
    for name in (*STEP_MINUTES, "paused_at", "resumed_at"):
        at = row.get(name)
        if isinstance(at, datetime):
            row[name] = at - earlier
    row["customer_updates"] = _updates(rnd, max(changed, as_p1), row["resolved_at"])


def _worked_to_resolution(
    row: dict[str, object], engaged: datetime, troubleshot: datetime, rnd: random.Random
) -> None:
    """A P1 is worked until it is resolved, its customer updated all along: a P1 left open for weeks
    with nobody telling its customer anything is not a month any team records, and its replay would warn
    and breach the update cycle every half hour to the window's end (docs/performance.md). Its own
    random numbers, so the other tickets stay as they were."""
    resolved = troubleshot + timedelta(minutes=rnd.uniform(*STEP_MINUTES["resolved_at"]))
    row["resolved_at"] = resolved
    if rnd.random() >= 0.2:
        row["confirmed_at"] = resolved + timedelta(minutes=rnd.uniform(*STEP_MINUTES["confirmed_at"]))
    told = row["customer_updates"]
    assert isinstance(told, list)
    row["customer_updates"] = [*told, *_updates(rnd, told[-1] if told else engaged, resolved)]


def _updates(rnd: random.Random, engaged: datetime, until: object) -> list[datetime]:
    """A P1's progress updates, every 20 to 35 minutes from engagement until it is resolved."""
    assert isinstance(until, datetime)
    updates, at = [], engaged
    while (at := at + timedelta(minutes=rnd.uniform(*UPDATE_EVERY_MINUTES))) < until:
        updates.append(at)
    return updates
