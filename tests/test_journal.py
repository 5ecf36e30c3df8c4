"""How the journal splits a burst of timeline entries into activity inputs Temporal accepts."""

from __future__ import annotations

from datetime import UTC, datetime

from workflows.journal import PART_BYTES, PART_ENTRIES, in_parts
from workflows.models import TimelineEntry

AT = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)


def entries(count: int, text: str = "note") -> list[TimelineEntry]:
    return [TimelineEntry(seq=n, at=AT, type="note", detail=text) for n in range(1, count + 1)]


def test_a_few_entries_are_one_part() -> None:
    few = entries(3)
    assert in_parts(few) == [few]


def test_many_short_entries_are_cut_at_the_entry_cap() -> None:
    parts = in_parts(entries(PART_ENTRIES * 2 + 1))
    assert [len(p) for p in parts] == [PART_ENTRIES, PART_ENTRIES, 1]
    assert [e.seq for p in parts for e in p] == list(range(1, PART_ENTRIES * 2 + 2))


def test_long_entries_are_cut_by_size_and_keep_their_order() -> None:
    long = entries(250, "x" * 10_000)
    parts = in_parts(long)
    assert [e for p in parts for e in p] == long
    assert all(p and sum(len(e.model_dump_json()) for e in p) <= PART_BYTES for p in parts)
    assert len(parts) == 5


def test_an_entry_bigger_than_the_budget_goes_alone() -> None:
    huge = entries(2, "x" * (PART_BYTES + 1))
    assert in_parts(huge) == [[huge[0]], [huge[1]]]
