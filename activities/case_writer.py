"""One local activity per change of a case: store it, then send what it raised.

A case's changes (case row, timeline entries, Tech Lead tickets, outbox rows) are stored in one
transaction, and while the case's deliveries are healthy its notifications are sent in the same activity,
within a short budget: one marker in the case's history instead of two activities and two workflow tasks.
What is not sent in time, or fails for a while, is left pending for the `deliver` activity, which retries
in rounds and shows the case as needing attention.
"""

from __future__ import annotations

from temporalio import activity

from activities.case_store import CaseChanges, CaseStore
from activities.notifications import Notifier

# Sends start only while this much time has passed since the activity began; one already started always
# finishes (a send cut short would leave an e-mail in doubt), bounded by the sender's own timeout.
SEND_BUDGET_SECONDS = 2.0


class CaseWriter:
    def __init__(self, store: CaseStore, notifier: Notifier) -> None:
        self._store = store
        self._notifier = notifier

    @activity.defn
    async def record_and_send(self, changes: CaseChanges) -> list[str]:
        """Store the batch; returns the dedupe keys of its notifications still to be delivered."""
        pending = await self._store.record_changes(changes)
        if not changes.send_now or not pending:
            return pending
        return await self._notifier.deliver_promptly(pending, SEND_BUDGET_SECONDS)
