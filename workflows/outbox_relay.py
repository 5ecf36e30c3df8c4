"""The outbox relay: delivers what cases left behind, on a Temporal Schedule.

A case never waits for a channel to come back: it closes or continues as new on time, and any row still
pending (or left mid-send by a deliverer that is gone) is this workflow's to deliver, exactly as the outbox
promises: claimed before each send, never sent twice through a channel that cannot recognise a copy.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.notifications import Notifier, RelayReport, RelayRequest

RELAY_WORKFLOW_TYPE = "OutboxRelayWorkflow"


@workflow.defn(name=RELAY_WORKFLOW_TYPE)
class OutboxRelayWorkflow:
    @workflow.run
    async def run(self, request: RelayRequest | None = None) -> RelayReport:
        return await workflow.execute_activity_method(
            Notifier.relay_outbox,
            request or RelayRequest(),
            start_to_close_timeout=timedelta(minutes=10),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(maximum_attempts=3),
            summary="Deliver notifications cases left pending",
        )
