"""Routing from the policy: which roles hear of a message kind, and on which channels."""

from __future__ import annotations

from datetime import UTC, datetime

from tests.cases import default_policy, ticket
from workflows.messages import recipients
from workflows.models import CaseStatus, Phase, Priority
from workflows.policy import Role, Routing, load_policy


def case(**customer: object) -> CaseStatus:
    t = ticket("T-9", "P1")
    t = t.model_copy(update={"customer": t.customer.model_copy(update=customer)})
    opened = datetime(2026, 11, 27, tzinfo=UTC)
    return CaseStatus(
        workflow_id="case-T-9",
        ticket=t,
        priority=Priority.P1,
        phase=Phase.ENGAGED,
        opened_at=opened,
        assignee="a@x.example",
    )


def test_the_shipped_file_matches_the_built_in_defaults() -> None:
    assert load_policy().routing == Routing()


def test_tech_lead_is_paged_and_mailed_and_the_team_hears_in_chat() -> None:
    policy = default_policy()
    lead = recipients(case(), policy, Role.TECH_LEAD)
    assert [(r.channel, r.address) for r in lead] == [
        ("page", "tech-lead@support.example"),
        ("email", "tech-lead@support.example"),
    ]
    assert [(r.channel, r.address) for r in recipients(case(), policy, Role.TEAM)] == [
        ("chat", "#support-standup")
    ]


def test_a_role_without_an_address_is_skipped() -> None:
    policy = default_policy()
    assert recipients(case(tam_email=None), policy, Role.TAM) == []
    assert recipients(case(contact_phone=None), policy, Role.CUSTOMER, "call") == []


def test_routing_overrides_come_from_the_policy() -> None:
    policy = default_policy(
        routing=Routing(
            kinds={"milestone_breach": [Role.ASSIGNEE, Role.TEAM]}, channels={Role.TAM: ["email"]}
        )
    )
    assert policy.routing.roles_for("milestone_breach", [Role.TAM]) == [Role.ASSIGNEE, Role.TEAM]
    assert policy.routing.roles_for("follow_up", [Role.CUSTOMER]) == [Role.CUSTOMER]
    assert policy.routing.channels_for(Role.TECH_LEAD) == ["email"]
