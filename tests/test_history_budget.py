"""What a case costs in history: one marker per change, one timer per deadline, a bounded lifecycle.

Every event of a case's history is a write on the Temporal server and a step to replay; these tests keep
the shape that bench.history and bench.lifecycle measure from going back."""

from __future__ import annotations

import collections
from typing import Any

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from stack.cases import signal_action
from stack.samples import escalated_p1_lifecycle
from tests.cases import case_worker, settled, status_when, ticket
from workflows.case import CaseWorkflow
from workflows.models import Phase, case_workflow_id


async def kinds(handle: WorkflowHandle[CaseWorkflow, Any]) -> collections.Counter[EventType.ValueType]:
    return collections.Counter(e.event_type for e in (await handle.fetch_history()).events)


async def test_notes_start_no_timer_and_no_activity(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await settled(handle, pool)
        before = await kinds(handle)
        for n in range(3):
            await signal_action(time_env.client, ticket_id, "add_note", {"text": f"note {n}"})
        status = await status_when(handle, lambda s: len([e for e in s.timeline if e.type == "note"]) == 3)
        await settled(handle, pool)
        after = await kinds(handle)
    assert status.phase is Phase.ENGAGED
    for kind in (EventType.EVENT_TYPE_TIMER_STARTED, EventType.EVENT_TYPE_TIMER_CANCELED):
        assert after[kind] == before[kind], EventType.Name(kind)
    assert after[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED] == 0
    assert after[EventType.EVENT_TYPE_MARKER_RECORDED] > before[EventType.EVENT_TYPE_MARKER_RECORDED]


async def test_an_escalated_p1_lifecycle_stays_within_80_events(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(time_env, pool, task_queue) as cases:
        outcome = await escalated_p1_lifecycle(time_env, ticket_id, task_queue=cases.task_queue)
        handle = time_env.client.get_workflow_handle_for(CaseWorkflow.run, case_workflow_id(ticket_id))
        counted = await kinds(handle)
        tickets = await pool.fetchval("SELECT count(*) FROM escalations WHERE workflow_id = $1", handle.id)
    assert outcome.escalations and tickets == 1
    assert sum(counted.values()) <= 80, {EventType.Name(k): v for k, v in counted.items()}
    assert counted[EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED] == 0
