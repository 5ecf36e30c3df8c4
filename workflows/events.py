"""What each event of a case records and who is told: a pure plan, tested without Temporal.

CaseWorkflow changes the case (phase, milestones, escalations) and then publishes the plan of the event
that happened: the timeline entry, in the wording operators read, and the notifications, by kind and
role. The policy's routing and the case's addresses turn each told role into recipients
(`messages.recipients_of`). Every text of the timeline is written here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from workflows import formats
from workflows.models import (
    CaseStatus,
    CloseReason,
    Cycle,
    Escalation,
    EventType,
    Milestone,
    MilestoneStatus,
    NotificationKind,
    Priority,
    SlaClockEvent,
)
from workflows.policy import Channel, EscalationLevel, Policy, Role
from workflows.safe_text import shown


@dataclass(frozen=True)
class Entry:
    """A timeline entry before the journal numbers and stamps it."""

    type: EventType
    detail: str
    actor: str | None = None
    note: str | None = None
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tell:
    """Who hears of an entry: a message of `kind` to the roles the policy routes it to (`Routing`), or,
    for kinds the event addresses itself (the call, the TAM's word, an escalation), to `roles`."""

    kind: NotificationKind
    roles: tuple[Role, ...] = ()
    channel: Channel | None = None
    facts: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Plan:
    """An event: its entry, entries that follow from it, and who is told (keyed on the first entry)."""

    entry: Entry
    tells: tuple[Tell, ...] = ()
    then: tuple[Entry, ...] = ()


def only(type_: EventType, detail: str, **fields: Any) -> Plan:
    """An event that tells nobody."""
    return Plan(Entry(type_, detail, **fields))


# Opening and triage.


def opened(case: CaseStatus) -> Plan:
    source = case.ticket.source or "upstream"
    return only(EventType.OPENED, f"{case.priority.value} case opened by {source}: {case.ticket.subject}")


def assigned(assignee: str) -> Plan:
    return only(EventType.ASSIGNED, f"assigned to {assignee}", data={"assignee": assignee})


def queued(until: datetime) -> Plan:
    return Plan(
        Entry(EventType.QUEUED, f"outside business hours; queued until {formats.instant(until)}"),
        (Tell(NotificationKind.CASE_QUEUED),),
    )


def engaged(case: CaseStatus, policy: Policy, at: datetime, note: str = "") -> Plan:
    """The first engagement contacts the customer as the priority says; a reopen tells the assignee and
    the TAM that the escalation clock starts again."""
    if case.engagement > 1:
        return Plan(
            Entry(EventType.ENGAGED, f"engagement {case.engagement}: reopened, escalation clock restarted"),
            (Tell(NotificationKind.CASE_REOPENED, facts={"note": note}),),
        )
    prio = policy.for_priority(case.priority)
    tells = []
    if "call" in prio.contact:
        tells.append(Tell(NotificationKind.CUSTOMER_CALL, (Role.CUSTOMER,), channel="call"))
    tells.append(Tell(NotificationKind.CASE_OPENED))
    if "open" in prio.tam_told:
        tells.append(Tell(NotificationKind.TAM_UPDATE, (Role.TAM,), facts={"event": "case opened"}))
    return Plan(Entry(EventType.ENGAGED, f"engaged at {formats.instant(at)}"), tuple(tells))


def priority_changed(
    old: Priority,
    new: Priority,
    reason: str | None,
    *,
    contact: bool,
    reassigned_to: str | None,
    policy: Policy,
) -> Plan:
    """A change of priority; `contact` when the case was raised to a priority that calls the customer
    (`raised_to_call`), with the TAM told if that priority tells them of an opening."""
    tells: list[Tell] = []
    if contact:
        tells.append(Tell(NotificationKind.CUSTOMER_CALL, (Role.CUSTOMER,), channel="call"))
        if "open" in policy.for_priority(new).tam_told:
            tells.append(
                Tell(NotificationKind.TAM_UPDATE, (Role.TAM,), facts={"event": f"raised to {new.value}"})
            )
    return Plan(
        Entry(
            EventType.PRIORITY_CHANGED,
            f"{old.value} -> {new.value}",
            note=reason,
            data={"from": old, "to": new},
        ),
        tuple(tells),
        (assigned(reassigned_to).entry,) if reassigned_to else (),
    )


def raised_to_call(policy: Policy, old: Priority, new: Priority) -> bool:
    return "call" in policy.for_priority(new).contact and "call" not in policy.for_priority(old).contact


# Milestones and escalation.


def milestone_facts(ms: MilestoneStatus) -> dict[str, str]:
    return {
        "milestone": ms.name.value,
        "target": formats.duration(ms.target),
        "due_at": formats.instant(ms.due_at),
    }


def milestone_warned(ms: MilestoneStatus) -> Plan:
    return Plan(
        Entry(EventType.MILESTONE_WARNING, f"{ms.name.value} due {formats.instant(ms.due_at)}"),
        (Tell(NotificationKind.MILESTONE_WARNING, facts=milestone_facts(ms)),),
    )


def milestone_breached(ms: MilestoneStatus) -> Plan:
    """The breach carries its milestone as data: the report counts breaches from it, not the wording."""
    return Plan(
        Entry(
            EventType.SLA_BREACHED,
            f"{ms.name.value} missed its {formats.duration(ms.target)} target",
            data={"milestone": ms.name.value},
        ),
        (Tell(NotificationKind.MILESTONE_BREACH, facts=milestone_facts(ms)),),
    )


def milestone_verified(milestone: Milestone, *, late: bool, by: str | None, note: str | None) -> Plan:
    return only(
        EventType.MILESTONE_VERIFIED,
        f"{milestone.value} verified{' late' if late else ''}",
        actor=by,
        note=note,
    )


def escalation_reason(level: EscalationLevel, engagement: int) -> str:
    return f"unresolved {formats.duration(level.after)} after engagement {engagement}"


def escalated(level: EscalationLevel, ticket_key: str, reason: str) -> Plan:
    return Plan(
        Entry(EventType.ESCALATED, f"{level.name} ticket {ticket_key}: {reason}", data={"level": level.name}),
        (
            Tell(
                NotificationKind.ESCALATION,
                tuple(level.notify),
                facts={"level": level.name, "after": formats.duration(level.after)},
            ),
        ),
    )


def escalation_repeated(level: EscalationLevel, esc: Escalation) -> Plan:
    """The owner is told again that a level waits for their acknowledgement."""
    of = f"{esc.repeats} of {level.repeat}"
    return Plan(
        Entry(
            EventType.ESCALATION_REPEATED,
            f"{level.name} not acknowledged; {level.owner.value} told again ({of})",
            data={"level": level.name, "repeat": esc.repeats},
        ),
        (
            Tell(
                NotificationKind.ESCALATION_REPEATED,
                (level.owner,),
                facts={
                    "level": level.name,
                    "repeat": str(esc.repeats),
                    "repeats": str(level.repeat),
                    "raised_at": formats.instant(esc.raised_at),
                    "next_level_at": formats.instant(esc.next_level_due_at),
                },
            ),
        ),
    )


def escalation_acknowledged(level: str, by: str, note: str | None) -> Plan:
    return only(
        EventType.ESCALATION_ACKNOWLEDGED,
        f"{level} acknowledged by {by}",
        actor=by,
        note=note,
        data={"level": level},
    )


def early_escalation_reason(waiting: Escalation, level: EscalationLevel) -> str:
    within = formats.duration(level.ack_within)
    return f"{waiting.level} not acknowledged within {level.repeat + 1} x {within}"


# Recurring milestones.


def cycle_facts(cycle: Cycle, every: str) -> dict[str, str]:
    return {
        "milestone": f"{cycle.milestone.value} (cycle {cycle.number})",
        "target": every,
        "due_at": formats.instant(cycle.due_at),
    }


def cycle_data(cycle: Cycle) -> dict[str, Any]:
    return {"milestone": cycle.milestone.value, "cycle": cycle.number, "engagement": cycle.engagement}


def cycle_warned(cycle: Cycle, every: str) -> Plan:
    return Plan(
        Entry(
            EventType.UPDATE_WARNING,
            f"{cycle.milestone.value} cycle {cycle.number} due {formats.instant(cycle.due_at)}",
            data=cycle_data(cycle),
        ),
        (Tell(NotificationKind.MILESTONE_WARNING, facts=cycle_facts(cycle, every)),),
    )


def cycle_breached(cycle: Cycle, every: str) -> Plan:
    return Plan(
        Entry(
            EventType.UPDATE_BREACHED,
            f"{cycle.milestone.value} cycle {cycle.number} missed: no update in {every}",
            data=cycle_data(cycle),
        ),
        (Tell(NotificationKind.MILESTONE_BREACH, facts=cycle_facts(cycle, every)),),
    )


# SLA events.

SLA_WORDS = {
    "start": "started",
    "pause": "paused",
    "resume": "resumed",
    "retarget": "measured anew",
    "fulfil": "met",
    "breach": "breached",
}


def sla_clocks(moments: list[SlaClockEvent]) -> Plan:
    """One moment of the case's SLA clocks (all of one kind), for the timeline and the sla_events table."""
    kind = moments[0].event.value
    names = ", ".join(m.clock + (f" ({m.level})" if m.level else "") for m in moments)
    return only(
        EventType.SLA_CLOCK,
        f"SLA clock {SLA_WORDS[kind]}: {names}",
        data={"event": kind, "clocks": [m.model_dump(mode="json", exclude_defaults=True) for m in moments]},
    )


# Working the case.


def contacted(channel: str, note: str | None) -> Plan:
    return only(EventType.CUSTOMER_CONTACTED, f"customer contacted by {channel}", note=note)


def customer_updated(note: str | None, by: str | None, met: Cycle | None = None) -> Plan:
    """A progress update; `met`: the cycle of a recurring milestone it met."""
    if met is None:
        return only(EventType.CUSTOMER_UPDATED, "customer given a progress update", actor=by, note=note)
    return only(
        EventType.CUSTOMER_UPDATED,
        f"customer given a progress update: {met.milestone.value} cycle {met.number} met",
        actor=by,
        note=note,
        data=cycle_data(met),
    )


def paused(note: str | None) -> Plan:
    return only(EventType.PAUSED, "waiting on the customer; resolution clocks paused", note=note)


def resumed(note: str | None) -> Plan:
    return only(EventType.RESUMED, "customer replied; resolution clocks running", actor="customer", note=note)


def pause_reminded() -> Plan:
    return Plan(
        Entry(EventType.PAUSE_REMINDER_SENT, "customer reminded that we are waiting for them"),
        (Tell(NotificationKind.PAUSE_REMINDER),),
    )


def noted(text: str, by: str | None) -> Plan:
    return only(EventType.NOTE, text, actor=by)


def refused(action: str, reason: str) -> Plan:
    return only(EventType.REJECTED, reason, data={"action": shown(action)})


# Resolution, follow-up and closure.


def tells_tam(policy: Policy, priority: Priority, event: str) -> bool:
    return event in policy.for_priority(priority).tam_told


def resolved(summary: str, by: str | None, *, tell_tam: bool) -> Plan:
    """`tell_tam`: the TAM hears of the resolution now, not at the close (cases opened before that)."""
    tells = (Tell(NotificationKind.TAM_UPDATE, (Role.TAM,), facts={"event": f"resolved: {summary}"}),)
    return Plan(Entry(EventType.RESOLVED, summary, actor=by), tells if tell_tam else ())


def follow_up_sent(confirm_by: datetime | None) -> Plan:
    return Plan(
        Entry(EventType.FOLLOW_UP_SENT, f"confirmation requested by {formats.instant(confirm_by)}"),
        (Tell(NotificationKind.FOLLOW_UP),),
    )


def confirmation_reminded() -> Plan:
    return Plan(
        Entry(EventType.REMINDER_SENT, "customer reminded to confirm the resolution"),
        (Tell(NotificationKind.REMINDER),),
    )


def confirmed(note: str | None) -> Plan:
    return only(EventType.CUSTOMER_CONFIRMED, "customer confirmed the fix", actor="customer", note=note)


def rejected(note: str | None) -> Plan:
    return only(EventType.CUSTOMER_REJECTED, "customer says it is not fixed", actor="customer", note=note)


def cancelled(reason: str, by: str | None) -> Plan:
    return only(EventType.CANCELLED, reason, actor=by)


CONFIRMED = "customer confirmed the resolution"
NO_RESPONSE = "no answer from the customer within the confirmation window"


def closed(reason: CloseReason, detail: str, *, tell_tam: bool) -> Plan:
    """The customer hears of every close but a cancellation; `tell_tam` for cases whose TAM was not told
    at the resolution."""
    tells = []
    if reason is not CloseReason.CANCELLED:
        tells.append(Tell(NotificationKind.CASE_CLOSED))
    if tell_tam:
        tells.append(
            Tell(NotificationKind.TAM_UPDATE, (Role.TAM,), facts={"event": f"case closed ({reason.value})"})
        )
    return Plan(Entry(EventType.CLOSED, f"closed ({reason.value}): {detail}"), tuple(tells))
