"""When each recorded action reaches the simulated case (pure: tested without a server).

Actions are replayed at their recorded instants, moved onto the server's clock. One exception: nobody can
act on a case the policy keeps queued, so an action that needs an engaged case and was recorded before
the policy under test would engage it (a candidate with shorter hours, say) waits until just after
engagement, in its recorded order.

The replay follows a case until its horizon. A ticket the recorded data leaves resolved is given HORIZON
after its last action, to close by itself (reminders, the no-response closure). One it leaves open is
followed to the end of the recorded window (or to its last action, when the policy defers one past it)
and no further: nothing is known of it after that, and a case left to run on would invent a month of
breaches and reminders that nobody could have recorded.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from simulator.replay import HORIZON, Replay, Step
from simulator.tickets import RecordedTicket
from simulator.timeshift import moved
from workflows.clocks import clocks_for, engagement_start
from workflows.models import Phase
from workflows.policy import Policy

# Deferred actions arrive this long after the case engages, so the engagement is recorded first.
AFTER_ENGAGEMENT = timedelta(seconds=1)


def engaged_at(ticket: RecordedTicket, policy: Policy) -> datetime:
    """When the case engages under `policy`: at opening, or at the next opening of its calendar; a
    change of priority before then re-triages it (a queued case raised to P1 engages at once)."""
    first = engagement_start(clocks_for(policy, ticket.priority, ticket.calendar), ticket.opened_at)
    changed = ticket.priority_changed_at
    if changed is None or ticket.new_priority is None or changed >= first:
        return first
    again = engagement_start(clocks_for(policy, ticket.new_priority, ticket.calendar), ticket.opened_at)
    return max(changed, again)


def replay_of(
    case_id: str, ticket: RecordedTicket, policy: Policy, years: int, window_end: datetime
) -> Replay:
    """The ticket's replay under `policy`, its dates moved by `years`; `window_end` is the last instant
    of the recorded window, not moved."""
    moved_ticket = ticket.moved(lambda at: moved(at, years))
    engaged = engaged_at(moved_ticket, policy)
    steps = []
    for at, field, action in moved_ticket.actions():
        if Phase.QUEUED not in action.accepted_in and at < engaged:
            at = engaged + AFTER_ENGAGEMENT
        steps.append(Step(at=at, action=action.action, payload=action.model_dump(mode="json"), field=field))
    steps.sort(key=lambda s: s.at)
    last = max([moved_ticket.opened_at, *(s.at for s in steps)])
    ends_at = last + HORIZON if ticket.left_resolved else max(last, moved(window_end, years))
    return Replay(
        case_id=case_id, ticket=moved_ticket.case_input(moved_ticket.opened_at), steps=steps, ends_at=ends_at
    )
