"""The operator's read side as gauges: outbox rows by state and running cases needing attention.

They describe the whole system, not one case, so the worker process reads them on a timer from
PostgreSQL and Temporal visibility (workflows cannot), and sets them on the runtime's meter, beside the
SDK's metrics. Every worker reports the same values: aggregate them with `max`, not `sum`.
"""

from __future__ import annotations

import asyncio

import asyncpg
import structlog
from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.service import RPCError

from console.outbox import rows_by_state
from workflows import search
from workflows.models import WORKFLOW_TYPE

log = structlog.get_logger(__name__)

OUTBOX_ROWS = "abh_outbox_rows"
NEEDING_ATTENTION = "abh_cases_needing_attention"
NEEDING_ATTENTION_QUERY = " AND ".join(
    (
        f'WorkflowType = "{WORKFLOW_TYPE}"',
        'ExecutionStatus = "Running"',
        f"{search.CASE_NEEDS_ATTENTION.name} = true",
    )
)


async def refresh(meter: MetricMeter, pool: asyncpg.Pool, client: Client) -> None:
    """Read both once and set them."""
    outbox = meter.create_gauge(OUTBOX_ROWS, "Notification outbox rows by delivery state")
    for state, count in (await rows_by_state(pool)).items():
        outbox.set(count, {"state": state})
    needing = (await client.count_workflows(NEEDING_ATTENTION_QUERY)).count
    meter.create_gauge(NEEDING_ATTENTION, "Running cases flagged CaseNeedsAttention").set(needing)


async def keep_current(meter: MetricMeter, pool: asyncpg.Pool, client: Client, every: float) -> None:
    """Refresh every `every` seconds until cancelled; a failed read keeps the last values and is logged."""
    while True:
        try:
            await refresh(meter, pool, client)
        except (OSError, asyncpg.PostgresError, RPCError) as err:
            log.warning("gauges not refreshed", error=str(err))
        await asyncio.sleep(every)
