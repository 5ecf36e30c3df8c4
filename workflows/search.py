"""The case's search attributes: what operators filter on in the Web UI and `temporal workflow list`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, SearchAttributeUpdate

from workflows.models import CaseStatus

CASE_PRIORITY = SearchAttributeKey.for_keyword("CasePriority")
CASE_PHASE = SearchAttributeKey.for_keyword("CasePhase")
CASE_CUSTOMER = SearchAttributeKey.for_keyword("CaseCustomer")
CASE_ASSIGNEE = SearchAttributeKey.for_keyword("CaseAssignee")
CASE_ESCALATED = SearchAttributeKey.for_bool("CaseEscalated")
CASE_SLA_BREACHED = SearchAttributeKey.for_bool("CaseSlaBreached")
CASE_OPENED_AT = SearchAttributeKey.for_datetime("CaseOpenedAt")
CASE_NEEDS_ATTENTION = SearchAttributeKey.for_bool("CaseNeedsAttention")
# How many escalation levels of the current engagement wait for their owner's acknowledgement (filter
# `CaseEscalationUnacknowledged > 0`). An Int, not a Bool: SQL visibility stores (the dev server, the
# compose stack's PostgreSQL) have three Bool columns, all taken.
CASE_ESCALATION_UNACKNOWLEDGED = SearchAttributeKey.for_int("CaseEscalationUnacknowledged")

ALL_KEYS = (
    CASE_PRIORITY,
    CASE_PHASE,
    CASE_CUSTOMER,
    CASE_ASSIGNEE,
    CASE_ESCALATED,
    CASE_SLA_BREACHED,
    CASE_OPENED_AT,
    CASE_NEEDS_ATTENTION,
    CASE_ESCALATION_UNACKNOWLEDGED,
)
# Set only once true (or above 0), so the first upsert of a case is what it was before the attribute existed.
SET_WHEN_TRUE = (CASE_NEEDS_ATTENTION, CASE_ESCALATION_UNACKNOWLEDGED)

Values = dict[str, str | bool | int | datetime | None]


def values_of(case: CaseStatus) -> Values:
    return {
        CASE_PRIORITY.name: case.priority.value,
        CASE_PHASE.name: case.phase.value,
        CASE_CUSTOMER.name: case.ticket.customer.account_id,
        CASE_ASSIGNEE.name: case.assignee,
        CASE_ESCALATED.name: case.escalated,
        CASE_SLA_BREACHED.name: case.sla_breached,
        CASE_OPENED_AT.name: case.opened_at,
        CASE_NEEDS_ATTENTION.name: case.needs_attention,
        CASE_ESCALATION_UNACKNOWLEDGED.name: len(case.awaiting_acknowledgement),
    }


def updates(before: Values, after: Values) -> list[SearchAttributeUpdate[Any]]:
    """Only what changed, so history gains an upsert event only when the case really moved."""
    changed: list[SearchAttributeUpdate[Any]] = []
    for key in ALL_KEYS:
        value = after[key.name]
        if before.get(key.name, ...) == value:
            continue
        if key in SET_WHEN_TRUE and key.name not in before and not value:
            continue
        changed.append(key.value_unset() if value is None else key.value_set(value))  # type: ignore[arg-type]
    return changed


def pairs_at_start(case: CaseStatus) -> list[SearchAttributePair[Any]]:
    """The attributes a starter sets so a case is findable from its first second."""
    values = values_of(case)
    return [
        SearchAttributePair(key, values[key.name])
        for key in ALL_KEYS
        if values[key.name] is not None and key not in SET_WHEN_TRUE
    ]
