"""One recorded ticket replayed: its case opened, and acted on, at the recorded instants.

The case is the real CaseWorkflow, started with a start delay so that it comes to life when its ticket
opened. Its recorded actions travel in its memo, and `RecordedActions`, an interceptor on the
simulation's worker only, plays them from inside the case: it sleeps on the case's own timers until each
action's instant and hands the action to the case's signal handler, as a signal would be handed. So a
replay costs its case's workflow tasks and no more; a replay workflow that started the case as a child
and signalled it each action cost as many again. A case still open at the horizon is cancelled there,
and counted as open. The same interceptor makes the case's local writes on the simulation's in-memory
books, in the case's own activation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, ClassVar, NoReturn

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ContinueAsNewInput,
    ExecuteWorkflowInput,
    HandleSignalInput,
    Interceptor,
    StartLocalActivityInput,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
    WorkflowOutboundInterceptor,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from workflows.models import (
        Cancel,
        CaseInput,
        CaseOutcome,
        CaseStatus,
        CloseReason,
        EventType,
        TimelineEntry,
    )

# How long after its last recorded action a resolved case may run on (follow-up window, reminders)
# before the replay ends it: longer than five business days over any holiday season.
HORIZON = timedelta(days=30)
ENDED = "the simulation ended with the case still open"
SCRIPT_MEMO = "abh-recorded-actions"


class Step(BaseModel):
    at: datetime
    action: str
    payload: dict[str, Any]
    field: str = ""
    """The ticket file's field that recorded it, to name in a refusal."""


class Script(BaseModel):
    """What a simulated case is to be told, and when; in its memo."""

    steps: list[Step]
    ends_at: datetime


class Replay(Script):
    """A ticket's case and its script; `ends_at` is the horizon (simulator/schedule.py)."""

    case_id: str
    ticket: CaseInput

    @property
    def opened_at(self) -> datetime:
        assert self.ticket.opened_at is not None
        return self.ticket.opened_at

    def script(self) -> Script:
        """Only the script goes into the memo."""
        return Script(steps=self.steps, ends_at=self.ends_at)

    def ended(self, outcome: CaseOutcome) -> Replayed:
        """A case that ends cancelled at the horizon was ended by the replay, and is still open."""
        by_replay = outcome.close_reason is CloseReason.CANCELLED and outcome.closed_at >= self.ends_at
        return Replayed(case_id=self.case_id, closed=not by_replay)


class Replayed(BaseModel):
    case_id: str
    closed: bool
    """Closed by the lifecycle itself before the horizon."""
    failure: str | None = None


LocalWrites = Mapping[str, Callable[..., Any]]
"""In-memory stand-ins for the case's local activities, by activity name, called with the case's
workflow id and the activity's arguments."""


class RecordedActions(Interceptor):
    """Plays each simulated case's script from inside the case (a case without one runs as it is), and
    runs the case's local activities found in `local_writes` in the case's own activation."""

    def __init__(self, local_writes: LocalWrites | None = None) -> None:
        writes = dict(local_writes or {})
        self._case_class = type("_PlayedCase", (_PlayedCase,), {"local_writes": writes})

    def workflow_interceptor_class(
        self, input: WorkflowInterceptorClassInput
    ) -> type[WorkflowInboundInterceptor] | None:
        return self._case_class


class _PlayedCase(WorkflowInboundInterceptor):
    local_writes: ClassVar[LocalWrites] = {}

    def init(self, outbound: WorkflowOutboundInterceptor) -> None:
        self._player: _Player | None = None
        self._broken: asyncio.Future[Exception] | None = None
        super().init(_CaseOutbound(outbound, self))

    async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
        script = workflow.memo_value(SCRIPT_MEMO, None, type_hint=Script)
        if script is None:
            return await self.next.execute_workflow(input)
        self._player = _Player(script, self.next)
        self._broken = asyncio.get_running_loop().create_future()
        # Nothing cancels a simulated case, so the case may run beside the player, off the primary task.
        case = asyncio.create_task(self.next.execute_workflow(input))
        player = asyncio.create_task(self._player.play())
        await workflow.wait([case, player, self._broken], return_when=asyncio.FIRST_COMPLETED)
        if self._broken.done():
            raise _failed("a write to the simulation's books failed", self._broken.result())
        if player.done() and (err := player.exception()) is not None:
            raise err if isinstance(err, Refused) else _failed("a recorded action could not be played", err)
        return await case

    def broke(self, err: Exception) -> None:
        """A write to the books failed: a bug of the simulator's, so the replay fails with it (the case
        would take it for a store that failed for good, and go on with a hole in its books)."""
        if self._broken is not None and not self._broken.done():
            self._broken.set_result(err)


class _CaseOutbound(WorkflowOutboundInterceptor):
    """The played case's calls out. A case that continues as new takes only the actions not yet played
    into its next run; a local write the simulation keeps in memory is made at once, with no activity to
    schedule, run, convert and resolve. The books keep each change once by its key, so a case replayed
    from its history after leaving the worker's cache writes nothing twice."""

    def __init__(self, next: WorkflowOutboundInterceptor, case: _PlayedCase) -> None:
        super().__init__(next)
        self._case = case

    def continue_as_new(self, input: ContinueAsNewInput) -> NoReturn:
        player = self._case._player
        if player is not None:
            memo = dict(input.memo if input.memo is not None else workflow.memo())
            memo[SCRIPT_MEMO] = player.rest()
            input.memo = memo
        self.next.continue_as_new(input)

    def start_local_activity(self, input: StartLocalActivityInput) -> workflow.ActivityHandle[Any]:
        write = self._case.local_writes.get(input.activity)
        if write is None:
            return self.next.start_local_activity(input)
        workflow_id = workflow.info().workflow_id

        async def made() -> Any:
            try:
                return write(workflow_id, *input.args)
            except Exception as err:
                self._case.broke(err)
                raise _failed("a write to the simulation's books failed", err) from err

        return workflow.ActivityHandle(made())


class _Player:
    def __init__(self, script: Script, case: WorkflowInboundInterceptor) -> None:
        self._script, self._case, self._played = script, case, 0

    async def play(self) -> None:
        for step in self._script.steps:
            await _until(step.at)
            await self._tell(step)
            self._played += 1
        await _until(self._script.ends_at)
        await self._tell(Step(at=self._script.ends_at, action=Cancel.action, payload=_END))

    def rest(self) -> Script:
        return self._script.model_copy(update={"steps": self._script.steps[self._played :]})

    async def _tell(self, step: Step) -> None:
        """As the SDK hands a signal to the case's dynamic handler: its name and its raw payloads. Unlike
        a signal, the action is not counted among the case's running handlers, and a bug it raises fails
        the case (recorded as the replay's failure) instead of retrying the workflow task forever. An
        action due at the very instant of one of the case's own deadlines may be applied before or after
        it: both are the case's timers, due together.

        An action the case refuses is kept in its timeline as `rejected` and changes nothing: a replay
        that went on without it would report figures for a month that did not happen, so it fails, with
        the case's reason (the ticket file is checked for what can be known without the case)."""
        told = _last_seq()
        raw: Sequence[RawValue] = [RawValue(workflow.payload_converter().to_payload(step.payload))]
        await self._case.handle_signal(
            HandleSignalInput(signal=step.action, args=[step.action, raw], headers={})
        )
        refused = _rejected_since(told)
        if refused is not None:
            what = (
                f"the recorded {step.field} ({step.action})" if step.field else f"the replay's {step.action}"
            )
            raise Refused(f"the case refused {what}: {refused.detail}", non_retryable=True)


class Refused(ApplicationError):
    """A recorded action the case refused: the replay's failure, with the case's reason."""


_END = Cancel(reason=ENDED).model_dump(mode="json")


def _last_seq() -> int:
    timeline = workflow.instance().case.timeline
    return timeline[-1].seq if timeline else 0


def _rejected_since(seq: int) -> TimelineEntry | None:
    """The case's refusal among its entries after `seq`, read from the newest back."""
    case: CaseStatus = workflow.instance().case
    for entry in reversed(case.timeline):
        if entry.seq <= seq:
            return None
        if entry.type == EventType.REJECTED:
            return entry
    return None


def _failed(what: str, err: BaseException) -> ApplicationError:
    return ApplicationError(f"{what}: {err!r}", non_retryable=True)


async def _until(at: datetime) -> None:
    wait = at - workflow.now()
    if wait > timedelta(0):
        await workflow.sleep(wait)
