"""The case's journal: what it did and has yet to write out, and the writing out.

Handlers and clock events only add to the journal (timeline entries, notifications); the lifecycle calls
`write_out` at each step, which records the timeline and the case row through an activity, starts the
deliveries, and keeps the Web UI's search attributes and current details up to date.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityHandle

with workflow.unsafe.imports_passed_through():
    from activities.case_store import CaseRecord, CaseStore
    from activities.notifications import Notification, Notifier
    from workflows import messages, search
    from workflows.clocks import Due
    from workflows.models import CaseStatus, TimelineEntry
    from workflows.policy import Channel, Policy, Role

# An outage of the database or a sender delays the case; it never fails it.
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


class CaseJournal:
    def __init__(self, seq: int = 0) -> None:
        self.seq = seq
        self.written = seq
        self._entries: list[TimelineEntry] = []
        self._outbox: list[Notification] = []
        self._deliveries: list[ActivityHandle[int]] = []
        self._published: search.Values = {}

    @property
    def pending(self) -> bool:
        """Something is waiting to be written out."""
        return bool(self._entries or self._outbox)

    def record(
        self,
        case: CaseStatus,
        type_: str,
        detail: str,
        *,
        actor: str | None = None,
        note: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> TimelineEntry:
        self.seq += 1
        extra = dict(data or {})
        if note:
            extra["note"] = note
        entry = TimelineEntry(
            seq=self.seq, at=workflow.now(), type=type_, actor=actor, detail=detail, data=extra
        )
        case.timeline.append(messages.shortened(entry))
        self._entries.append(entry)
        return entry

    def notify(
        self,
        case: CaseStatus,
        policy: Policy,
        entry: TimelineEntry,
        kind: str,
        roles: list[Role],
        *,
        channel: Channel | None = None,
        facts: Mapping[str, str] | None = None,
    ) -> None:
        """One notification per recipient of each role the policy routes `kind` to, keyed on `entry`."""
        everything = messages.facts(case) | dict(facts or {})
        for role in policy.routing.roles_for(kind, roles):
            for r in messages.recipients(case, policy, role, channel):
                self._outbox.append(
                    Notification(
                        dedupe_key=f"{case.workflow_id}:{entry.seq}:{kind}:{role.value}:{r.channel}",
                        workflow_id=case.workflow_id,
                        seq=entry.seq,
                        kind=kind,
                        channel=r.channel,
                        role=role,
                        recipient=r.address,
                        facts=everything,
                    )
                )

    async def write_out(self, case: CaseStatus, policy: Policy, due: Due | None) -> None:
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
        del case.timeline[: -policy.timeline_window]
        self._publish(case, due)

    async def delivered(self) -> None:
        """Every delivery started so far has ended, sent or failed for good."""
        while self._deliveries:
            await self._deliveries.pop(0)

    def _publish(self, case: CaseStatus, due: Due | None) -> None:
        """Keep the Web UI current: the search attributes and the case card in the current details."""
        workflow.set_current_details(messages.card(case, due))
        values = search.values_of(case)
        changed = search.updates(self._published, values)
        if changed:
            workflow.upsert_search_attributes(changed)
            self._published = values
