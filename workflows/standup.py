"""StandupDigestWorkflow: each business morning, tell the team what needs them today.

Started by the standup Schedule (stack/schedules.py). It reads the current policy (a calendar the
policy no longer has fails the run at once, naming it, rather than failing its workflow task every
morning), stops early on a day the support calendar is closed (a holiday added after the schedule was
last set), reads the digest and sends it to the team channel and the team e-mail through the outbox.
The dedupe keys come from this run's workflow id, which the Schedule makes unique per scheduled
instant, so a retried activity or a re-run of the same id never sends the digest twice.
"""

from __future__ import annotations

from datetime import date, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from workflows.calendar import BusinessCalendar
from workflows.digest import digest_facts, ticket_ids

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, Field

    from activities.notifications import Notification, Notifier
    from activities.policy_source import PolicySource
    from activities.standup import DigestQuery, StandupActivities
    from workflows.models import NotificationKind
    from workflows.policy import Channel, Policy, Role

STANDUP_WORKFLOW_TYPE = "StandupDigestWorkflow"
DIGEST_KIND = NotificationKind.STANDUP_DIGEST
DEFAULT_TEAM_EMAIL = "support-team@support.example"

# A database or sender outage delays the digest; the schedule's run timeout bounds how late it may be.
PATIENT = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))
ACTIVITY_TIMEOUT = timedelta(seconds=30)


class StandupRequest(BaseModel):
    """The schedule's argument. Every field has a default, so a bare trigger works."""

    calendar: str | None = None
    oldest: int = Field(default=5, ge=1, le=100)
    limit: int = Field(default=25, ge=1, le=500)
    team_email: str | None = None
    force: bool = False


class StandupResult(BaseModel):
    day: date
    skipped: bool = False
    note: str = ""
    sections: dict[str, list[str]] = Field(default_factory=dict)
    delivered: int = 0


def team_email(policy: Policy, request: StandupRequest) -> str:
    """The request's address, else the roster's `team_email` (when the policy has one), else the default."""
    roster_email = getattr(policy.roster, "team_email", None)
    return request.team_email or (str(roster_email) if roster_email else DEFAULT_TEAM_EMAIL)


@workflow.defn(name=STANDUP_WORKFLOW_TYPE)
class StandupDigestWorkflow:
    @workflow.run
    async def run(self, request: StandupRequest) -> StandupResult:
        policy = await workflow.execute_activity_method(
            PolicySource.current_policy,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=PATIENT,
            summary="Read the support policy",
        )
        name = request.calendar or policy.default_calendar
        if name not in policy.calendars:
            known = ", ".join(sorted(policy.calendars))
            raise ApplicationError(
                f"calendar {name!r} is not in the policy (it has {known}): run `starter.py "
                "schedule-standup --calendar NAME` with one of them",
                type="UnknownCalendar",
                non_retryable=True,
            )
        calendar = BusinessCalendar(policy.calendar_spec(name), name=name)
        now = workflow.now()
        day = calendar.local_date(now)
        if not request.force and not calendar.is_business_day(day):
            note = f"{day:%A %Y-%m-%d} is not a business day in calendar {name!r}: no standup digest"
            workflow.logger.info(note)
            return StandupResult(day=day, skipped=True, note=note)

        digest = await workflow.execute_activity_method(
            StandupActivities.collect_standup_digest,
            DigestQuery(as_of=now, oldest=request.oldest, limit=request.limit),
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=PATIENT,
            summary="Read open, escalated, breached and oldest cases",
        )
        facts = digest_facts(digest, calendar.zone, name)
        targets: list[tuple[Channel, str]] = [
            ("chat", policy.roster.team_channel),
            ("email", team_email(policy, request)),
        ]
        run_id = workflow.info().workflow_id
        batch = [
            Notification(
                dedupe_key=f"{run_id}:{DIGEST_KIND}:{Role.TEAM.value}:{channel}",
                workflow_id=run_id,
                seq=0,
                kind=DIGEST_KIND,
                channel=channel,
                role=Role.TEAM,
                recipient=address,
                facts=facts,
            )
            for channel, address in targets
            if address
        ]
        delivered = await workflow.execute_activity_method(
            Notifier.send_notifications,
            batch,
            start_to_close_timeout=ACTIVITY_TIMEOUT,
            retry_policy=PATIENT,
            summary=f"Send the standup digest to {', '.join(a for _, a in targets)}",
        )
        return StandupResult(
            day=day,
            note=f"digest for {digest.open_cases} open cases",
            sections=ticket_ids(digest),
            delivered=delivered,
        )
