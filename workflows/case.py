"""CaseWorkflow: one support ticket, from ingestion to confirmed closure.

The run method is the lifecycle of the seed: ingest, triage, engage and contact the customer, work the
milestones under the escalation clock, follow up, close. Actions arrive as signals or updates
(workflows/actions.py); their handlers only change the case and add to its journal (timeline entries,
notifications, Tech Lead tickets), which a writer beside the lifecycle stores and delivers
(workflows/journal.py): no write or delivery ever holds a clock.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, NoReturn

from temporalio import workflow
from temporalio.exceptions import ApplicationError

from workflows import clocks, cycles, events, formats, messages, rules, sla
from workflows.actions import CaseActions, handles
from workflows.clocks import CaseClocks, Due, DueKind
from workflows.journal import (
    ACTIVITY_TIMEOUT,
    ONE_WRITE_PER_CHANGE,
    PATIENT,
    QUIET_END,
    WRITE_BESIDE_LIFECYCLE,
    CaseJournal,
    Unwritten,
    life_key,
)

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, Field, ValidationError

    from activities.case_store import TechLeadTicket
    from activities.policy_source import PolicySource
    from workflows.models import (
        CLOCK_SKEW,
        ESCALATION_CLOCK,
        WORKFLOW_TYPE,
        ActionPayload,
        AddNote,
        Assign,
        Cancel,
        CaseInput,
        CaseOutcome,
        CaseStatus,
        ChangePriority,
        CloseReason,
        CustomerConfirmed,
        CustomerContacted,
        CustomerRejected,
        CustomerReplied,
        CustomerUpdated,
        CycleState,
        Escalation,
        EscalationAcknowledged,
        Milestone,
        MilestoneState,
        MilestoneStatus,
        MilestoneVerified,
        Pause,
        Phase,
        Priority,
        RecurringMilestone,
        Resolved,
        SlaClockEvent,
        SlaEventKind,
        TimelineEntry,
        WaitingOnCustomer,
    )
    from workflows.policy import EscalationLevel, Policy, Role

# A P1 raised from a lower priority gets the P1 contact: the call and the TAM's word.
CONTACT_ON_RAISE = "contact-when-raised-to-p1"
# The TAM hears of the resolution when it happens, not at the close.
TAM_TOLD_AT_RESOLUTION = "tam-told-at-resolution"
# A milestone already past due is breached without a 75% warning first.
NO_LATE_WARNINGS = "no-warning-past-due"
# Escalations wait for their owner's acknowledgement: told again, then the next level raised early.
ACKNOWLEDGED_ESCALATIONS = "acknowledged-escalations"
# Recurring milestones (a P1 customer update every 30 minutes) run in cycles while engaged.
RECURRING_MILESTONES = "recurring-milestones"
# Every SLA clock's start, pause, resume, retarget, fulfilment and breach is recorded as an event.
SLA_EVENTS = "sla-events"
# A timer whose instant has come is left to fire instead of being cancelled: cancelling it races its
# firing (Temporal's time-skipping test server refuses such a completion), and it costs a command.
DUE_TIMERS_FIRE = "due-timers-fire"
# A ticket's opened_at a little ahead of the server's clock (the sender's clock runs fast) is taken as
# the moment the case arrived, so a P1 is not queued until its own opening.
OPENED_AT_NOT_AHEAD = "opened-at-not-ahead"
# A case raised to P1 moves from the team queue to on-call in any open phase, and only an engaged one is
# called at once: a queued one is called as it engages, a resolved one waiting on its customer not at all.
P1_OWNER_WHEN_RAISED = "p1-owner-when-raised"
# Update ids handed to the next run: enough to cover every retry of the last hours' actions, small beside
# the payload limit (the API's ids are at most about 130 characters).
ANSWERED_KEPT = 200
# The state handed to the next run stays well under Temporal's 2 MB payload limit: a backlog of unwritten
# changes bigger than this (a long database outage) postpones the continue-as-new.
HAND_ON_BYTES = 512 * 1024


class ActionRefused(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, type="ActionRefused", non_retryable=True)


class InvalidCaseInput(ApplicationError):
    def __init__(self, message: str) -> None:
        super().__init__(message, type="InvalidCaseInput", non_retryable=True)


class CarriedCase(BaseModel):
    """Everything a case needs to go on in a new run after continue-as-new."""

    status: CaseStatus
    policy: Policy
    seq: int
    unwritten: Unwritten = Field(default_factory=Unwritten)
    answered: list[str] = Field(default_factory=list)
    """The latest update ids the case answered, oldest first: Temporal forgets them at the continue-as-new,
    and a caller sending one again (a lost answer, a retried webhook) must get an answer, not a second
    action."""


@workflow.defn(name=WORKFLOW_TYPE)
class CaseWorkflow(CaseActions):
    @workflow.init
    def __init__(self, *args: Any) -> None:
        """Arguments: the ticket, and after a continue-as-new the carried case. Taken loosely so that
        any malformed start fails the case with a clear error instead of failing workflow tasks."""
        self._invalid: str | None = None
        self._case: CaseStatus | None = None
        self._policy: Policy | None = None
        self._clocks: CaseClocks | None = None
        self._journal = CaseJournal()
        self._answered_ids: list[str] = []
        self._answered_earlier: frozenset[str] = frozenset()
        if len(args) == 2 and args[1] is not None:
            carried = CarriedCase.model_validate(args[1])
            self._case, self._policy = carried.status, carried.policy
            self._journal = CaseJournal(carried.seq, carried.unwritten)
            self._answered_ids = list(carried.answered)
            self._answered_earlier = frozenset(carried.answered)
            calendar = carried.status.ticket.customer.calendar
            self._clocks = clocks.clocks_for(carried.policy, carried.status.priority, calendar)
        elif len(args) > 1:
            self._invalid = f"invalid case input: expected one ticket, got {len(args)} arguments"
        else:
            self._case = self._new_case(args[0] if args else None)
        self._next: Due | None = None
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None
        self._clocks_moved = False
        self._register_updates()

    def _new_case(self, ticket: Any) -> CaseStatus | None:
        """The case for a new ticket; None, with the reason kept, when the input is invalid."""
        try:
            parsed = CaseInput.model_validate(ticket)
        except ValidationError as err:
            self._invalid = f"invalid case input: {rules.field_errors(err)}"
            return None
        if parsed.opened_at is not None and parsed.opened_at > workflow.now() + CLOCK_SKEW:
            self._invalid = f"invalid case input: opened_at: {parsed.opened_at.isoformat()} is in the future"
            return None
        return CaseStatus(
            workflow_id=workflow.info().workflow_id,
            ticket=parsed,
            priority=parsed.priority,
            phase=Phase.TRIAGE,
            opened_at=parsed.opened_at or workflow.now(),
            assignee=parsed.assignee,
        )

    # The lifecycle.

    @workflow.run
    async def run(self, *args: Any) -> CaseOutcome:
        if self._invalid:
            raise InvalidCaseInput(self._invalid)
        quiet_end = workflow.patched(QUIET_END)
        lean = quiet_end or workflow.patched(ONE_WRITE_PER_CHANGE)
        if lean or workflow.patched(WRITE_BESIDE_LIFECYCLE):
            self._begin_life(lean, quiet_end)
        if self._policy is None and self.case.opened_at > workflow.now():
            self._arrived_early()
        if self._policy is None:
            await self._ingest()
        await self._triage()
        while self.case.phase is not Phase.CLOSED:
            await self._troubleshoot()
            await self._follow_up()
        await self._drain()
        return self._outcome()

    def _begin_life(self, lean: bool, quiet_end: bool) -> None:
        """Write the journal beside the lifecycle; key this life's rows on the run id it began with. A
        continued run keeps the life it carries; a reset run begins a new one (Temporal keeps the chain's
        first run id through a reset, so a reset is told by a run id other than its history's own), so a
        reset case, like a ticket opened again, writes rows of its own."""
        case = self.case
        info = workflow.info()
        reset = info.run_id != info.original_execution_run_id
        if self._policy is None or (case.life and reset):
            case.life = info.run_id
        self._journal.start(lambda: self.case, lean=lean, quiet_end=quiet_end)

    def _arrived_early(self) -> None:
        """A ticket opened a little ahead of the server's clock (within CLOCK_SKEW: the sender's clock
        runs fast) is taken as opened when it arrived. Asked before the policy's snapshot: asked after its
        local activity, the marker landed in a workflow task of its own, and the recording did not replay."""
        if self._taken(OPENED_AT_NOT_AHEAD):
            self.case.opened_at = workflow.now()

    async def _ingest(self) -> None:
        """Snapshot the policy, assign the case and record it."""
        snapshot = workflow.execute_local_activity_method if self._lean else workflow.execute_activity_method
        self._policy = await snapshot(
            PolicySource.current_policy,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=PATIENT,
            summary="Snapshot the support policy",
        )
        case = self.case
        calendar = case.ticket.customer.calendar
        if calendar is not None and calendar not in self.policy.calendars:
            known = ", ".join(sorted(self.policy.calendars))
            # Kept, so that `status` on the failed case says why instead of showing a case in triage.
            self._invalid = (
                f"invalid case input: customer.calendar: unknown calendar {calendar!r}; known: {known}"
            )
            raise InvalidCaseInput(self._invalid)
        self._clocks = clocks.clocks_for(self.policy, case.priority, calendar)
        case.milestones = [
            MilestoneStatus(name=m, target=self.policy.for_priority(case.priority).targets[m])
            for m in Milestone
        ]
        roster = self.policy.roster
        case.assignee = case.assignee or (
            roster.on_call_at(workflow.now()) if case.priority is Priority.P1 else roster.team_queue
        )
        self._publish(events.opened(case))
        self._publish(events.assigned(case.assignee))
        self._sla_moment(lambda: sla.milestones_started(case))
        if not self._lean:
            await self._sync()

    async def _triage(self) -> None:
        """P1 engages at once; P2-P4 at once in business hours, else queued until the next opening."""
        case = self.case
        if case.phase is Phase.TRIAGE:
            start = clocks.engagement_start(self.clocks, case.opened_at)
            if start <= workflow.now():
                self._begin_engagement(start)
                return
            case.phase = Phase.QUEUED
            case.queued_until = start
            self._publish(events.queued(start))
        await self._run_clocks_while(Phase.QUEUED)

    async def _troubleshoot(self) -> None:
        """Milestone warnings and breaches and the escalation ladder, until resolved or cancelled."""
        await self._run_clocks_while(Phase.ENGAGED)

    async def _follow_up(self) -> None:
        """Ask the customer to confirm; close on confirmation or when the window ends, reopen on rejection."""
        case = self.case
        if case.phase is not Phase.AWAITING_CONFIRMATION:
            return
        if case.follow_up_sent_at is None:
            now = workflow.now()
            case.reminder_due_at, case.confirmation_due_at = clocks.follow_up_deadlines(
                self.policy, self.clocks, now
            )
            self._publish(events.follow_up_sent(case.confirmation_due_at))
            case.follow_up_sent_at = now
            await self._sync()
        await self._run_clocks_while(Phase.AWAITING_CONFIRMATION, until=lambda: case.confirmed_at is not None)
        if case.phase is Phase.AWAITING_CONFIRMATION and case.confirmed_at is not None:
            self._close(CloseReason.CONFIRMED, events.CONFIRMED)

    # Clocks.

    async def _run_clocks_while(self, phase: Phase, until: Callable[[], bool] = lambda: False) -> None:
        """Fire the case's due clocks in order while it stays in `phase`; a changed clock re-arms the wait."""
        while self.case.phase is phase and not until():
            if self._history_is_long():
                await self._continue_as_new()
            now = workflow.now()
            clocks.refresh_due_instants(self.case, self.policy, self.clocks, now)
            late_warnings = not self._since(NO_LATE_WARNINGS)
            due = self._next = clocks.next_due(self.case, self.policy, self.clocks, now, late_warnings)
            if due is not None and due.at <= now:
                await self._fire(due)
                continue
            await self._wait(lambda: self.case.phase is not phase or until(), due)

    async def _wait(self, done: Callable[[], bool], due: Due | None) -> None:
        """Sleep until `done`, the due instant, or news to record (an action arrived)."""
        await self._sync()
        if done() or self._clocks_moved:
            self._clocks_moved = False
            return
        journal = self._journal

        def woken() -> bool:
            return done() or self._clocks_moved or (journal.pending and not journal.beside)

        if self._lean:
            timer = self._arm(due)
            await workflow.wait_condition(lambda: woken() or (timer is not None and timer.done()))
        else:
            timeout = None if due is None else max(due.at - workflow.now(), timedelta(milliseconds=1))
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    woken, timeout=timeout, timeout_summary=due.summary() if due else None
                )
        self._clocks_moved = False

    def _arm(self, due: Due | None) -> asyncio.Task[None] | None:
        """One durable timer for the next due instant, kept while that instant stays the same: an
        action that moves no deadline costs no timer."""
        if self._timer is not None and (due is None or due.at != self._timer_at):
            assert self._timer_at is not None
            if self._timer_at > workflow.now() or not self._taken(DUE_TIMERS_FIRE):
                self._timer.cancel()
            self._timer = None
        if due is not None and self._timer is None:
            wait = max(due.at - workflow.now(), timedelta(milliseconds=1))
            self._timer_at = due.at
            self._timer = asyncio.create_task(workflow.sleep(wait, summary=due.summary()))
        return self._timer

    async def _fire(self, due: Due) -> None:
        match due.kind:
            case DueKind.ENGAGE:
                self._begin_engagement(due.at)
            case DueKind.WARN:
                self._warn(Milestone(due.subject))
            case DueKind.BREACH:
                self._breach(Milestone(due.subject))
            case DueKind.ESCALATE:
                if self._journal.beside:
                    self._raise_escalation(due)
                else:
                    await self._escalate(due)
            case DueKind.PAUSE_REMINDER:
                self._remind_paused()
            case DueKind.REMINDER:
                self._remind()
            case DueKind.CONFIRMATION_WINDOW:
                self._close(CloseReason.NO_RESPONSE, events.NO_RESPONSE)
            case DueKind.REPEAT_ESCALATION:
                self._repeat_escalation(due.subject)
            case DueKind.UPDATE_WARN:
                self._warn_cycle(RecurringMilestone(due.subject))
            case DueKind.UPDATE_BREACH:
                self._breach_cycle(RecurringMilestone(due.subject))

    def _begin_engagement(self, at: datetime, note: str = "") -> None:
        """Engage: the first time, contact the customer; on a reopen, restart the escalation clock."""
        case = self.case
        case.engagement += 1
        case.phase = Phase.ENGAGED
        case.engaged_at = at
        case.queued_until = None
        self._clocks_moved = True
        self._publish(events.engaged(case, self.policy, at, note))
        self._align_cycles()
        self._sla_moment(lambda: sla.escalation_started(case, self._next_level()))

    def _warn(self, milestone: Milestone) -> None:
        ms = self._milestone(milestone)
        ms.state = MilestoneState.WARNED
        ms.warned_at = workflow.now()
        self._publish(events.milestone_warned(ms))

    def _breach(self, milestone: Milestone) -> None:
        ms = self._milestone(milestone)
        ms.state = MilestoneState.BREACHED
        self.case.sla_breached = True
        self._publish(events.milestone_breached(ms))
        self._sla_moment(lambda: [sla.ended(self.case, milestone.value, SlaEventKind.BREACH)])

    def _raise_escalation(self, due: Due) -> None:
        """Raise the next level once for this engagement: at once in the case (state, search attributes,
        card), with its ticket row, notifications and standup flag written out beside the lifecycle."""
        case = self.case
        level = self._level(due)
        raised = any(e.level == level.name and e.engagement == case.engagement for e in case.escalations)
        if case.phase is not Phase.ENGAGED or case.paused or raised:
            return
        ticket = self._ticket(due, f"{life_key(case)}:{case.engagement}:{level.name}", workflow.now())
        acknowledged = self._since(ACKNOWLEDGED_ESCALATIONS)
        if acknowledged:
            ticket.reason = self._early_reason(due) or ticket.reason
        entry = self._mark_escalated(due, ticket)
        if acknowledged:
            case.escalations[-1].awaits_acknowledgement = True
            case.escalations[-1].owner = ticket.assignee
        self._journal.open_ticket(ticket.model_copy(update={"life": case.life, "seq": entry.seq}))
        self._sla_moment(lambda: [sla.ended(case, ESCALATION_CLOCK, SlaEventKind.BREACH, level=level.name)])
        self._sla_moment(lambda: sla.escalation_started(case, self._next_level()))

    def _early_reason(self, due: Due) -> str | None:
        """Why a level is raised before its `after`: the level below it was not acknowledged."""
        for esc in self.case.escalations:
            if esc.waiting and esc.next_level_due_at == due.at:
                below = next(lv for lv in self.policy.escalations if lv.name == esc.level)
                return events.early_escalation_reason(esc, below)
        return None

    def _repeat_escalation(self, level_name: str) -> None:
        """Tell the owner of a level again that it waits for their acknowledgement."""
        case = self.case
        esc = next(e for e in case.escalations if e.level == level_name and e.engagement == case.engagement)
        level = next(lv for lv in self.policy.escalations if lv.name == level_name)
        esc.repeats += 1
        clocks.refresh_due_instants(case, self.policy, self.clocks, workflow.now())
        self._publish(events.escalation_repeated(level, esc))

    async def _escalate(self, due: Due) -> None:
        """The inline path of cases opened before the journal was written beside the lifecycle."""
        case = self.case
        level = self._level(due)
        ticket = self._ticket(due, f"{case.workflow_id}:{case.engagement}:{level.name}", workflow.now())
        await self._journal.store_ticket_inline(ticket)
        self._mark_escalated(due, ticket)

    def _level(self, due: Due) -> EscalationLevel:
        return next(lv for lv in self.policy.levels_for(self.case.priority) if lv.name == due.subject)

    def _ticket(self, due: Due, key: str, raised_at: datetime) -> TechLeadTicket:
        case, level = self.case, self._level(due)
        return TechLeadTicket(
            ticket_key=key,
            workflow_id=case.workflow_id,
            engagement=case.engagement,
            level=level.name,
            priority=case.priority,
            assignee=self._address_of(level.owner),
            reason=events.escalation_reason(level, case.engagement),
            raised_at=raised_at,
        )

    def _mark_escalated(self, due: Due, ticket: TechLeadTicket) -> TimelineEntry:
        """The case escalated: its record, the flags, the timeline entry and who is told."""
        case, level = self.case, self._level(due)
        case.escalations.append(
            Escalation(
                level=level.name,
                engagement=ticket.engagement,
                raised_at=ticket.raised_at,
                due_at=due.at,
                ticket_key=ticket.ticket_key,
                notified=[r.value for r in level.notify],
            )
        )
        case.escalated = True
        case.on_standup = True
        return self._publish(events.escalated(level, ticket.ticket_key, ticket.reason))

    # SLA events.

    def _sla_moment(self, moments: Callable[[], list[SlaClockEvent]]) -> None:
        """Record a moment of the SLA clocks, measured on the case's due instants as they now are."""
        if not self._since(SLA_EVENTS):
            return
        clocks.refresh_due_instants(self.case, self.policy, self.clocks, workflow.now())
        found = moments()
        if found:
            self._publish(events.sla_clocks(found))

    def _sla_resumed(self) -> None:
        case = self.case
        self._sla_moment(
            lambda: sla.resumed(
                case,
                self.clocks.priority,
                case.pauses[-1],
                sla.pausing(case, case.escalation_explanation is not None),
            )
        )

    def _next_level(self) -> str | None:
        """The escalation level the engagement's clock now runs towards, if any."""
        if self.case.phase is not Phase.ENGAGED:
            return None
        level = clocks.next_escalation_level(self.case, self.policy)
        return level[0] if level else None

    # Recurring milestones.

    def _align_cycles(self) -> None:
        """Start and stop the cycles of recurring milestones as the case's phase, pause and priority say."""
        case = self.case
        if not self.policy.for_priority(case.priority).every and not any(c.open for c in case.cycles):
            return
        if self._since(RECURRING_MILESTONES):
            cycles.align(case, self.policy, self.clocks, workflow.now())

    def _every(self, milestone: RecurringMilestone) -> str:
        every = self.policy.for_priority(self.case.priority).every.get(milestone)
        return formats.duration(every) if every else "-"

    def _warn_cycle(self, milestone: RecurringMilestone) -> None:
        cycle = cycles.open_cycle(self.case, milestone)
        assert cycle is not None
        cycle.state = CycleState.WARNED
        self._publish(events.cycle_warned(cycle, self._every(milestone)))

    def _breach_cycle(self, milestone: RecurringMilestone) -> None:
        cycle = cycles.open_cycle(self.case, milestone)
        assert cycle is not None
        cycle.state, cycle.ended_at = CycleState.BREACHED, workflow.now()
        self.case.sla_breached = True
        self._publish(events.cycle_breached(cycle, self._every(milestone)))
        self._align_cycles()

    def _remind_paused(self) -> None:
        pause = self.case.pauses[-1]
        pause.reminded_at = workflow.now()
        self._publish(events.pause_reminded())

    def _remind(self) -> None:
        self.case.reminder_sent_at = workflow.now()
        self._publish(events.confirmation_reminded())

    def _close(self, reason: CloseReason, detail: str) -> None:
        case = self.case
        case.phase = Phase.CLOSED
        case.close_reason = reason
        case.closed_at = workflow.now()
        self._end_pause(case.closed_at)
        told_at_resolution = self._since(TAM_TOLD_AT_RESOLUTION)
        tell_tam = not told_at_resolution and events.tells_tam(self.policy, case.priority, "resolution")
        self._publish(events.closed(reason, detail, tell_tam=tell_tam))

    # Actions: the same checks for every signal; a refused one is kept in the timeline.

    @workflow.query(name="status")
    def status(self) -> CaseStatus:
        if self._invalid:
            raise InvalidCaseInput(self._invalid)
        return self.case

    def _ready(self) -> bool:
        """Actions apply once the case is opened and triaged; until then they wait, so an early
        `customer_contacted` is not judged against the triage phase."""
        return self._policy is not None and self.case.phase is not Phase.TRIAGE

    async def _act(self, name: str, payload: Any, unreadable: str | None = None) -> None:
        if self._case is None:
            return
        if not self._ready():
            await workflow.wait_condition(self._ready)
        try:
            action = rules.parse_action(name, payload, unreadable)
            rules.check(self.case, action)
        except rules.Refused as refusal:
            self._publish(events.refused(name, str(refusal)))
            return
        self._apply(action)

    def _check(self, name: str, payload: Any) -> None:
        """The update validator: refuse to the caller, before anything is written to history. While the
        case is being opened only the payload can be judged; the rules are, once it is triaged."""
        if self._invalid:
            raise ActionRefused(self._invalid)
        try:
            action = rules.parse_action(name, payload)
            if self._ready():
                rules.check(self.case, action)
        except rules.Refused as refusal:
            raise ActionRefused(str(refusal)) from None

    def _check_once_opened(self, name: str, payload: Any) -> None:
        """The rules for an update accepted while the case was being opened. Temporal keeps the outcome of
        every update it accepted, so a refusal here stays with the update's id, and says so."""
        try:
            self._check(name, payload)
        except ActionRefused as refusal:
            if self._invalid:
                raise
            raise ActionRefused(
                f"{refusal.message} (judged once the case was opened, after it had taken the action: its"
                " idempotency key or update id now holds this refusal; send the action again with a new one)"
            ) from None

    def _answered_before(self, update_id: str) -> CaseStatus | None:
        """The case, when an earlier run answered `update_id` (within a run, Temporal answers it itself)."""
        return self.case if update_id in self._answered_earlier else None

    def _answered(self, update_id: str) -> None:
        if update_id:
            self._answered_ids.append(update_id)

    async def _act_now(self, name: str, payload: Any) -> CaseStatus:
        """Apply a validated action and answer with the case once its timeline entry is stored. One
        accepted while the case was being opened waits for its triage, and is judged by the rules then."""
        if not self._ready():
            await workflow.wait_condition(lambda: self._ready() or self._invalid is not None)
            self._check_once_opened(name, payload)
        self._apply(rules.parse_action(name, payload))
        seq = self._journal.seq
        await workflow.wait_condition(lambda: self._journal.written >= seq)
        return self.case

    def _apply(self, action: ActionPayload) -> None:
        self.handlers[action.action](self, action)
        if action.moves_clocks:
            self._align_cycles()
            clocks.refresh_due_instants(self.case, self.policy, self.clocks, workflow.now())
        self._clocks_moved = True

    @handles(Assign)
    def _assign(self, action: Assign) -> None:
        self.case.assignee = action.assignee
        self._publish(events.assigned(action.assignee))

    @handles(CustomerContacted)
    def _contacted(self, action: CustomerContacted) -> None:
        self._publish(events.contacted(action.channel.value, action.note))
        self._verify(Milestone.FIRST_RESPONSE, None)

    @handles(CustomerUpdated)
    def _customer_updated(self, action: CustomerUpdated) -> None:
        met = cycles.current_cycle(self.case, RecurringMilestone.CUSTOMER_UPDATE, workflow.now())
        if met is not None:
            met.state, met.ended_at = CycleState.MET, workflow.now()
        self._publish(events.customer_updated(action.note, action.by, met))

    @handles(EscalationAcknowledged)
    def _acknowledged(self, action: EscalationAcknowledged) -> None:
        case = self.case
        esc = next(e for e in case.escalations if e.level == action.level and e.engagement == case.engagement)
        esc.acknowledged_at, esc.acknowledged_by = workflow.now(), action.by
        self._publish(events.escalation_acknowledged(esc.level, action.by, action.note))
        self._sla_moment(
            lambda: [m for m in sla.retargeted(case, self._next_level()) if m.clock == ESCALATION_CLOCK]
        )

    @handles(MilestoneVerified)
    def _milestone_verified(self, action: MilestoneVerified) -> None:
        self._verify(action.milestone, action.by, note=action.note)

    @handles(Resolved)
    def _resolved(self, action: Resolved) -> None:
        case, now = self.case, workflow.now()
        was_paused, escalation_level = case.paused, self._next_level()
        case.phase = Phase.AWAITING_CONFIRMATION
        case.resolved_at = now
        case.resolution = action.summary
        case.follow_up_sent_at = case.confirmed_at = None
        case.reminder_sent_at = case.reminder_due_at = case.confirmation_due_at = None
        self._end_pause(now)
        told = events.tells_tam(self.policy, case.priority, "resolution")
        tell_tam = told and self._since(TAM_TOLD_AT_RESOLUTION)
        self._publish(events.resolved(action.summary, action.by, tell_tam=tell_tam))
        if was_paused:
            self._sla_resumed()
        if escalation_level is not None:
            self._sla_moment(
                lambda: [sla.ended(case, ESCALATION_CLOCK, SlaEventKind.FULFIL, level=escalation_level)]
            )

    @handles(CustomerConfirmed)
    def _confirmed(self, action: CustomerConfirmed) -> None:
        self.case.confirmed_at = workflow.now()
        self._publish(events.confirmed(action.note))

    @handles(CustomerRejected)
    def _rejected(self, action: CustomerRejected) -> None:
        self.case.resolved_at = None
        self.case.resolution = None
        self._publish(events.rejected(action.note))
        self._begin_engagement(workflow.now(), action.note or "")

    @handles(ChangePriority)
    def _change_priority(self, action: ChangePriority) -> None:
        self._reprioritise(action.priority, action.reason)
        self._sla_moment(lambda: sla.retargeted(self.case, self._next_level()))

    @handles(WaitingOnCustomer)
    def _waiting(self, action: WaitingOnCustomer) -> None:
        escalation_running = self.case.escalation_due_at is not None
        self.case.paused = True
        self.case.pauses.append(Pause(started_at=workflow.now(), note=action.note))
        self._publish(events.paused(action.note))
        self._sla_moment(lambda: sla.paused(self.case, sla.pausing(self.case, escalation_running)))

    @handles(CustomerReplied)
    def _replied(self, action: CustomerReplied) -> None:
        self._end_pause(workflow.now())
        self._publish(events.resumed(action.note))
        self._sla_resumed()

    @handles(AddNote)
    def _note(self, action: AddNote) -> None:
        self._publish(events.noted(action.text, action.by))

    @handles(Cancel)
    def _cancel(self, action: Cancel) -> None:
        self._publish(events.cancelled(action.reason, action.by))
        self._close(CloseReason.CANCELLED, action.reason)

    def _verify(self, milestone: Milestone, by: str | None, *, note: str | None = None) -> None:
        ms = self._milestone(milestone)
        if ms.state in (MilestoneState.MET, MilestoneState.MET_LATE):
            return
        now = workflow.now()
        late = ms.state is MilestoneState.BREACHED or (ms.due_at is not None and now > ms.due_at)
        ms.state = MilestoneState.MET_LATE if late else MilestoneState.MET
        ms.verified_at = now
        ms.verified_by = by
        self._publish(events.milestone_verified(milestone, late=late, by=by, note=note))
        self._sla_moment(lambda: [sla.ended(self.case, milestone.value, SlaEventKind.FULFIL, late=late)])

    def _reprioritise(self, priority: Priority, reason: str | None) -> None:
        """Re-triage: the new priority's clocks, still counted from the original opened_at."""
        case = self.case
        old = case.priority
        case.priority = priority
        self._clocks = clocks.clocks_for(self.policy, priority, case.ticket.customer.calendar)
        start = clocks.engagement_start(self.clocks, case.opened_at)
        if case.phase is Phase.QUEUED:
            case.queued_until = start
        elif case.engagement == 1:
            case.engaged_at = start
        raised = events.raised_to_call(self.policy, old, priority)
        contact = raised and case.engagement >= 1 and self._since(CONTACT_ON_RAISE)
        to_on_call = contact
        waiting = case.phase in (Phase.QUEUED, Phase.AWAITING_CONFIRMATION)
        if raised and waiting and self._taken(P1_OWNER_WHEN_RAISED):
            contact, to_on_call = False, True
        reassigned_to = None
        if to_on_call and case.assignee == self.policy.roster.team_queue:
            case.assignee = reassigned_to = self.policy.roster.on_call_at(workflow.now())
        self._publish(
            events.priority_changed(
                old, priority, reason, contact=contact, reassigned_to=reassigned_to, policy=self.policy
            )
        )

    def _end_pause(self, now: datetime) -> None:
        if self.case.paused:
            self.case.paused = False
            self.case.pauses[-1].ended_at = now

    # Recording: the timeline, the outbox, the search attributes.

    def _publish(self, plan: events.Plan) -> TimelineEntry:
        return self._journal.add(self.case, self.policy, plan)

    async def _sync(self) -> None:
        await self._journal.write_out(self.case, self.policy, self._next)

    async def _drain(self) -> None:
        """Before the run ends: every handler done and everything stored; deliveries are given a moment
        and then left to the outbox relay. Inline (cases opened earlier): every delivery waited for."""
        journal = self._journal
        if journal.beside:
            await self._sync()
            await journal.settle()
            return
        while True:
            await self._sync()
            await journal.delivered()
            await workflow.wait_condition(lambda: workflow.all_handlers_finished() or journal.pending)
            if workflow.all_handlers_finished() and not journal.pending:
                return

    def _history_is_long(self) -> bool:
        info = workflow.info()
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() >= self.policy.continue_as_new_after_events
        )

    async def _continue_as_new(self) -> None:
        """Start a fresh history for a long-lived case: its state, clocks and deadlines carry over whole,
        and so does whatever is still to be stored or delivered; nothing is waited for but the handlers.
        Inline (cases opened earlier): everything written and delivered first."""
        if not self._journal.beside:
            clocks.refresh_due_instants(self.case, self.policy, self.clocks, workflow.now())
            await self._drain()
            self._continue(self._carried(Unwritten()))
        if not workflow.all_handlers_finished():
            return
        await self._journal.quiet_task()
        if not workflow.all_handlers_finished():
            return
        clocks.refresh_due_instants(self.case, self.policy, self.clocks, workflow.now())
        carried = self._carried(self._journal.hand_on())
        if len(carried.unwritten.model_dump_json()) > HAND_ON_BYTES:
            workflow.logger.warning("continue-as-new postponed: a large backlog is still to be stored")
            return
        self._continue(carried)

    def _carried(self, unwritten: Unwritten) -> CarriedCase:
        """What the next run starts from, with the changes still to be stored."""
        return CarriedCase(
            status=self.case,
            policy=self.policy,
            seq=self._journal.seq,
            unwritten=unwritten,
            answered=self._answered_ids[-ANSWERED_KEPT:],
        )

    def _continue(self, carried: CarriedCase) -> NoReturn:
        workflow.logger.info(
            "continuing as new", extra={"history_length": workflow.info().get_current_history_length()}
        )
        workflow.continue_as_new(
            args=[self.case.ticket, carried], search_attributes=workflow.info().typed_search_attributes
        )

    # Small helpers.

    @property
    def _lean(self) -> bool:
        """One local write per change (ONE_WRITE_PER_CHANGE or QUIET_END): the run began after every
        earlier patch."""
        return self._journal.lean

    def _since(self, patch: str) -> bool:
        """Whether the case takes the behaviour of `patch`: always in a lean run, which began after it
        (so its history carries no marker for it), else as its history says."""
        return self._lean or workflow.patched(patch)

    def _taken(self, patch: str) -> bool:
        """Whether the case takes the behaviour of `patch`, one of those that came after
        ONE_WRITE_PER_CHANGE: always in a run that began with QUIET_END, the newest, so its history
        carries no marker for it; else as its history says."""
        return self._journal.quiet_end or workflow.patched(patch)

    @property
    def case(self) -> CaseStatus:
        if self._case is None:
            raise InvalidCaseInput(self._invalid or "invalid case input")
        return self._case

    @property
    def policy(self) -> Policy:
        assert self._policy is not None, "policy is snapshotted at ingestion"
        return self._policy

    @property
    def clocks(self) -> CaseClocks:
        assert self._clocks is not None, "clocks are set at ingestion"
        return self._clocks

    def _milestone(self, milestone: Milestone) -> MilestoneStatus:
        return next(ms for ms in self.case.milestones if ms.name is milestone)

    def _address_of(self, role: Role) -> str:
        found = messages.recipients(self.case, self.policy, role, at=workflow.now())
        return found[0].address if found else role.value

    def _outcome(self) -> CaseOutcome:
        case = self.case
        assert case.close_reason is not None and case.closed_at is not None
        return CaseOutcome(
            ticket_id=case.ticket.ticket_id,
            priority=case.priority,
            close_reason=case.close_reason,
            closed_at=case.closed_at,
            opened_at=case.opened_at,
            resolved_at=case.resolved_at,
            time_to_resolution=(case.resolved_at - case.opened_at) if case.resolved_at else None,
            escalations=case.escalations,
            breached_milestones=[
                ms.name
                for ms in case.milestones
                if ms.state in (MilestoneState.BREACHED, MilestoneState.MET_LATE)
            ],
            sla_breached=case.sla_breached,
        )
