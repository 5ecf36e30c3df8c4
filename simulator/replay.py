"""TicketReplay: one recorded ticket replayed, its case opened and acted on at the recorded instants.

The replay is a workflow too, so the time-skipping server runs a whole month of tickets on its own timers:
each replay sleeps until its ticket was opened, starts the real CaseWorkflow as a child, and signals it
each action when its instant comes. A case still open at the horizon is cancelled, and counted as open.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError, ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from workflows.models import WORKFLOW_TYPE, Cancel, CaseInput

REPLAY_WORKFLOW = "TicketReplay"
# How long after its last recorded action a case may run on (follow-up window, reminders) before the
# replay ends it: longer than five business days over any holiday season.
HORIZON = timedelta(days=30)
ENDED = "the simulation ended with the case still open"


class Step(BaseModel):
    at: datetime
    action: str
    payload: dict[str, Any]


class Replay(BaseModel):
    case_id: str
    ticket: CaseInput
    steps: list[Step]

    @property
    def opened_at(self) -> datetime:
        assert self.ticket.opened_at is not None
        return self.ticket.opened_at

    @property
    def horizon(self) -> datetime:
        return max([self.opened_at, *(s.at for s in self.steps)]) + HORIZON


class Replayed(BaseModel):
    case_id: str
    closed: bool
    """Closed by the lifecycle itself before the horizon."""
    started_late: timedelta = timedelta(0)
    failure: str | None = None


@workflow.defn(name=REPLAY_WORKFLOW)
class TicketReplay:
    @workflow.run
    async def run(self, replay: Replay) -> Replayed:
        late = max(workflow.now() - replay.opened_at, timedelta(0))
        await _until(replay.opened_at)
        case = await workflow.start_child_workflow(WORKFLOW_TYPE, replay.ticket, id=replay.case_id)
        for step in replay.steps:
            await _until(step.at)
            if case.done():
                break
            try:
                await case.signal(step.action, step.payload)
            except ApplicationError:
                break  # the case closed before the step (the candidate's follow-up window was shorter)
        closed = True
        try:
            await workflow.wait_condition(case.done, timeout=replay.horizon - workflow.now())
        except TimeoutError:
            closed = False
            await case.signal(Cancel.action, Cancel(reason=ENDED).model_dump())
        try:
            await case
        except ChildWorkflowError as err:
            cause = err.cause or err
            return Replayed(case_id=replay.case_id, closed=False, started_late=late, failure=str(cause))
        return Replayed(case_id=replay.case_id, closed=closed, started_late=late)


async def _until(at: datetime) -> None:
    wait = at - workflow.now()
    if wait > timedelta(0):
        await workflow.sleep(wait)
