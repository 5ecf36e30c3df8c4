"""Who hears about what: roles to addresses, and the facts a message template may use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from workflows import formats
from workflows.clocks import Due
from workflows.models import CaseStatus, NotificationKind, Phase, TimelineEntry
from workflows.policy import Channel, Policy, Role


@dataclass(frozen=True)
class Recipient:
    role: Role
    channel: Channel
    address: str


def recipients(
    case: CaseStatus, policy: Policy, role: Role, channel: Channel | None = None, at: datetime | None = None
) -> list[Recipient]:
    """Where `role` is reached at `at` (a rotating role: whoever is on duty then; default: the opening):
    on `channel` if given, else on the policy's channels for the role.

    Empty where the case has no address (no TAM on file, no phone for a call).
    """
    customer = case.ticket.customer
    roster = policy.roster
    when_told = at or case.opened_at
    email: dict[Role, str | None] = {
        Role.CUSTOMER: str(customer.contact_email),
        Role.TAM: str(customer.tam_email) if customer.tam_email else None,
        Role.ASSIGNEE: case.assignee,
        Role.TECH_LEAD: roster.tech_lead_at(when_told),
        Role.ENGINEERING_MANAGER: roster.engineering_manager_at(when_told),
        Role.TEAM: roster.team_email,
    }
    channels: list[Channel] = (
        [channel] if channel else ["email"] if role is Role.CUSTOMER else policy.routing.channels_for(role)
    )
    found = []
    for ch in channels:
        match ch:
            case "call":
                address = customer.contact_phone if role is Role.CUSTOMER else None
            case "chat":
                address = roster.team_channel if role is Role.TEAM else None
            case "page" | "email":
                address = email[role]
        if address:
            found.append(Recipient(role=role, channel=ch, address=address))
    return found


def recipients_of(
    case: CaseStatus,
    policy: Policy,
    kind: NotificationKind,
    roles: Sequence[Role],
    channel: Channel | None,
    at: datetime | None = None,
) -> list[Recipient]:
    """Who receives a notification of `kind` meant for `roles` at `at`, after the policy's routing."""
    return [
        r
        for role in policy.routing.roles_for(kind, list(roles))
        for r in recipients(case, policy, role, channel, at)
    ]


STATE_TEXT_LIMIT = 500


def shortened(entry: TimelineEntry) -> TimelineEntry:
    """The copy of a timeline entry the case keeps in its state: long texts clipped, so the state stays
    small enough to continue as new; PostgreSQL keeps the full entry."""

    def long(value: Any) -> bool:
        return isinstance(value, str) and len(value) > STATE_TEXT_LIMIT

    def clip(text: str) -> str:
        return text[: STATE_TEXT_LIMIT - 1] + "…" if long(text) else text

    if not long(entry.detail) and not any(long(v) for v in entry.data.values()):
        return entry
    data = {k: clip(v) if isinstance(v, str) else v for k, v in entry.data.items()}
    return entry.model_copy(update={"detail": clip(entry.detail), "data": data})


when = formats.instant
duration = formats.duration


def facts(case: CaseStatus) -> dict[str, str]:
    """What every template can say about the case."""
    t = case.ticket
    first = (
        next(ms for ms in case.milestones if ms.name.value == "first_response") if case.milestones else None
    )
    return {
        "ticket_id": t.ticket_id,
        "subject": t.subject,
        "priority": case.priority.value,
        "phase": case.phase.value,
        "customer_name": t.customer.name,
        "account_id": t.customer.account_id,
        "contact_email": str(t.customer.contact_email),
        "contact_phone": t.customer.contact_phone or "",
        "assignee": case.assignee or "unassigned",
        "opened_at": when(case.opened_at),
        "engaged_at": when(case.engaged_at),
        "queued_until": when(case.queued_until),
        "first_response_target": duration(first.target) if first else "-",
        "confirmation_due_at": when(case.confirmation_due_at),
        "resolution": case.resolution or "",
        "close_reason": case.close_reason.value if case.close_reason else "",
    }


def card(case: CaseStatus, due: Due | None) -> str:
    """The case at a glance, as markdown for the Web UI's current details."""
    t = case.ticket
    state = "paused (waiting on the customer)" if case.paused else case.phase.value
    head = [
        f"**{case.priority.value} · {state}** · {t.subject}",
        f"Assignee **{case.assignee or 'unassigned'}**",
        f"Customer: {t.customer.name} (`{t.customer.account_id}`) · TAM: {t.customer.tam_email or '-'}",
        f"Opened {when(case.opened_at)} · engaged {when(case.engaged_at)}",
    ]
    if case.queued_until is not None:
        head.append(f"Queued until {when(case.queued_until)}")
    if due is not None and case.phase is not Phase.CLOSED:
        head.append(f"**Next:** {due.summary()}")
    if case.phase is Phase.AWAITING_CONFIRMATION:
        head.append(f"Awaiting the customer's confirmation until {when(case.confirmation_due_at)}")
    if case.close_reason is not None:
        head.append(f"**Closed** {when(case.closed_at)}: {case.close_reason.value}")
    milestones = [
        f"- **{m.name.value}** ({duration(m.target)}): due {when(m.due_at)} · {m.state.value}"
        for m in case.milestones
    ]
    tail = []
    if case.escalations:
        raised = ", ".join(
            f"{e.level} (engagement {e.engagement}, {when(e.raised_at)})" for e in case.escalations
        )
        tail.append(f"**Escalations:** {raised}")
    for esc in case.awaiting_acknowledgement:
        again = f"; told again {when(esc.repeat_due_at)}" if esc.repeat_due_at else ""
        tail.append(
            f"**Waiting for acknowledgement:** {esc.level} by {esc.owner or '-'} since {when(esc.raised_at)}"
            f" ({esc.repeats} reminders{again})"
        )
    cycle = next((c for c in reversed(case.cycles) if c.open), None)
    if cycle is not None:
        tail.append(f"**{cycle.milestone.value}** cycle {cycle.number}: due {when(cycle.due_at)}")
    if case.sla_breached:
        tail.append("**SLA breached**")
    for trouble in case.attention:
        error = trouble.error.replace("`", "'")
        tail.append(
            f"**Needs attention:** {trouble.what} failing since {when(trouble.since)}"
            f" ({trouble.rounds} rounds): `{error}`"
        )
    return "  \n".join(head) + "\n\n" + "\n".join(milestones) + ("\n\n" + "  \n".join(tail) if tail else "")
