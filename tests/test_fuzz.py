"""Hundreds of generated bad actions against live cases: nothing fails, nothing is lost."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from stack.cases import update_action
from tests.cases import (
    case_worker,
    failed_tasks,
    quiet,
    round_the_clock_policy,
    settled,
    status_when,
    ticket,
)
from workflows.models import ACTIONS, CaseStatus, Phase
from workflows.rules import Refused

WEIRD = ["", " ", "\x00", "🧨" * 50, "Ω≈ç√∫µ≤≥÷", "' OR 1=1 --", "x" * 20_000, "<script>alert(1)</script>"]


def bad_payload(rng: random.Random, name: str, phase: Phase) -> tuple[str, Any]:
    """An action the case must refuse: wrong types, missing or unknown fields, unknown values, huge or
    odd strings, unknown action names, or a well-formed action in the wrong phase."""
    kind = rng.randrange(9)
    if kind == 0:
        return name, rng.choice([42, 3.5, "text", [1, 2], True])
    if kind == 1:
        return name, {rng.choice(WEIRD[3:]) or "field": rng.choice(WEIRD)}
    if kind == 2:
        return "milestone_verified", {"milestone": rng.choice(["root_cause", "", "FIRST_RESPONSE", "🧨"])}
    if kind == 3:
        return "change_priority", {"priority": rng.choice(["P0", "P5", "p1", 1, None])}
    if kind == 4:
        return rng.choice(["add_note", "resolved"]), {
            "text" if name == "add_note" else "summary": "y" * 10_001
        }
    if kind == 5:
        return rng.choice(["escalate", "reopen", "close", "🧨"]), {"text": "hello"}
    if kind == 6:
        wrong = [
            n
            for n in ("customer_confirmed", "customer_rejected", "customer_replied")
            if phase is Phase.ENGAGED
        ]
        return rng.choice(wrong or ["resolved"]), {}
    if kind == 7:
        return "add_note", {"text": "before\x00after"}
    return "assign", {"assignee": rng.choice([None, 7, "", "z" * 201])}


def rejected_in(status: CaseStatus) -> int:
    return sum(1 for e in status.timeline if e.type == "rejected")


@pytest.mark.timeout(240)
async def test_generated_bad_actions_never_break_a_case(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    rng = random.Random(20261127)
    async with case_worker(dev_env, pool, task_queue, round_the_clock_policy()) as cases:
        handles = [await cases.open(ticket(f"{ticket_id}-{n}", "P3")) for n in range(3)]
        for h in handles:
            await status_when(h, lambda s: s.phase is Phase.ENGAGED)
        ids = [f"{ticket_id}-{n}" for n in range(3)]

        for h in handles:
            await quiet(h)
        lengths = [len([e async for e in h.fetch_history_events()]) for h in handles]
        refusals = 0
        for _ in range(150):
            n = rng.randrange(3)
            name, payload = bad_payload(rng, rng.choice(list(ACTIONS)), Phase.ENGAGED)
            if name not in ACTIONS:
                continue
            with pytest.raises(Refused):
                await update_action(dev_env.client, ids[n], name, payload)
            refusals += 1
        assert refusals > 100
        assert [len([e async for e in h.fetch_history_events()]) for h in handles] == lengths

        sent: list[Counter[str]] = [Counter() for _ in handles]
        for _ in range(250):
            n = rng.randrange(3)
            name, payload = bad_payload(rng, rng.choice(list(ACTIONS)), Phase.ENGAGED)
            await dev_env.client.get_workflow_handle(handles[n].id).signal(name, payload)
            sent[n][name] += 1

        for n, h in enumerate(handles):
            expected = sum(sent[n].values())

            def all_rejected(s: CaseStatus, expected: int = expected) -> bool:
                return rejected_in(s) >= expected

            await status_when(h, all_rejected)
            status = await settled(h, pool)
            assert status.phase is Phase.ENGAGED
            assert await failed_tasks(h) == 0
            stored = await pool.fetch(
                "SELECT data->>'action' AS action FROM case_events"
                " WHERE workflow_id = $1 AND type = 'rejected'",
                h.id,
            )
            assert Counter(r["action"] for r in stored) == sent[n]
        await cases.terminate_running()
