"""Each simulated case read back from its book, on the recorded dates: the report's facts per case, and
its escalations with the local day and hour they were raised."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from console.report import CaseFacts
from simulator.books import CaseBook
from simulator.tickets import RecordedTicket
from simulator.timeshift import moved
from workflows.models import EventType, Priority
from workflows.policy import Policy, Role


class RaisedEscalation(BaseModel):
    level: str
    raised_at: datetime
    day: date
    """The local date, in the case calendar's zone."""
    hour: int
    to_tech_lead: bool
    """The level's owner is the Tech Lead."""


class SimulatedCase(BaseModel):
    ticket_id: str
    facts: CaseFacts
    escalations: list[RaisedEscalation]
    notifications: dict[str, int]
    """Notifications the case would have sent, by kind."""
    failure: str | None = None

    @property
    def still_open(self) -> bool:
        return self.facts.phase != "closed"


def simulated_case(
    ticket: RecordedTicket, book: CaseBook, policy: Policy, years: int, closed: bool, failure: str | None
) -> SimulatedCase:
    """The case as the report sees a stored one; `closed`: it closed by itself before the horizon (a
    case the replay had to end counts as open)."""
    back = -years
    status = book.status
    timeline = book.timeline()

    def at(t: datetime | None) -> datetime | None:
        """On the recorded dates, to the second: the milliseconds a timer or signal takes to arrive on
        the test server are not part of the outcome."""
        return None if t is None else moved(t, back).replace(microsecond=0)

    def first(kind: EventType) -> datetime | None:
        return next((at(e.at) for e in timeline if e.type == kind), None)

    zone = ZoneInfo(policy.calendar_spec(ticket.calendar).timezone)
    owners = {level.name: level.owner for level in policy.escalations}
    escalations = []
    for t in sorted(book.tickets.values(), key=lambda t: t.raised_at):
        raised = at(t.raised_at)
        assert raised is not None
        local = raised.astimezone(zone)
        escalations.append(
            RaisedEscalation(
                level=t.level,
                raised_at=raised,
                day=local.date(),
                hour=local.hour,
                to_tech_lead=owners.get(t.level) is Role.TECH_LEAD,
            )
        )
    notifications: dict[str, int] = {}
    for n in book.notifications.values():
        notifications[n.kind] = notifications.get(n.kind, 0) + 1
    facts = CaseFacts(
        workflow_id=ticket.ticket_id,
        priority=status.priority if status else Priority(ticket.priority),
        phase=status.phase.value if status and closed else "open",
        opened_at=ticket.opened_at,
        engaged_at=at(status.engaged_at) if status else None,
        first_engaged_event_at=first(EventType.ENGAGED),
        resolved_at=at(status.resolved_at) if status else None,
        first_resolved_event_at=first(EventType.RESOLVED),
        closed_at=at(status.closed_at) if status and closed else None,
        close_reason=status.close_reason.value if status and closed and status.close_reason else None,
        first_escalation_at=escalations[0].raised_at if escalations else None,
        milestone_states={m.name.value: m.state.value for m in status.milestones} if status else {},
        breached_in_timeline=[
            str(e.data["milestone"])
            for e in timeline
            if e.type == EventType.SLA_BREACHED and "milestone" in e.data
        ],
        cycles_met=sum(1 for e in timeline if e.type == EventType.CUSTOMER_UPDATED and "cycle" in e.data),
        cycles_breached=sum(1 for e in timeline if e.type == EventType.UPDATE_BREACHED),
    )
    return SimulatedCase(
        ticket_id=ticket.ticket_id,
        facts=facts,
        escalations=escalations,
        notifications=notifications,
        failure=failure,
    )
