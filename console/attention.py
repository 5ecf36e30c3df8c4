"""`starter.py attention`: every stuck thing in one place, for an operator.

From Temporal: cases flagged CaseNeedsAttention (something of theirs keeps failing and is retried in
rounds), with what their `status` says and the activities Temporal shows pending; `--all-running` also
looks at every running case's pending activities, for cases opened before the flag existed. From
PostgreSQL: notifications failed or in doubt, sends abandoned mid-way, and timeline entries stored in a
safe form after a data error.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, timedelta

import asyncpg
from temporalio.client import Client, WorkflowExecution
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


async def attention_report(
    client: Client, pool: asyncpg.Pool, *, all_running: bool = False
) -> AttentionReport:
    return AttentionReport(
        cases=await stuck_cases(client, all_running=all_running),
        notifications=await outbox.needing_attention(pool),
        abandoned_sends=await outbox.abandoned_sends(pool),
        damaged_entries=await outbox.damaged_entries(pool),
    )
