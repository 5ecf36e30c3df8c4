"""The standup Schedule: the digest workflow each business morning in the support calendar's timezone.

`ensure_standup_schedule` creates the schedule or replaces its spec and action, so `starter.py
schedule-standup` and the dev stack may call it at every start: one schedule, always matching the
policy. The business days are the calendar's days with opening hours; its listed holidays are skipped
by the schedule itself, and the workflow checks the calendar again when it runs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

import structlog
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

from workflows.calendar import DAY_KEYS, BusinessCalendar
from workflows.outbox_relay import OutboxRelayWorkflow
from workflows.policy import Policy
from workflows.standup import StandupDigestWorkflow, StandupRequest

log = structlog.get_logger(__name__)

STANDUP_SCHEDULE_ID = "abh-standup-digest"
RELAY_SCHEDULE_ID = "abh-outbox-relay"
RELAY_EVERY = timedelta(minutes=1)
DEFAULT_STANDUP_AT = time(9, 15)
CATCHUP_WINDOW = timedelta(hours=3)
"""After an outage the missed digest still runs if the server is back within this; later it is skipped."""
RUN_TIMEOUT = timedelta(hours=12)
"""A digest stuck behind an outage gives up before the next morning's, which it would otherwise block."""

_WHOLE_DAY = {
    "hour": [ScheduleRange(0, 23)],
    "minute": [ScheduleRange(0, 59)],
    "second": [ScheduleRange(0, 59)],
}


def parse_at(text: str) -> time:
    """ "09:15" -> 09:15; the standup time is a local wall-clock time in the calendar's zone."""
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"standup time {text!r} is not HH:MM (e.g. 09:15)") from None


def temporal_weekdays(calendar: BusinessCalendar) -> list[ScheduleRange]:
    """The calendar's days with opening hours, numbered as Temporal does (0 is Sunday)."""
    days = [(DAY_KEYS.index(key) + 1) % 7 for key, windows in calendar.spec.hours.items() if windows]
    return [ScheduleRange(d) for d in sorted(days)]


def holiday_skips(calendar: BusinessCalendar, today: date) -> list[ScheduleCalendarSpec]:
    """Every listed holiday from today on, as a whole local day the schedule skips."""
    return [
        ScheduleCalendarSpec(
            year=[ScheduleRange(d.year)],
            month=[ScheduleRange(d.month)],
            day_of_month=[ScheduleRange(d.day)],
            comment=f"holiday {d.isoformat()}",
            **_WHOLE_DAY,
        )
        for d in sorted(calendar.spec.holiday_dates())
        if d >= today
    ]


def standup_schedule(
    policy: Policy,
    task_queue: str,
    *,
    at: time = DEFAULT_STANDUP_AT,
    calendar: str | None = None,
    schedule_id: str = STANDUP_SCHEDULE_ID,
    request: StandupRequest | None = None,
    now: datetime | None = None,
) -> Schedule:
    name = calendar or policy.default_calendar
    if name not in policy.calendars:
        raise ValueError(f"unknown calendar {name!r}; the policy has: {', '.join(sorted(policy.calendars))}")
    cal = BusinessCalendar(policy.calendar_spec(name), name=name)
    today = cal.local_date(now or datetime.now(UTC))
    spec = ScheduleSpec(
        calendars=[
            ScheduleCalendarSpec(
                hour=[ScheduleRange(at.hour)],
                minute=[ScheduleRange(at.minute)],
                day_of_week=temporal_weekdays(cal),
                comment=f"standup at {at:%H:%M} {cal.timezone} on the {name!r} calendar's business days",
            )
        ],
        skip=holiday_skips(cal, today),
        time_zone_name=cal.timezone,
    )
    action = ScheduleActionStartWorkflow(
        StandupDigestWorkflow.run,
        request or StandupRequest(calendar=calendar),
        id=schedule_id,
        task_queue=task_queue,
        run_timeout=RUN_TIMEOUT,
        static_summary=f"Standup digest ({name} calendar)",
    )
    return Schedule(
        action=action,
        spec=spec,
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=CATCHUP_WINDOW),
        state=ScheduleState(note=f"managed by ABH: standup digest at {at:%H:%M} {cal.timezone}"),
    )


async def ensure_standup_schedule(
    client: Client,
    policy: Policy,
    task_queue: str,
    *,
    at: time = DEFAULT_STANDUP_AT,
    calendar: str | None = None,
    schedule_id: str = STANDUP_SCHEDULE_ID,
    request: StandupRequest | None = None,
) -> Literal["created", "updated"]:
    """Create the schedule, or bring an existing one up to date; an operator's pause is kept."""
    wanted = standup_schedule(
        policy, task_queue, at=at, calendar=calendar, schedule_id=schedule_id, request=request
    )
    try:
        await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        pass
    else:
        log.info("standup schedule created", schedule_id=schedule_id, at=f"{at:%H:%M}")
        return "created"

    def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        wanted.state = current.description.schedule.state
        return ScheduleUpdate(schedule=wanted)

    await client.get_schedule_handle(schedule_id).update(replace)
    log.info("standup schedule updated", schedule_id=schedule_id, at=f"{at:%H:%M}")
    return "updated"


async def next_standups(
    client: Client, zone_name: str, schedule_id: str = STANDUP_SCHEDULE_ID
) -> list[datetime]:
    """The schedule's next run instants, in the calendar's zone."""
    description = await client.get_schedule_handle(schedule_id).describe()
    zone = ZoneInfo(zone_name)
    return [t.astimezone(zone) for t in description.info.next_action_times]


async def schedule_standup_command(
    client: Client,
    policy: Policy,
    task_queue: str,
    *,
    at: str | None = None,
    calendar: str | None = None,
    schedule_id: str = STANDUP_SCHEDULE_ID,
) -> str:
    """What `starter.py schedule-standup [--at 09:15] [--calendar NAME]` prints."""
    when = parse_at(at) if at else DEFAULT_STANDUP_AT
    standup_schedule(policy, task_queue, at=when, calendar=calendar)  # refuse a bad calendar up front
    outcome = await ensure_standup_schedule(
        client, policy, task_queue, at=when, calendar=calendar, schedule_id=schedule_id
    )
    zone = policy.calendar_spec(calendar).timezone
    upcoming = await next_standups(client, zone, schedule_id)
    lines = [f"{outcome} schedule {schedule_id}: standup digest at {when:%H:%M} {zone}; next runs:"]
    lines += [f"  {t:%a %Y-%m-%d %H:%M %Z}" for t in upcoming[:5]]
    return "\n".join(lines)


async def ensure_outbox_relay_schedule(
    client: Client, task_queue: str, *, every: timedelta = RELAY_EVERY, schedule_id: str = RELAY_SCHEDULE_ID
) -> Literal["created", "updated"]:
    """The relay that delivers what cases left pending, every `every`; workers keep it at each start."""
    wanted = Schedule(
        action=ScheduleActionStartWorkflow(
            OutboxRelayWorkflow.run,
            id=schedule_id,
            task_queue=task_queue,
            run_timeout=timedelta(minutes=15),
            static_summary="Deliver notifications cases left pending",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=every),
        state=ScheduleState(note="managed by ABH workers: the outbox relay"),
    )
    try:
        await client.create_schedule(schedule_id, wanted)
    except ScheduleAlreadyRunningError:
        pass
    else:
        log.info("outbox relay schedule created", schedule_id=schedule_id, every=str(every))
        return "created"

    def replace(current: ScheduleUpdateInput) -> ScheduleUpdate:
        wanted.state = current.description.schedule.state
        return ScheduleUpdate(schedule=wanted)

    await client.get_schedule_handle(schedule_id).update(replace)
    return "updated"
