"""The business calendar's cost: `python -m bench.calendar --runs 50 --weeks 3`.

Adds `--weeks` of business time (35 hours a week, two windows a day, across the spring clock change in
London) from a calendar built afresh each call, as a case's first deadline does, and then from one
calendar that has already walked those days. Prints the time per call of each.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bench.stack import header
from workflows.calendar import BusinessCalendar, CalendarSpec

SPEC = CalendarSpec(
    timezone="Europe/London",
    hours={day: ["09:00-12:30", "13:30-17:00"] for day in ("mon", "tue", "wed", "thu", "fri")},
)
START = datetime(2026, 3, 20, 10, tzinfo=UTC)


def per_call(runs: int, call: Callable[[], object]) -> float:
    """Seconds per call of `call`, over `runs` calls."""
    began = time.perf_counter()
    for _ in range(runs):
        call()
    return (time.perf_counter() - began) / runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--weeks", type=int, default=3)
    args = parser.parse_args()
    header()
    span = timedelta(hours=35 * args.weeks)
    warm = BusinessCalendar(SPEC)
    due = warm.add(START, span)
    cold = per_call(args.runs, lambda: BusinessCalendar(SPEC).add(START, span))
    walked = per_call(args.runs, lambda: warm.add(START, span))
    print(f"{args.weeks} weeks of business time from {START:%Y-%m-%d %H:%M} UTC, {args.runs} runs")
    print(f"due: {due:%Y-%m-%d %H:%M} UTC")
    print(f"cold calendar: {cold * 1e6:.0f} us a call; warm calendar: {walked * 1e6:.0f} us a call")


if __name__ == "__main__":
    main()
