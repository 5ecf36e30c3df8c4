"""The case's journal: what it did and has yet to write out, and the writing out.

Handlers and clock events only add to the journal: timeline entries, notifications, Tech Lead tickets. A
writer beside the lifecycle stores each batch with one activity (case row, timeline, tickets and outbox
rows in one transaction), then starts its deliveries. The lifecycle never waits on either: an outage of
PostgreSQL or of a channel delays rows and messages, never a clock. What keeps failing is retried in
rounds on a durable timer and shown while it lasts as the case's `attention` (the CaseNeedsAttention
search attribute and a line on the Web UI card). Cases started before this design replay the inline path,
where the lifecycle awaited each write (`_write_inline`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, CancelledError, FailureError
from temporalio.workflow import ActivityHandle

from workflows import case_metrics, messages, search
from workflows.clocks import Due
from workflows.events import Entry, Plan, Tell
from workflows.safe_text import clipped, one_line, storable

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, Field

    from activities.case_store import CaseChanges, CaseRecord, CaseStore, TechLeadTicket
    from activities.case_writer import CaseWriter
    from activities.notifications import Notification, Notifier
    from workflows.models import CaseStatus, TimelineEntry, Trouble
    from workflows.policy import Policy

T = TypeVar("T")

# The inline path (cases started before the journal was written beside the lifecycle): an outage of the
# database or a sender delays the case; it never fails it.
PATIENT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
ACTIVITY_TIMEOUT = timedelta(seconds=30)
# A batch of e-mails over a slow SMTP server may take a while; the heartbeat notices a dead worker.
DELIVERY_TIMEOUT = timedelta(minutes=10)
# A notification channel that is down must not hold up a case's clocks: deliveries run beside the
# lifecycle (cases started before this change replay their awaited deliveries).
DELIVER_IN_BACKGROUND = "deliver-notifications-in-background"
# Temporal refuses an activity input over 2 MB, and the workflow task that schedules one fails on every
# retry: a burst of long entries is recorded in parts (cases started before this change replay one part).
RECORD_IN_PARTS = "record-timeline-in-parts"
PART_BYTES = 512 * 1024
PART_ENTRIES = 500
# Writes and deliveries run beside the lifecycle, in rounds, with what keeps failing shown to operators.
WRITE_BESIDE_LIFECYCLE = "journal-written-beside-the-lifecycle"
# One local activity per change stores it and sends what it raised (one history event instead of two
# activities and two workflow tasks); `deliver` only takes what could not be sent at once.
ONE_WRITE_PER_CHANGE = "one-local-write-per-change"
# The same, and the run ends (closes or continues as new) only in a workflow task that numbered no
# timeline entry. Temporal refuses to end a run while a signal waits, and the retried task takes that
# signal first: it would number the entries of the refused task afresh, over the rows its local activity
# had already stored and the messages it had sent (a note lost, a closure stored and e-mailed twice).
# Asked first, at the start of each run, so that a new run carries one marker, not two.
QUIET_END = "one-local-write-per-change-ending-in-a-quiet-task"
QUIET_TURN = timedelta(milliseconds=1)
# An entry added while the closed case gave its deliveries their grace (a signal refused as closed) is
# stored before the run ends; asked only when there is one.
STORE_LATE_ENTRIES = "store-entries-added-during-the-grace"

# One round is a few quick attempts; between rounds a durable timer, so an outage of hours costs a few
# dozen history events and shows on the case, instead of an attempt counter climbing out of sight.
ROUND = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(seconds=10),
    maximum_attempts=3,
)
FIRST_PAUSE = timedelta(seconds=10)
LONGEST_PAUSE = timedelta(minutes=5)
# At the close, deliveries still going after this are left to the outbox relay.
DELIVERY_GRACE = timedelta(seconds=20)
ERROR_LIMIT = 300


def pause_after(rounds: int) -> timedelta:
    """The wait before the next round: doubling from FIRST_PAUSE, at most LONGEST_PAUSE."""
    pause: timedelta = FIRST_PAUSE * 2 ** max(rounds - 1, 0)
    return min(pause, LONGEST_PAUSE)


def in_parts(entries: list[TimelineEntry]) -> list[list[TimelineEntry]]:
    """Consecutive runs of `entries`, each at most PART_ENTRIES long and about PART_BYTES of JSON."""
    parts: list[list[TimelineEntry]] = [[]]
    size = 0
    for entry in entries:
        n = len(entry.model_dump_json())
        if parts[-1] and (size + n > PART_BYTES or len(parts[-1]) >= PART_ENTRIES):
            parts.append([])
            size = 0
        parts[-1].append(entry)
        size += n
    return parts


def life_key(case: CaseStatus) -> str:
    """The prefix of every idempotency key of this case's life (the workflow id alone for cases opened
    before lives were kept apart)."""
    return f"{case.workflow_id}/{case.life}" if case.life else case.workflow_id


def failure_text(err: BaseException) -> str:
    """The innermost cause of an activity failure, on one bounded line."""
    while isinstance(err, ActivityError) and err.cause is not None:
        err = err.cause
    kind = err.type if isinstance(err, ApplicationError) and err.type else type(err).__name__
    return one_line(f"{kind}: {err}", ERROR_LIMIT)


def is_permanent(err: FailureError) -> bool:
    """A failure no retry fixes. A local activity's failure arrives as its cause itself, an activity's
    wrapped in an ActivityError."""
    cause = err.cause if isinstance(err, ActivityError) else err
    return isinstance(cause, ApplicationError) and cause.non_retryable


def is_activity_failure(err: BaseException) -> bool:
    """An activity or local activity that failed (or timed out): not the workflow being cancelled."""
    return isinstance(err, FailureError) and not isinstance(err, CancelledError)


class Unwritten(BaseModel):
    """What one run hands on to the next at continue-as-new: changes not yet stored, keys not yet
    delivered. Stores and deliveries are idempotent, so handing on one in flight is safe."""

    entries: list[TimelineEntry] = Field(default_factory=list)
    notifications: list[Notification] = Field(default_factory=list)
    tickets: list[TechLeadTicket] = Field(default_factory=list)
    undelivered: list[str] = Field(default_factory=list)


class CaseJournal:
    def __init__(self, seq: int = 0, unwritten: Unwritten | None = None) -> None:
        self.seq = seq
        self.written = seq
        carried = unwritten or Unwritten()
        self._entries: list[TimelineEntry] = list(carried.entries)
        self._outbox: list[Notification] = list(carried.notifications)
        self._tickets: list[TechLeadTicket] = list(carried.tickets)
        self._storing = Unwritten()
        self._undelivered: list[str] = list(carried.undelivered)
        self._deliveries: list[ActivityHandle[int]] = []
        self._troubles: dict[str, Trouble] = {}
        self._published: search.Values = {}
        self._due: Due | None = None
        self._case: Callable[[], CaseStatus] | None = None
        self._rounds = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.lean = False
        self.quiet_end = False

    @property
    def pending(self) -> bool:
        """Something is waiting to be written out."""
        return bool(self._entries or self._outbox or self._tickets)

    @property
    def beside(self) -> bool:
        """Written beside the lifecycle (True), or inline by the lifecycle, as cases opened earlier are."""
        return self._case is not None

    @property
    def idle(self) -> bool:
        """Everything recorded so far is stored (or failed for good)."""
        return not self.pending and self._storing == Unwritten()

    def add(self, case: CaseStatus, policy: Policy, plan: Plan) -> TimelineEntry:
        """Add an event: its entries, then one notification per recipient of each told role, keyed on
        the event's first entry."""
        entry = self._record(case, plan.entry)
        for then in plan.then:
            self._record(case, then)
        for tell in plan.tells:
            self._notify(case, policy, entry, tell)
        case_metrics.observe(case, plan)
        return entry

    def _record(self, case: CaseStatus, planned: Entry) -> TimelineEntry:
        self.seq += 1
        data = dict(planned.data)
        if planned.note:
            data["note"] = planned.note
        entry = TimelineEntry(
            seq=self.seq,
            at=workflow.now(),
            type=planned.type,
            actor=storable(planned.actor),
            detail=storable(planned.detail),
            data=storable(data),
        )
        case.timeline.append(messages.shortened(entry))
        self._entries.append(entry)
        return entry

    def _notify(self, case: CaseStatus, policy: Policy, entry: TimelineEntry, tell: Tell) -> None:
        facts = messages.facts(case) | dict(tell.facts)
        for r in messages.recipients_of(case, policy, tell.kind, tell.roles, tell.channel, entry.at):
            self._outbox.append(
                Notification(
                    dedupe_key=f"{life_key(case)}:{entry.seq}:{tell.kind}:{r.role.value}:{r.channel}",
                    workflow_id=case.workflow_id,
                    life=case.life,
                    seq=entry.seq,
                    kind=tell.kind,
                    channel=r.channel,
                    role=r.role,
                    recipient=r.address,
                    facts=facts,
                )
            )

    def open_ticket(self, ticket: TechLeadTicket) -> None:
        """A Tech Lead (or higher) ticket row, stored with the entry that raised it."""
        self._tickets.append(ticket)

    # Beside the lifecycle.

    def start(self, case: Callable[[], CaseStatus], *, lean: bool = False, quiet_end: bool = False) -> None:
        """Write beside the lifecycle from now on, starting with what an earlier run handed on; `lean`:
        one local activity per change (ONE_WRITE_PER_CHANGE); `quiet_end`: end in a quiet task
        (QUIET_END)."""
        self._case = case
        self.lean = lean
        self.quiet_end = quiet_end
        self._tasks.add(asyncio.create_task(self._keep_writing()))
        if self._undelivered:
            keys, self._undelivered = self._undelivered, []
            self._start_delivery(keys, "notifications handed on by the previous run")

    def hand_on(self) -> Unwritten:
        """What the next run must still store and deliver."""
        s = self._storing
        return Unwritten(
            entries=s.entries + self._entries,
            notifications=s.notifications + self._outbox,
            tickets=s.tickets + self._tickets,
            undelivered=list(self._undelivered),
        )

    async def settle(self) -> None:
        """Before the run ends: every change stored; deliveries given a moment, then left to the relay
        (their rows are in the outbox, and the relay delivers what a case left pending)."""

        def settled() -> bool:
            return self.idle and workflow.all_handlers_finished()

        await workflow.wait_condition(settled)
        if self._undelivered:
            try:
                await workflow.wait_condition(lambda: not self._undelivered, timeout=DELIVERY_GRACE)
            except TimeoutError:
                workflow.logger.warning(
                    "deliveries left to the outbox relay", extra={"undelivered": len(self._undelivered)}
                )
            if not settled() and (self.quiet_end or workflow.patched(STORE_LATE_ENTRIES)):
                await workflow.wait_condition(settled)
        while self.quiet_end:
            await self.quiet_task()
            if settled():
                return
            await workflow.wait_condition(settled)

    async def quiet_task(self) -> None:
        """Return in a workflow task that has numbered no entry, one the run may end in (QUIET_END): the
        task in which a short timer fired with nothing numbered since it started. The signals of a task
        are applied before its timer fires, so an entry they number is seen, and the turn taken again."""
        if not self.quiet_end:
            return
        numbered = -1
        while numbered != self.seq:
            numbered = self.seq
            await workflow.sleep(QUIET_TURN, summary="End the run in a task of its own")

    async def _keep_writing(self) -> None:
        while True:
            await workflow.wait_condition(lambda: self.pending)
            case = self.case
            batch = Unwritten(entries=self._entries, notifications=self._outbox, tickets=self._tickets)
            self._storing = batch
            self._entries, self._outbox, self._tickets = [], [], []
            status = case.model_copy(update={"timeline": []})
            for part in self._parts(batch, status):
                keys = await self._patiently("recording the case in PostgreSQL", self._recording(part))
                self.written = part.seq
                if keys:
                    self._start_delivery(keys, _addressed(part.notifications, keys))
            self._storing = Unwritten()

    def _recording(self, part: CaseChanges) -> Callable[[], Awaitable[list[str]]]:
        """One attempt to store the part. Lean: a local activity that also sends the part's
        notifications at once while the case's deliveries are healthy; else the `record_changes`
        activity of runs that began before ONE_WRITE_PER_CHANGE."""

        def attempt() -> Awaitable[list[str]]:
            summary = f"Record {', '.join(dict.fromkeys(e.type for e in part.events))}"
            if not self.lean:
                return workflow.execute_activity_method(
                    CaseStore.record_changes,
                    part,
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=ROUND,
                    summary=summary,
                )
            part.send_now = not self._troubles and not self._undelivered
            return workflow.execute_local_activity_method(
                CaseWriter.record_and_send,
                part,
                start_to_close_timeout=ACTIVITY_TIMEOUT,
                retry_policy=ROUND,
                summary=summary,
            )

        return attempt

    def _parts(self, batch: Unwritten, status: CaseStatus) -> list[CaseChanges]:
        """The batch in activity inputs under Temporal's payload limit; tickets and notifications go with
        the part holding the entry that caused them."""
        parts = []
        for entries in in_parts(batch.entries):
            first, last = entries[0].seq, entries[-1].seq
            parts.append(
                CaseChanges(
                    workflow_id=status.workflow_id,
                    life=status.life,
                    seq=last,
                    as_of=workflow.now(),
                    status=status,
                    events=entries,
                    tickets=[t for t in batch.tickets if first <= t.seq <= last],
                    notifications=[n for n in batch.notifications if first <= n.seq <= last],
                )
            )
        return parts

    def _start_delivery(self, keys: list[str], summary: str) -> None:
        self._undelivered.extend(keys)

        async def deliver() -> None:
            await self._patiently(
                f"delivering {summary}",
                lambda: workflow.execute_activity_method(
                    Notifier.deliver,
                    keys,
                    start_to_close_timeout=DELIVERY_TIMEOUT,
                    heartbeat_timeout=timedelta(seconds=30),
                    retry_policy=ROUND,
                    summary=clipped(f"Deliver {summary}", 200),
                ),
            )
            self._undelivered = [k for k in self._undelivered if k not in keys]

        task = asyncio.create_task(deliver())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _patiently(self, what: str, attempt: Callable[[], Awaitable[T]]) -> T | None:
        """`attempt` (one activity of a few tries) in rounds until it succeeds; None when it fails for
        good (the activity recorded why). While it fails, the case shows it needs attention."""
        self._rounds += 1
        trouble_id = f"{self._rounds}"
        rounds = 0
        while True:
            try:
                result = await attempt()
            except FailureError as err:
                if not is_activity_failure(err):
                    raise
                if not is_permanent(err):
                    rounds += 1
                    self._troubled(trouble_id, what, rounds, failure_text(err))
                    await workflow.sleep(pause_after(rounds), summary=clipped(f"Retry {what}", 200))
                    continue
                workflow.logger.error(f"{what} failed for good", extra={"error": failure_text(err)})
                result = None
            if self._troubles.pop(trouble_id, None) is not None:
                self._show()
            return result

    def _troubled(self, trouble_id: str, what: str, rounds: int, error: str) -> None:
        since = self._troubles[trouble_id].since if trouble_id in self._troubles else workflow.now()
        self._troubles[trouble_id] = Trouble(what=what, since=since, rounds=rounds, error=error)
        self._show()

    def _show(self) -> None:
        case = self.case
        case.attention = list(self._troubles.values())
        self.publish(case, self._due)

    @property
    def case(self) -> CaseStatus:
        assert self._case is not None, "the journal is written beside the lifecycle"
        return self._case()

    # Either path.

    async def write_out(self, case: CaseStatus, policy: Policy, due: Due | None) -> None:
        """Beside the lifecycle: only keep the Web UI current. Inline: write everything first."""
        if not self.beside:
            await self._write_inline(case)
        del case.timeline[: -policy.timeline_window]
        self.publish(case, due)

    def publish(self, case: CaseStatus, due: Due | None) -> None:
        """Keep the Web UI current: the search attributes and the case card in the current details."""
        self._due = due
        workflow.set_current_details(messages.card(case, due))
        values = search.values_of(case)
        changed = search.updates(self._published, values)
        if changed:
            workflow.upsert_search_attributes(changed)
            self._published = values

    # Inline, as cases opened before the writer existed replay it.

    async def _write_inline(self, case: CaseStatus) -> None:
        """The timeline and case row first, then the deliveries; until nothing is left."""
        while self.pending:
            entries, self._entries = self._entries, []
            outbox, self._outbox = self._outbox, []
            parts = in_parts(entries) if entries else []
            if len(parts) > 1 and not workflow.patched(RECORD_IN_PARTS):
                parts = [entries]
            for part in parts:
                await workflow.execute_activity_method(
                    CaseStore.record_case,
                    CaseRecord(
                        workflow_id=case.workflow_id,
                        seq=part[-1].seq,
                        status=case.model_copy(update={"timeline": []}),
                        events=part,
                    ),
                    start_to_close_timeout=ACTIVITY_TIMEOUT,
                    retry_policy=PATIENT,
                    summary=f"Record {', '.join(dict.fromkeys(e.type for e in part))}",
                )
                self.written = part[-1].seq
            if outbox:
                delivery = workflow.start_activity_method(
                    Notifier.send_notifications,
                    outbox,
                    start_to_close_timeout=DELIVERY_TIMEOUT,
                    heartbeat_timeout=timedelta(seconds=30),
                    retry_policy=PATIENT,
                    summary="Notify "
                    + ", ".join(dict.fromkeys(f"{n.role.value} ({n.kind})" for n in outbox)),
                )
                if workflow.patched(DELIVER_IN_BACKGROUND):
                    self._deliveries.append(delivery)
                else:
                    await delivery

    async def store_ticket_inline(self, ticket: TechLeadTicket) -> None:
        """Inline path: the Tech Lead row stored before the case marks itself escalated."""
        await workflow.execute_activity_method(
            CaseStore.open_tech_lead_ticket,
            ticket,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=PATIENT,
            summary=f"Open {ticket.level} ticket",
        )

    async def delivered(self) -> None:
        """Inline path: every delivery started so far has ended, sent or failed for good."""
        while self._deliveries:
            await self._deliveries.pop(0)


def _addressed(notifications: list[Notification], keys: list[str]) -> str:
    wanted = set(keys)
    return ", ".join(
        dict.fromkeys(f"{n.role.value} ({n.kind})" for n in notifications if n.dedupe_key in wanted)
    )
