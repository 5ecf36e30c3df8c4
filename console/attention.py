"""`starter.py attention`: every stuck thing in one place, for an operator.

From Temporal: cases whose run failed (with the reason), and cases flagged CaseNeedsAttention (something
of theirs keeps failing and is retried in rounds), with what their `status` says and the activities
Temporal shows pending; `--all-running` also looks at every running case's pending activities, for cases
opened before the flag existed. From PostgreSQL: notifications failed or in doubt, sends abandoned
mid-way, and timeline entries stored in a
safe form after a data error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import asyncpg
from temporalio.client import Client, WorkflowExecution, WorkflowHistoryEventFilterType
from temporalio.service import RPCError

from console import outbox
from console.read_models import AttentionReport, PendingActivity, StuckCase
from console.views import row_of
from workflows import search
from workflows.case import CaseWorkflow
from workflows.models import WORKFLOW_TYPE
from workflows.safe_text import one_line

# An activity on its third attempt has failed twice: worth a look.
RETRYING_FROM_ATTEMPT = 3
QUERY_TIMEOUT = timedelta(seconds=5)
CLOSE_EVENT = WorkflowHistoryEventFilterType.CLOSE_EVENT


async def _look_at(client: Client, workflow_id: str, ticket_id: str, flagged: bool) -> StuckCase | None:
    handle = client.get_workflow_handle(workflow_id)
    raw = (await handle.describe()).raw_description
    activities = [
        PendingActivity(
            activity_type=a.activity_type.name,
            attempt=a.attempt,
            last_failure=one_line(a.last_failure.message, 300) if a.HasField("last_failure") else None,
            last_attempt_at=(
                a.last_started_time.ToDatetime(tzinfo=UTC) if a.HasField("last_started_time") else None
            ),
        )
        for a in raw.pending_activities
        if flagged or a.attempt >= RETRYING_FROM_ATTEMPT
    ]
    if not flagged and not activities:
        return None
    stuck = StuckCase(workflow_id=workflow_id, ticket_id=ticket_id, activities=activities)
    try:
        status = await handle.query(CaseWorkflow.status, rpc_timeout=QUERY_TIMEOUT)
        stuck.troubles = status.attention
    except (TimeoutError, RPCError) as err:
        stuck.note = f"status not available: {one_line(str(err), 200)}"
    return stuck


async def stuck_cases(client: Client, *, all_running: bool = False, limit: int = 200) -> list[StuckCase]:
    query = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Running"'
    if not all_running:
        query += " AND CaseNeedsAttention = true"
    executions = [e async for e in client.list_workflows(query, limit=limit)]
    gate = asyncio.Semaphore(16)

    async def one(execution: WorkflowExecution) -> StuckCase | None:
        row = row_of(execution)
        flagged = bool(execution.typed_search_attributes.get(search.CASE_NEEDS_ATTENTION))
        async with gate:
            return await _look_at(client, row.workflow_id, row.ticket_id, flagged=flagged)

    found = await asyncio.gather(*(one(e) for e in executions))
    return [c for c in found if c is not None and (c.troubles or c.activities or c.note)]


async def failed_cases(client: Client, *, limit: int = 50) -> list[StuckCase]:
    """Cases whose run failed (a malformed start that reached the workflow past the checks, an unknown
    calendar): nothing runs for them any more, and their search attributes still read as they began."""
    query = f'WorkflowType = "{WORKFLOW_TYPE}" AND ExecutionStatus = "Failed"'
    found = []
    async for execution in client.list_workflows(query, limit=limit):
        row = row_of(execution)
        if (await client.get_workflow_handle(row.workflow_id).describe()).run_id != execution.run_id:
            continue  # reset or opened again since: its current run is what counts
        why = "the case's run failed"
        handle = client.get_workflow_handle(row.workflow_id, run_id=execution.run_id)
        async for event in handle.fetch_history_events(event_filter_type=CLOSE_EVENT):
            if event.HasField("workflow_execution_failed_event_attributes"):
                why = event.workflow_execution_failed_event_attributes.failure.message or why
        found.append(StuckCase(workflow_id=row.workflow_id, ticket_id=row.ticket_id, note=one_line(why, 300)))
    return found


async def attention_report(
    client: Client, pool: asyncpg.Pool, *, all_running: bool = False
) -> AttentionReport:
    return AttentionReport(
        cases=await stuck_cases(client, all_running=all_running) + await failed_cases(client),
        notifications=await outbox.needing_attention(pool),
        abandoned_sends=await outbox.abandoned_sends(pool),
        damaged_entries=await outbox.damaged_entries(pool),
    )
