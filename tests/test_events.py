"""Who is told what, from the pure plan of each event: no Temporal, microseconds per case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.cases import default_policy, ticket
from workflows import events
from workflows.messages import recipients_of
from workflows.models import (
    CaseStatus,
    CloseReason,
    EventType,
    Milestone,
    MilestoneStatus,
    Phase,
    Priority,
)
from workflows.policy import Policy, Role, Routing

OPENED = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def case(priority: str = "P1", engagement: int = 1, **customer: object) -> CaseStatus:
    t = ticket("T-1", priority)
    t = t.model_copy(update={"customer": t.customer.model_copy(update=customer)})
    return CaseStatus(
        workflow_id="case-T-1",
        ticket=t,
        priority=Priority(priority),
        phase=Phase.ENGAGED,
        opened_at=OPENED,
        engagement=engagement,
        assignee="oncall@support.example",
    )


def told(plan: events.Plan, status: CaseStatus, policy: Policy) -> list[tuple[str, str, str, str]]:
    """(kind, role, channel, address) of every notification the plan sends."""
    return [
        (tell.kind.value, r.role.value, r.channel, r.address)
        for tell in plan.tells
        for r in recipients_of(status, policy, tell.kind, tell.roles, tell.channel)
    ]


def test_a_p1_engagement_calls_and_mails_the_customer_and_tells_the_tam() -> None:
    status, policy = case("P1"), default_policy()
    plan = events.engaged(status, policy, OPENED)
    assert plan.entry.type is EventType.ENGAGED
    assert told(plan, status, policy) == [
        ("customer_call", "customer", "call", "+1 555 0100"),
        ("case_opened", "customer", "email", "ops@acme.example"),
        ("tam_update", "tam", "email", "tam@support.example"),
    ]


def test_a_p3_engagement_only_mails_the_customer() -> None:
    status, policy = case("P3"), default_policy()
    assert told(events.engaged(status, policy, OPENED), status, policy) == [
        ("case_opened", "customer", "email", "ops@acme.example")
    ]


def test_a_reopen_tells_the_assignee_and_the_tam_with_the_customers_words() -> None:
    status, policy = case("P2", engagement=2), default_policy()
    plan = events.engaged(status, policy, OPENED, note="still failing")
    assert plan.entry.detail == "engagement 2: reopened, escalation clock restarted"
    assert told(plan, status, policy) == [
        ("case_reopened", "assignee", "email", "oncall@support.example"),
        ("case_reopened", "tam", "email", "tam@support.example"),
    ]
    assert plan.tells[0].facts == {"note": "still failing"}


def test_a_breach_names_its_milestone_as_data_and_tells_assignee_and_tam() -> None:
    status, policy = case(), default_policy()
    ms = MilestoneStatus(
        name=Milestone.DATA_VERIFIED, target=timedelta(hours=2), due_at=OPENED + timedelta(hours=2)
    )
    plan = events.milestone_breached(ms)
    assert plan.entry.data == {"milestone": "data_verified"}
    assert [(k, role) for k, role, _, _ in told(plan, status, policy)] == [
        ("milestone_breach", "assignee"),
        ("milestone_breach", "tam"),
    ]
    assert plan.tells[0].facts["target"] == "2h"


def test_the_tech_lead_escalation_pages_and_mails_the_lead_and_tells_the_tam_and_team() -> None:
    status, policy = case(), default_policy()
    level = next(lv for lv in policy.escalations if lv.name == "tech_lead")
    plan = events.escalated(level, "k-1", events.escalation_reason(level, 1))
    assert plan.entry.detail == "tech_lead ticket k-1: unresolved 1h after engagement 1"
    assert told(plan, status, policy) == [
        ("escalation", "tech_lead", "page", "tech-lead@support.example"),
        ("escalation", "tech_lead", "email", "tech-lead@support.example"),
        ("escalation", "tam", "email", "tam@support.example"),
        ("escalation", "team", "chat", "#support-standup"),
    ]


def test_raised_to_p1_calls_the_customer_and_moves_the_case_off_the_team_queue() -> None:
    status, policy = case("P3"), default_policy()
    assert events.raised_to_call(policy, Priority.P3, Priority.P1)
    assert not events.raised_to_call(policy, Priority.P1, Priority.P2)
    plan = events.priority_changed(
        Priority.P3,
        Priority.P1,
        "outage",
        contact=True,
        reassigned_to="oncall@support.example",
        policy=policy,
    )
    assert [e.type for e in (plan.entry, *plan.then)] == [EventType.PRIORITY_CHANGED, EventType.ASSIGNED]
    assert [k for k, *_ in told(plan, status, policy)] == ["customer_call", "tam_update"]
    quiet = events.priority_changed(
        Priority.P1, Priority.P2, None, contact=False, reassigned_to=None, policy=policy
    )
    assert quiet.tells == () and quiet.then == ()


def test_a_cancellation_tells_nobody_and_a_confirmed_close_tells_the_customer() -> None:
    status, policy = case(), default_policy()
    assert told(events.closed(CloseReason.CANCELLED, "dup", tell_tam=False), status, policy) == []
    assert told(events.closed(CloseReason.CONFIRMED, events.CONFIRMED, tell_tam=True), status, policy) == [
        ("case_closed", "customer", "email", "ops@acme.example"),
        ("tam_update", "tam", "email", "tam@support.example"),
    ]


def test_the_tam_hears_of_the_resolution_only_where_the_priority_says() -> None:
    policy = default_policy()
    assert events.tells_tam(policy, Priority.P1, "resolution")
    assert not events.tells_tam(policy, Priority.P3, "resolution")
    assert events.resolved("fixed", "eng", tell_tam=False).tells == ()


def test_actions_that_only_record_tell_nobody() -> None:
    for plan in (
        events.noted("looking", "eng"),
        events.paused(None),
        events.resumed("back"),
        events.confirmed(None),
        events.rejected("no"),
        events.contacted("call", None),
        events.milestone_verified(Milestone.FIRST_RESPONSE, late=True, by="eng", note=None),
        events.refused("resolved\n<b>", "not engaged"),
    ):
        assert plan.tells == ()
    assert events.refused("resolved\n<b>", "x").entry.data["action"] == "resolved\\n<b>"


def test_the_policy_routes_a_kind_elsewhere_and_a_missing_address_is_skipped() -> None:
    policy = default_policy(routing=Routing(kinds={"case_opened": [Role.CUSTOMER, Role.TEAM]}))
    status = case("P3", tam_email=None)
    assert told(events.engaged(status, policy, OPENED), status, policy) == [
        ("case_opened", "customer", "email", "ops@acme.example"),
        ("case_opened", "team", "chat", "#support-standup"),
    ]
    warned = events.milestone_warned(
        MilestoneStatus(name=Milestone.FIRST_RESPONSE, target=timedelta(hours=1))
    )
    assert [k for k, *_ in told(warned, status, policy)] == ["milestone_warning"]
