"""What the simulated cases would have written and sent, kept in memory instead.

The replay worker registers these in place of the real activities, under the same names: the policy a
case snapshots is its run's (baseline or candidate), and the case's changes are kept here, with its
notifications counted and never sent, and nothing written to any database. The worker's interceptor
makes the same calls from the case's own activation (`local_writes`); the activities stay registered,
because the SDK checks that a local activity exists before any interceptor sees the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from activities.case_store import CaseChanges, TechLeadTicket
from activities.case_writer import CaseWriter
from activities.notifications import Notification
from activities.policy_source import PolicySource
from workflows.models import CaseStatus, TimelineEntry
from workflows.policy import Policy

RUN_SEPARATOR = "/"


def case_id(run: str, ticket_id: str) -> str:
    return f"{run}{RUN_SEPARATOR}case-{ticket_id}"


def run_of(workflow_id: str) -> str:
    return workflow_id.split(RUN_SEPARATOR, 1)[0]


@dataclass
class CaseBook:
    """One simulated case: its latest state and everything it recorded, each once (a retried local
    activity brings the same keys again)."""

    status: CaseStatus | None = None
    seq: int = 0
    events: dict[int, TimelineEntry] = field(default_factory=dict)
    tickets: dict[str, TechLeadTicket] = field(default_factory=dict)
    notifications: dict[str, Notification] = field(default_factory=dict)

    def add(self, changes: CaseChanges) -> None:
        if changes.seq >= self.seq:
            self.status, self.seq = changes.status, changes.seq
        self.events.update((e.seq, e) for e in changes.events)
        self.tickets.update((t.ticket_key, t) for t in changes.tickets)
        self.notifications.update((n.dedupe_key, n) for n in changes.notifications)

    def timeline(self) -> list[TimelineEntry]:
        return [self.events[seq] for seq in sorted(self.events)]


class Books:
    def __init__(self, policies: dict[str, Policy]) -> None:
        self._policies = policies
        self.cases: dict[str, CaseBook] = {}

    def policy(self, run: str) -> Policy:
        return self._policies[run]

    def policy_of(self, workflow_id: str) -> Policy:
        return self._policies[run_of(workflow_id)]

    def keep(self, changes: CaseChanges) -> list[str]:
        """Keep the changes; nothing is left to deliver."""
        self.cases.setdefault(changes.workflow_id, CaseBook()).add(changes)
        return []

    def local_writes(self) -> dict[str, Callable[..., Any]]:
        """The case's local activities, by name, as calls on the books with the case's workflow id first:
        the simulator's worker runs them in the case's own activation (simulator/replay.py)."""
        return {
            PolicySource.current_policy.__name__: lambda workflow_id: self.policy_of(workflow_id),
            CaseWriter.record_and_send.__name__: lambda _, changes: self.keep(changes),
        }

    @activity.defn(name=PolicySource.current_policy.__name__)
    async def current_policy(self) -> Policy:
        workflow_id = activity.info().workflow_id
        assert workflow_id is not None, "the policy is snapshotted by a case"
        return self.policy_of(workflow_id)

    @activity.defn(name=CaseWriter.record_and_send.__name__)
    async def record_and_send(self, changes: CaseChanges) -> list[str]:
        return self.keep(changes)
