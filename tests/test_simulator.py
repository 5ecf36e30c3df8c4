"""`starter.py simulate`: twenty hand-built tickets replayed under two policies on the time-skipping
server, every printed figure checked against outcomes worked out by hand.

The policies (tests/simulation/policy-*.toml) differ in two things: the Tech Lead is called after 60
minutes (baseline) or 30 (candidate), and a P2's first response is due within 1 hour or 30 minutes.
Business hours are Mon-Fri 09:00-17:00 UTC; P1 runs round the clock. Only escalations (to the Tech
Lead) and follow-ups (to the customer) are sent, so the notifications can be counted by hand too.

The tickets (tests/simulation/month.csv), opened in the week of Monday 2026-11-02, and what each policy
makes of them (E: engagement; esc: Tech Lead ticket; fr/dv/ts: first response, data verified,
troubleshooting, each breached when verified after its due instant):

| ticket | opened | E | baseline | candidate |
|---|---|---|---|---|
| T01 P1 | Mon 10:00 | 10:00 | resolved 10:50: no esc | esc 10:30 |
| T02 P1 | Mon 23:00 | 23:00 | fr 23:20 > 23:15 breached; esc Tue 00:00 | fr breached; esc Mon 23:30 |
| T03 P1 | Tue 03:00 | 03:00 | dv 03:40 > 03:30, ts 04:30 > 04:00; esc 04:00 | same breaches; esc 03:30 |
| T04 P1 | Wed 14:10 | 14:10 | resolved 15:09 < 15:10: no esc | esc 14:40 |
| T05 P1 | Thu 08:00 | 08:00 | fr, dv, ts all a minute late; esc 09:00 | same; esc 08:30 |
| T06 P1 | Fri 20:00 | 20:00 | resolved 20:25: nothing | nothing |
| T07 P2 | Mon 09:30 | 09:30 | fr 10:15 < 10:30; esc 10:30 | fr 10:15 > 10:00 breached; esc 10:00 |
| T08 P2 | Mon 18:00 | Tue 09:00 | esc Tue 10:00 | esc Tue 09:30 |
| T09 P2 | Tue 16:40 | 16:40 | fr due Wed 09:40, met 09:20; esc 09:40 | fr due 09:10: breached; esc 09:10 |
| T10 P2 | Wed 10:00 | 10:00 | esc 11:00 | esc 10:30 |
| T11 P2 | Thu 11:00 | 11:00 | resolved 11:28: nothing | nothing |
| T12 P3 | Mon 11:00 | 11:00 | esc 12:00 | esc 11:30 |
| T13 P3 | Sat 10:00 | Mon 9th 09:00 | resolved 09:50: no esc | esc Mon 9th 09:30 |
| T14 P3 | Thu 15:00 | 15:00 | fr due Fri 11:00, met 11:30: breached; esc 16:00 | same breach; esc 15:30 |
| T15 P4 | Tue 09:00 | 09:00 | resolved 09:40, never confirmed: closed no_response | esc 09:30; no_response |
| T16 P4 | Wed 13:00 | 13:00 | esc 14:00 | esc 13:30 |
| T17 P4 | Fri 15:50 | 15:50 | fr due Mon 15:50, met 16:30: breached; esc 16:50 | same breach; esc 16:20 |
| T18 P2 | Tue 10:00 | 10:00 | paused 10:25-11:25, so esc due 12:00; resolved 11:50 first | esc 11:30 |
| T19 P3 | Wed 09:00 | 09:00 | P1 from 09:10: dv due 09:30, met 09:35: breached; esc 10:00 | same; esc 09:30 |
| T20 P1 | Thu 12:00 | 12:00 | never resolved: esc 13:00, open at the end | esc 12:30, open |
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import starter
from simulator.figures import Simulation
from simulator.render import render
from simulator.run import simulate
from simulator.tickets import read_tickets
from workflows.policy import load_policy

HERE = Path(__file__).parent / "simulation"
MONTH, BASELINE, CANDIDATE = HERE / "month.csv", HERE / "policy-baseline.toml", HERE / "policy-candidate.toml"

# Worked out by hand from the table above.
BREACHES = {  # "priority milestone": (cases, baseline breached, candidate breached)
    "P1 first_response": (8, 2, 2),  # T02, T05 (T19 counts as a P1: its priority at the end)
    "P1 data_verified": (8, 3, 3),  # T03, T05, T19
    "P1 troubleshooting": (8, 2, 2),  # T03, T05
    "P2 first_response": (6, 0, 2),  # candidate: T07, T09
    "P2 data_verified": (6, 0, 0),
    "P2 troubleshooting": (6, 0, 0),
    "P3 first_response": (3, 1, 1),  # T14
    "P3 data_verified": (3, 0, 0),
    "P3 troubleshooting": (3, 0, 0),
    "P4 first_response": (3, 1, 1),  # T17
    "P4 data_verified": (3, 0, 0),
    "P4 troubleshooting": (3, 0, 0),
}
# Opened -> resolved in minutes, sorted; median and p90 interpolate between closest ranks.
# P1: 25 50 59 70 80 100 120 -> median 70, p90 100 + 0.4 x 20 = 108
# P2: 28 80 110 230 1050 1130 -> median 170, p90 1050 + 0.5 x 80 = 1090
# P3: 105 1380 2870 -> median 1380, p90 1380 + 0.8 x 1490 = 2572
# P4: 40 100 4385 -> median 100, p90 100 + 0.8 x 4285 = 3528
# all 19 -> median 100 (the tenth), p90 x16 + 0.2 (x17 - x16) = 1380 + 298 = 1678
MTTR = {  # priority: (resolved, median, p90), the same under both policies (resolutions are recorded)
    "P1": (7, "1h10m", "1h48m"),
    "P2": (6, "2h50m", "18h10m"),
    "P3": (3, "23h", "1d18h52m"),
    "P4": (3, "1h40m", "2d10h48m"),
    "all": (19, "1h40m", "1d3h58m"),
}
# Within an hour of engagement: all but T09 (escalated the next morning) and T18 (resolved after 110
# minutes; the candidate's Tech Lead came after 90 wall-clock minutes, the pause included).
INTERVENTION = (18, 20)
ESCALATIONS_BY_DAY = {  # day: (baseline, candidate)
    "2026-11-02": (2, 4),  # baseline T07 T12; candidate T01 T02 T07 T12
    "2026-11-03": (3, 4),  # T02 T03 T08; T03 T08 T15 T18
    "2026-11-04": (4, 5),  # T09 T10 T16 T19; T04 T09 T10 T16 T19
    "2026-11-05": (3, 3),  # T05 T14 T20
    "2026-11-06": (1, 1),  # T17
    "2026-11-09": (0, 1),  # T13
}
TECH_LEAD_BY_HOUR = {  # hour: (baseline, candidate); every other hour 0
    0: (1, 0),  # T02
    3: (0, 1),  # T03
    4: (1, 0),  # T03
    8: (0, 1),  # T05
    9: (2, 5),  # T05 T09; T08 T09 T13 T15 T19
    10: (3, 3),  # T07 T08 T19; T01 T07 T10
    11: (1, 2),  # T10; T12 T18
    12: (1, 1),  # T12; T20
    13: (1, 1),  # T20; T16
    14: (1, 1),  # T16; T04
    15: (0, 1),  # T14
    16: (2, 1),  # T14 T17; T17
    23: (0, 1),  # T02
}
NOTIFICATIONS = {"escalation": (13, 18), "follow_up": (19, 19)}
CHANGED = ["T01", "T04", "T07", "T09", "T13", "T15", "T18"]


async def _starter(argv: list[str]) -> int:
    return await starter.run(starter.build_parser().parse_args(argv))


@pytest.fixture(scope="module")
async def month() -> Simulation:
    return await simulate(read_tickets(MONTH), load_policy(BASELINE), load_policy(CANDIDATE))


def _cells(table: str, label: str, section: str = "") -> list[str]:
    """The cells of the first row starting with `label` after the line starting with `section`."""
    lines = table.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(section))
    line = next(line for line in lines[start:] if line.startswith(label + " "))
    return re.split(r"\s{2,}", line.strip())


def percent(n: int, of: int) -> str:
    return f"{n * 100 / of:.1f}%"


async def test_every_printed_figure_matches_the_hand_computed_month(month: Simulation) -> None:
    table = render(month)
    assert "20 tickets, baseline policy 'hand-baseline', candidate policy 'hand-candidate'" in table
    for label, (cases, b, c) in BREACHES.items():
        assert _cells(table, label)[1:4] == [
            str(cases),
            f"{b} = {percent(b, cases)}",
            f"{c} = {percent(c, cases)}",
        ]
    for priority, (n, median, p90) in MTTR.items():
        assert _cells(table, priority, "Time to resolve")[1:] == [str(n), median, p90, median, p90]
    met, engaged = INTERVENTION
    assert f"baseline {met} of {engaged} = 90.0%; candidate {met} of {engaged} = 90.0%" in table
    for day, (b, c) in ESCALATIONS_BY_DAY.items():
        assert _cells(table, day) == [day, f"{b} / {c}"]
    for hour in range(24):
        b, c = TECH_LEAD_BY_HOUR.get(hour, (0, 0))
        assert _cells(table, f"{hour:02d}:00") == [f"{hour:02d}:00", str(b), str(c)]
    for kind, (b, c) in NOTIFICATIONS.items():
        assert _cells(table, kind) == [kind, str(b), str(c)]
    assert "Cases still open at the end: baseline 1, candidate 1" in table
    assert f"Tickets whose outcome changed: {len(CHANGED)}" in table
    assert [c.ticket_id for c in month.changed] == CHANGED
    t07 = next(c for c in month.changed if c.ticket_id == "T07")
    assert t07.baseline == "closed confirmed; escalated: tech_lead; breached: none"
    assert t07.candidate == "closed confirmed; escalated: tech_lead; breached: first_response"
    t15 = next(c for c in month.changed if c.ticket_id == "T15")
    assert t15.baseline == "closed no_response; escalated: none; breached: none"


async def test_a_file_shared_out_over_servers_in_processes_gives_the_same_figures(month: Simulation) -> None:
    """A large file runs in shards, each on its own server in a pool of processes: the month in three
    shards over two processes prints what one server printed, and the progress bar counts every replay."""
    seen: list[tuple[int, int]] = []
    sharded = await simulate(
        read_tickets(MONTH),
        load_policy(BASELINE),
        load_policy(CANDIDATE),
        lambda done, total: seen.append((done, total)),
        shard_replays=16,
        processes=2,
    )
    assert sharded.model_dump(exclude={"seconds"}) == month.model_dump(exclude={"seconds"})
    assert [c.ticket_id for c in sharded.changed] == CHANGED
    assert seen[-1] == (40, 40) and [done for done, _ in seen] == sorted(done for done, _ in seen)


async def test_json_and_csv_carry_the_same_figures(month: Simulation) -> None:
    data = json.loads(render(month, "json"))
    assert data["baseline"]["tech_lead_by_hour"][9] == 2 and data["candidate"]["tech_lead_by_hour"][9] == 5
    assert data["candidate"]["report"]["intervention"]["share"] == 0.9
    p2 = next(p for p in data["candidate"]["breaches"] if p["priority"] == "P2")
    assert p2["milestones"][0] == {"milestone": "first_response", "cases": 6, "breached": 2, "rate": 2 / 6}
    rows = render(month, "csv").splitlines()
    assert rows[0] == "section,key,metric,baseline,candidate"
    assert "breaches,P2 first_response,breached,0,2" in rows
    assert "mttr,P1,median_seconds,4200,4200" in rows
    assert "escalations,2026-11-09 tech_lead,tickets,0,1" in rows
    assert "tech_lead_load,09,tickets,2,5" in rows
    assert "cases,all,outcome_changed,,7" in rows


async def test_the_plot_is_drawn(month: Simulation, tmp_path: Path) -> None:
    from simulator.plot import plot

    png = tmp_path / "what-if.png"
    plot(month, png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert png.stat().st_size > 20_000


async def test_bad_rows_are_refused_with_row_and_field_and_nothing_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = MONTH.read_text().splitlines()
    lines[2] = lines[2].replace("P1", "P9", 1)
    lines[4] = lines[4].replace("2026-11-04T14:10:00Z", "yesterday", 1)
    lines[8] = lines[8].replace(",2026-11-03T09:20:00Z,", ",2026-11-01T09:20:00Z,", 1)
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    assert await _starter(["simulate", "--tickets", str(bad), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("refused: row 3: priority:")
    assert "row 5: opened_at:" in err
    assert "row 9: contacted_at: Value error, 2026-11-01T09:20:00+00:00 is before opened_at" in err


async def test_unknown_columns_and_calendars_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo.csv"
    typo.write_text("ticket_id,priority,opened_at,account_id,resolved\nT1,P1,2026-11-02T10:00:00Z,acme,\n")
    assert await _starter(["simulate", "--tickets", str(typo)]) == 2
    assert "unknown columns: resolved" in capsys.readouterr().err
    elsewhere = tmp_path / "calendar.jsonl"
    elsewhere.write_text(
        json.dumps(
            {
                "ticket_id": "T1",
                "priority": "P3",
                "opened_at": "2026-11-02T10:00:00Z",
                "account_id": "a",
                "calendar": "mars",
            }
        )
        + "\n"
    )
    assert await _starter(["simulate", "--tickets", str(elsewhere), "--baseline", str(BASELINE)]) == 2
    assert "calendar: mars not in policy 'hand-baseline'" in capsys.readouterr().err


async def test_a_ticket_resolved_the_instant_it_opened_prints_a_zero_mttr_in_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A zero duration is a figure (0 seconds), not a missing one."""
    zero = tmp_path / "zero.csv"
    zero.write_text(
        "ticket_id,priority,opened_at,account_id,contacted_at,resolved_at,confirmed_at\n"
        "Q1,P1,2026-11-03T10:00:00Z,acme,2026-11-03T10:00:00Z,2026-11-03T10:00:00Z,2026-11-03T10:05:00Z\n"
    )
    assert await _starter(["simulate", "--tickets", str(zero), "--baseline", str(BASELINE), "--csv"]) == 0
    assert "mttr,P1,median_seconds,0,0" in capsys.readouterr().out.splitlines()


HEADER = (
    "ticket_id,priority,opened_at,account_id,contacted_at,data_verified_at,troubleshooting_at,resolved_at"
)
OPENED = "2026-11-03T10:00:00Z"


async def _refusal(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, name: str = "t.csv") -> str:
    """What `simulate` says of a ticket file it refuses (it must refuse it, and print no figures)."""
    path = tmp_path / name
    path.write_text(text)
    assert await _starter(["simulate", "--tickets", str(path), "--baseline", str(BASELINE), "--json"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("refused: ")
    return err


async def test_a_row_the_case_would_refuse_is_refused_when_the_file_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Milestones verified out of order, an answer to a follow-up never sent, a change to the same
    priority: the case would refuse the action and the figures would quietly change."""
    at = [f"2026-11-03T{h}:00Z" for h in ("10:10", "10:20", "10:30", "11:00", "12:00")]
    err = await _refusal(
        tmp_path,
        capsys,
        f"{HEADER},confirmed_at,rejected_at,priority_changed_at,new_priority\n"
        f"A,P2,{OPENED},acme,{at[2]},{at[1]},{at[3]},{at[4]},,,,\n"  # data verified before the contact
        f"B,P2,{OPENED},acme,,{at[1]},,,,,,\n"  # data verified, never contacted
        f"C,P2,{OPENED},acme,{at[0]},{at[2]},{at[1]},,,,,\n"  # troubleshooting before data verified
        f"D,P2,{OPENED},acme,{at[0]},,{at[1]},,,,,\n"  # troubleshooting, data never verified
        f"E,P3,{OPENED},acme,{at[0]},,,{at[4]},{at[3]},,,\n"  # confirmed before the resolution
        f"F,P3,{OPENED},acme,{at[0]},,,,,{at[3]},,\n"  # rejected, never resolved
        f"G,P3,{OPENED},acme,{at[0]},,,{at[4]},,,{at[1]},P3\n"  # raised to the priority it has
        f"H,P3,{OPENED},acme,{at[0]},,,{at[4]},,,,P1\n",  # a new priority with no instant
    )
    assert f"row 2: data_verified_at: Value error, {at[1][:-1]}+00:00 is before contacted_at" in err
    assert "milestones are verified in order" in err
    assert "row 3: data_verified_at: Value error, needs an earlier contacted_at" in err
    assert (
        "row 4: troubleshooting_at: Value error, 2026-11-03T10:20:00+00:00 is before data_verified_at" in err
    )
    assert "row 5: troubleshooting_at: Value error, needs an earlier data_verified_at" in err
    assert "row 6: confirmed_at: Value error, 2026-11-03T11:00:00+00:00 is before resolved_at" in err
    assert "row 7: rejected_at: Value error, needs an earlier resolved_at" in err
    assert "row 8: new_priority: Value error, P3 is the ticket's priority already" in err
    assert "row 9: new_priority: Value error, needs a priority_changed_at" in err
    assert "payload" not in err


async def test_a_record_spanning_lines_is_named_by_its_first_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = await _refusal(
        tmp_path,
        capsys,
        "ticket_id,priority,opened_at,account_id\n"
        f"T1,P3,{OPENED},acme\n"
        f'T2,P9,{OPENED},"Acme\nSupport\nDesk"\n'
        "\n"
        f"T3,P7,{OPENED},acme\n",
    )
    assert err.startswith("refused: row 3: priority:") and "row 7: priority:" in err


async def test_rows_that_do_not_fit_the_header_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A cell too many or too few shifts the columns: it is never read as some other field."""
    err = await _refusal(
        tmp_path,
        capsys,
        f"{HEADER},priority_changed_at,new_priority\n"
        f"T1,P3,{OPENED},acme,2026-11-03T10:10:00Z,,,2026-11-03T12:00:00Z,,P1,garbage\n"
        f"T2,P3,{OPENED},acme\n",
    )
    assert "row 2: 11 cells, where the header has 10; row 3: 4 cells, where the header has 10" in err
    twice = f"ticket_id,priority,opened_at,account_id,contacted_at,contacted_at\nT1,P3,{OPENED},acme,,\n"
    err = await _refusal(tmp_path, capsys, twice)
    assert "row 1: contacted_at is named more than once in the header (columns 5, 6)" in err


async def test_a_trailing_comma_in_the_header_is_an_unnamed_empty_column(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    trailing = tmp_path / "trailing.csv"
    trailing.write_text(f"{HEADER},\nT1,P3,{OPENED},acme,2026-11-03T10:10:00Z,,,2026-11-03T12:00:00Z,\n")
    assert (
        await _starter(["simulate", "--tickets", str(trailing), "--baseline", str(BASELINE), "--json"]) == 0
    )
    assert json.loads(capsys.readouterr().out)["tickets"] == 1
    filled = trailing.read_text().replace("12:00:00Z,\n", "12:00:00Z,P1\n")
    err = await _refusal(tmp_path, capsys, filled)
    assert "row 2: column 9 is an unnamed column (blank in the header) but holds a value" in err


async def test_a_json_array_and_an_unknown_calendar_are_refused_plainly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one = {"ticket_id": "T1", "priority": "P3", "opened_at": OPENED, "account_id": "a"}
    err = await _refusal(tmp_path, capsys, json.dumps([one], indent=1), "tickets.json")
    assert "the file must be JSON lines, one ticket's object on each line" in err
    lines = [json.dumps(one), json.dumps({**one, "ticket_id": "T2", "calendar": "mars"})]
    err = await _refusal(tmp_path, capsys, "\n".join(lines) + "\n", "tickets.jsonl")
    assert "row 2: calendar: mars not in policy 'hand-baseline' (it has business)" in err


async def test_a_recorded_action_the_case_refuses_fails_its_replay_with_the_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rejected, then confirmed: the confirmation needs a second resolution, which a row cannot hold. The
    case refuses it, and the replay is listed as failed, out of the figures, instead of going on without
    it (the case left open at the end)."""
    reopened = tmp_path / "reopened.csv"
    reopened.write_text(
        "ticket_id,priority,opened_at,account_id,contacted_at,resolved_at,rejected_at,confirmed_at\n"
        f"R1,P3,{OPENED},acme,2026-11-03T10:10:00Z,2026-11-03T12:00:00Z,2026-11-03T13:00:00Z,"
        "2026-11-03T14:00:00Z\n"
        f"R2,P3,{OPENED},acme,2026-11-03T10:10:00Z,2026-11-03T12:00:00Z,,2026-11-03T14:00:00Z\n"
    )
    args = ["simulate", "--tickets", str(reopened), "--baseline", str(BASELINE), "--policy", str(CANDIDATE)]
    assert await _starter(args) == 0
    table = capsys.readouterr().out
    for policy in ("hand-baseline", "hand-candidate"):
        assert (
            f"Failed under '{policy}': R1: the case refused the recorded confirmed_at (customer_confirmed): "
            "case R1 is engaged; customer_confirmed is accepted only while awaiting_confirmation"
        ) in table
    assert "Cases still open at the end: baseline 0, candidate 0" in table
    assert _cells(table, "P3 first_response")[1] == "1"  # R2 alone


async def test_a_case_cut_off_at_the_window_end_within_the_hour_is_undecided_not_a_miss(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The replay ends an open case at the recorded window's last instant: a P1 opened then had no hour to
    be helped in, as a fresh case in a report run at that instant (`starter.py report`)."""
    cut = tmp_path / "cut.csv"
    cut.write_text(
        "ticket_id,priority,opened_at,account_id,contacted_at,resolved_at\n"
        f"A,P1,{OPENED},acme,2026-11-03T10:05:00Z,2026-11-03T10:30:00Z\n"
        "Z,P1,2026-11-05T12:00:00Z,acme,,\n"
    )
    assert await _starter(["simulate", "--tickets", str(cut), "--baseline", str(BASELINE), "--json"]) == 0
    intervention = json.loads(capsys.readouterr().out)["baseline"]["report"]["intervention"]
    assert (intervention["met"], intervention["engaged"], intervention["undecided"]) == (1, 1, 1)
    assert await _starter(["simulate", "--tickets", str(cut), "--baseline", str(BASELINE)]) == 0
    table = capsys.readouterr().out
    assert "baseline 1 of 1 = 100.0%" in table
    assert "undecided (open at the end, engaged less than that before it): baseline 1, candidate 1" in table


async def test_an_output_path_that_cannot_be_written_is_refused_before_anything_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-dir"
    for flag, name, why in [
        ("--plot", "x.png", f"there is no directory {missing}"),
        ("--save-tickets", "x.csv", f"there is no directory {missing}"),
        ("--plot", "x.txt", "the file must end in .png, .svg, .pdf"),
    ]:
        args = ["simulate", "--tickets", str(MONTH), "--baseline", str(BASELINE), flag, str(missing / name)]
        assert await _starter(args) == 2
        out, err = capsys.readouterr()
        assert out == "" and err == f"refused: {flag} {missing / name}: {why}\n"
