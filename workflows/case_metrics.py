"""Case metrics, counted as the case's events happen: opened and closed cases, escalations, breaches,
time to engagement and to resolution.

Recorded through the workflow's metric meter, which records nothing while a history is replayed, so a
worker restart or a cache eviction never counts an event twice. The worker's runtime exports them with
the SDK's own metrics (`ABH_METRICS_PORT`); without an exporter they cost nothing.
"""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

from workflows.events import Plan
from workflows.models import CaseStatus, EventType

OPENED = "abh_cases_opened_total"
CLOSED = "abh_cases_closed_total"
ESCALATIONS = "abh_escalations_total"
BREACHES = "abh_breaches_total"
TIME_TO_ENGAGEMENT = "abh_time_to_engagement_seconds"
TIME_TO_RESOLUTION = "abh_time_to_resolution_seconds"
# Bucket bounds in seconds: from a demo's seconds to a business week.
DURATION_BUCKETS = (1, 5, 15, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800)


def observe(case: CaseStatus, plan: Plan) -> None:
    """Count the event `plan` publishes for `case` (called once per event, after the case changed)."""
    kind = plan.entry.type
    priority = case.priority.value
    meter = workflow.metric_meter()
    if kind is EventType.OPENED:
        meter.create_counter(OPENED, "Cases opened").add(1, {"priority": priority})
    elif kind is EventType.ENGAGED and case.engagement == 1 and case.engaged_at is not None:
        _seconds(
            TIME_TO_ENGAGEMENT,
            "From opened_at to the first engagement",
            case.opened_at,
            case.engaged_at,
            priority,
        )
    elif kind is EventType.ESCALATED:
        level = str(plan.entry.data.get("level", ""))
        meter.create_counter(ESCALATIONS, "Escalation tickets raised").add(
            1, {"priority": priority, "level": level}
        )
    elif kind is EventType.SLA_BREACHED:
        milestone = str(plan.entry.data.get("milestone", ""))
        meter.create_counter(BREACHES, "Milestone targets missed").add(
            1, {"priority": priority, "milestone": milestone}
        )
    elif kind is EventType.RESOLVED and case.resolved_at is not None:
        _seconds(
            TIME_TO_RESOLUTION,
            "From opened_at to each resolution",
            case.opened_at,
            case.resolved_at,
            priority,
        )
    elif kind is EventType.CLOSED:
        reason = case.close_reason.value if case.close_reason else ""
        meter.create_counter(CLOSED, "Cases closed").add(1, {"priority": priority, "close_reason": reason})


def _seconds(name: str, description: str, start: datetime, end: datetime, priority: str) -> None:
    seconds = max((end - start).total_seconds(), 0.0)
    workflow.metric_meter().create_histogram_float(name, description, "s").record(
        seconds, {"priority": priority}
    )
