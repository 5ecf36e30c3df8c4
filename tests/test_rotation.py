"""Rotating rosters: the person on duty at the instant of the escalation is the one told, across the
clock changes of the rotation's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from pydantic import ValidationError
from temporalio.testing import WorkflowEnvironment

from tests.cases import advance_to, case_worker, default_policy, rows, settled, status_when, ticket
from workflows.rotation import Rotation

LONDON = ZoneInfo("Europe/London")
PEOPLE = ["ana@support.example", "ben@support.example", "cleo@support.example"]
ROTATION = Rotation(
    people=PEOPLE,
    handoff_day="mon",
    handoff_time=time(9, 0),
    timezone="Europe/London",
    starting=date(2026, 1, 5),
)


def london(day: date, hh: int, mm: int) -> datetime:
    return datetime.combine(day, time(hh, mm), tzinfo=LONDON)


@pytest.mark.parametrize(
    "monday",
    [
        date(2026, 1, 12),  # GMT
        date(2026, 3, 30),  # the first Monday of BST (clocks went forward on Sunday the 29th)
        date(2026, 6, 15),  # BST
        date(2026, 10, 26),  # the first Monday of GMT again (clocks went back on Sunday the 25th)
        date(2027, 3, 29),  # the first Monday of BST the next year, past the end of the list
    ],
)
def test_an_escalation_at_0859_and_one_at_0901_reach_different_people(monday: date) -> None:
    weeks = (monday - ROTATION.starting).days // 7
    before, after = ROTATION.on_duty(london(monday, 8, 59)), ROTATION.on_duty(london(monday, 9, 1))
    assert (before, after) == (PEOPLE[(weeks - 1) % 3], PEOPLE[weeks % 3])


def test_the_handoff_is_at_0900_local_time_in_utc_terms_too() -> None:
    summer, winter = date(2026, 6, 15), date(2026, 12, 14)
    assert ROTATION.handoff(summer).astimezone(ZoneInfo("UTC")).hour == 8
    assert ROTATION.handoff(winter).astimezone(ZoneInfo("UTC")).hour == 9
    # One second before and at the handoff, whatever the offset.
    for day in (summer, winter):
        at = ROTATION.handoff(day)
        assert ROTATION.on_duty(at - timedelta(seconds=1)) != ROTATION.on_duty(at)


def test_the_whole_week_between_handoffs_is_one_persons() -> None:
    start = ROTATION.handoff(date(2026, 10, 19))  # a week holding the autumn clock change
    hours = [start + timedelta(hours=h) for h in range(0, 7 * 24 + 1)]
    on_duty = {ROTATION.on_duty(t) for t in hours if t < ROTATION.handoff(date(2026, 10, 26))}
    assert on_duty == {PEOPLE[(date(2026, 10, 19) - ROTATION.starting).days // 7 % 3]}


def test_a_rotation_must_start_on_its_handoff_day_in_a_known_zone() -> None:
    with pytest.raises(ValidationError, match="not the handoff day mon"):
        ROTATION.model_validate(ROTATION.model_dump() | {"starting": date(2026, 1, 6)})
    with pytest.raises(ValidationError, match="unknown IANA time zone"):
        ROTATION.model_validate(ROTATION.model_dump() | {"timezone": "Europe/Atlantis"})


@pytest.mark.parametrize("month", [1, 7], ids=["GMT", "BST"])
async def test_the_tech_lead_on_duty_when_the_escalation_is_raised_is_paged(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str, month: int
) -> None:
    """In winter and in summer: the 09:00 London handoff is 09:00 UTC in one and 08:00 UTC in the other."""
    policy = default_policy()
    policy = policy.model_copy(update={"roster": policy.roster.model_copy(update={"tech_lead": ROTATION})})
    start = await time_env.get_current_time()
    month_starts = datetime(start.year + (start.month >= month), month, 1, tzinfo=UTC)
    await time_env.sleep(month_starts - start)
    # 05:00 UTC is before the handoff less 61 minutes in both: 07:59 UTC in summer, 08:59 UTC in winter.
    now = await advance_to(time_env, 0, time(5, 0))
    assert now.month == month
    monday_nine = ROTATION.handoff(now.astimezone(LONDON).date())
    await time_env.sleep(monday_nine - timedelta(minutes=61) - now)
    async with case_worker(time_env, pool, task_queue, policy) as cases:
        early = await cases.open(ticket(f"{ticket_id}-a", "P1"))
        await status_when(early, lambda s: s.engaged_at is not None)
        await time_env.sleep(timedelta(minutes=2))
        late = await cases.open(ticket(f"{ticket_id}-b", "P1"))
        await status_when(late, lambda s: s.engaged_at is not None)
        await time_env.sleep(timedelta(minutes=61))
        first = await settled(early, pool)
        second = await settled(late, pool)

    raised = [first.escalations[0].raised_at, second.escalations[0].raised_at]
    assert raised[0] < monday_nine < raised[1]
    paged = []
    for handle in (early, late):
        [t] = await rows(pool, "escalations", handle.id)
        pages = {
            n["recipient"] for n in await rows(pool, "notifications", handle.id) if n["channel"] == "page"
        }
        assert pages == {t["assignee"]}
        paged.append(t["assignee"])
    assert paged == [ROTATION.on_duty(raised[0]), ROTATION.on_duty(raised[1])]
    assert paged[0] != paged[1]
