"""Terminal renderings and visibility queries, without Temporal: what an operator reads must be complete,
and the query `starter.py list` sends must say exactly what its flags say."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta

import pytest
from rich.console import Console, RenderableType

from console import render, views
from console.read_models import AttentionReport, CaseRow, OutboxRow, StuckCase
from console.views import build_query, quoted, rows_json, timeline_json
from tests.cases import console_args, ticket
from workflows.models import (
    CaseStatus,
    CloseReason,
    Escalation,
    Milestone,
    MilestoneState,
    MilestoneStatus,
    Pause,
    Phase,
    Priority,
    TimelineEntry,
    Trouble,
)

T0 = datetime(2026, 11, 27, 14, 0, tzinfo=UTC)
DAY2 = timedelta(days=2)


def text_of(renderable: RenderableType) -> str:
    console = Console(width=200, color_system=None, record=True)
    with console.capture() as captured:
        console.print(renderable)
    return captured.get()


def words(text: str) -> str:
    """Text with runs of spaces squeezed, so asserts do not depend on column widths."""
    return " ".join(text.split())


def milestones() -> list[MilestoneStatus]:
    return [
        MilestoneStatus(
            name=Milestone.FIRST_RESPONSE,
            target=timedelta(minutes=15),
            due_at=T0 + timedelta(minutes=15),
            verified_at=T0 + timedelta(minutes=9),
            verified_by="alice",
            state=MilestoneState.MET,
        ),
        MilestoneStatus(
            name=Milestone.DATA_VERIFIED,
            target=timedelta(minutes=30),
            due_at=T0 + timedelta(minutes=30),
            state=MilestoneState.BREACHED,
        ),
        MilestoneStatus(
            name=Milestone.TROUBLESHOOTING,
            target=timedelta(minutes=60),
            due_at=T0 + timedelta(minutes=75),
            state=MilestoneState.WARNED,
        ),
    ]


def engaged_case(**changes: object) -> CaseStatus:
    status = CaseStatus(
        workflow_id="case-T-7",
        ticket=ticket("T-7", "P1", subject="Checkout [bold]API[/bold] down"),
        priority=Priority.P1,
        phase=Phase.ENGAGED,
        assignee="alice@support.example",
        opened_at=T0,
        engaged_at=T0,
        engagement=1,
        escalation_due_at=T0 + timedelta(minutes=60),
        milestones=milestones(),
        sla_breached=True,
        timeline=[
            TimelineEntry(seq=1, at=T0, type="opened", detail="P1 case opened by tests"),
            TimelineEntry(
                seq=2,
                at=T0 + timedelta(minutes=1),
                type="rejected",
                detail="case T-7 is engaged; customer_confirmed is accepted only while awaiting_confirmation",
                data={"action": "customer_confirmed"},
            ),
            TimelineEntry(
                seq=3,
                at=T0 + timedelta(minutes=9),
                type="customer_contacted",
                actor="alice",
                detail="customer contacted by call",
                data={"note": "bridge open"},
            ),
        ],
    )
    return status.model_copy(update=changes)


def test_card_shows_who_what_where_and_what_is_due_next() -> None:
    out = text_of(render.card(engaged_case(), now=T0 + timedelta(minutes=40)))
    for expected in (
        "case-T-7",
        "Checkout [bold]API[/bold] down",  # ticket text is never read as markup
        "alice@support.example",
        "Acme Corp (acme) · ops@acme.example, +1 555 0100",
        "tam@support.example",
        "2026-11-27 14:00:00 UTC (40m ago)",
        # the breached milestone is no longer a deadline; the warned one is the next
        "2026-11-27 15:00:00 UTC (in 20m): next escalation level",
        "SLA       breached",
        "No escalations.",
    ):
        assert expected in out, expected
    assert (
        "first_response    15m      2026-11-27 14:15:00 UTC   2026-11-27 14:09:00 UTC by alice   met" in out
    )
    assert "data_verified     30m      2026-11-27 14:30:00 UTC   -" in out and "breached" in out


def test_card_of_a_paused_escalated_case() -> None:
    case = engaged_case(
        paused=True,
        pauses=[
            Pause(started_at=T0 + timedelta(minutes=20), note="waiting for logs", reminder_due_at=T0 + DAY2)
        ],
        escalation_due_at=None,
        escalated=True,
        escalations=[
            Escalation(
                level="tech_lead",
                engagement=1,
                raised_at=T0 + timedelta(minutes=60),
                due_at=T0 + timedelta(minutes=60),
                ticket_key="case-T-7:1:tech_lead",
                notified=["tech_lead", "tam", "team"],
            )
        ],
    )
    case.milestones[2].due_at = None  # the resolution clocks stop while paused
    out = text_of(render.card(case, now=T0 + timedelta(hours=2)))
    assert "engaged · paused since 2026-11-27 14:20:00 UTC: waiting for logs" in out
    assert "troubleshooting   1h       paused" in out
    assert "reminder to the customer we wait for" in out
    assert (
        "tech_lead   1            2026-11-27 15:00:00 UTC   case-T-7:1:tech_lead   tech_lead, tam, team"
        in out
    )


def test_card_of_a_queued_and_of_a_closed_case() -> None:
    queued = engaged_case(
        phase=Phase.QUEUED, engaged_at=None, queued_until=T0 + timedelta(hours=19), escalation_due_at=None
    )
    out = text_of(render.card(queued, now=T0))
    assert "Queued until  2026-11-28 09:00:00 UTC" in out
    assert "2026-11-28 09:00:00 UTC (in 19h): engagement at the next business opening" in out

    closed = engaged_case(
        phase=Phase.CLOSED,
        resolution="rolled back release 42",
        resolved_at=T0 + timedelta(hours=1),
        close_reason=CloseReason.CONFIRMED,
        closed_at=T0 + timedelta(hours=2),
    )
    out = text_of(render.card(closed, now=T0 + timedelta(hours=3)))
    assert "Closed      confirmed at 2026-11-27 16:00:00 UTC" in out
    assert "Resolution  rolled back release 42 (2026-11-27 15:00:00 UTC)" in out
    assert "Next due" not in out


def test_awaiting_confirmation_is_due_its_reminder_then_its_window() -> None:
    case = engaged_case(
        phase=Phase.AWAITING_CONFIRMATION,
        reminder_due_at=T0 + DAY2,
        confirmation_due_at=T0 + 2 * DAY2,
    )
    deadline = render.next_deadline(case)
    assert deadline == render.Deadline(T0 + DAY2, "confirmation reminder to the customer")
    case.reminder_sent_at = T0 + DAY2
    assert render.next_deadline(case) == render.Deadline(
        T0 + 2 * DAY2, "confirmation window ends (no_response)"
    )


def test_history_lists_every_entry_and_marks_the_rejected() -> None:
    out = text_of(render.history(engaged_case()))
    assert "Timeline of case-T-7 (3 entries)" in out
    lines = [line for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [line.split()[0] for line in lines] == ["1", "2", "3"]
    assert "rejected customer_confirmed" in lines[1]
    assert "alice" in lines[2] and "customer contacted by call · note: bridge open" in lines[2]


def test_rejected_entries_are_styled_apart() -> None:
    table = render.history(engaged_case())
    assert [row.style for row in table.rows] == [None, "red", None]


ROWS = [
    CaseRow(
        workflow_id="case-T-7",
        ticket_id="T-7",
        priority="P1",
        phase="engaged",
        customer="acme",
        assignee="alice",
        escalated=True,
        breached=False,
        opened_at=T0,
        status="RUNNING",
    ),
    CaseRow(workflow_id="case-T-8", ticket_id="T-8", priority="P3", phase="closed", status="COMPLETED"),
]


def test_case_list_is_one_line_per_case_with_the_query_below() -> None:
    out = text_of(render.case_list(ROWS, query='CasePriority="P1"'))
    assert out.splitlines()[0].strip() == "2 cases"
    t7 = next(line for line in out.splitlines() if "case-T-7" in line).split()
    assert t7 == ["case-T-7", "P1", "engaged", "acme", "alice", "yes", "-", "2026-11-27", "14:00:00", "UTC"]
    t8 = next(line for line in out.splitlines() if "case-T-8" in line).split()
    assert t8 == ["case-T-8", "P3", "closed", "-", "-", "-", "-", "-"]
    assert 'CasePriority="P1"' in out
    assert "0 cases" in text_of(render.case_list([]))


def test_json_for_scripts() -> None:
    rows = json.loads(rows_json(ROWS))
    assert rows[0] == {
        "workflow_id": "case-T-7",
        "ticket_id": "T-7",
        "priority": "P1",
        "phase": "engaged",
        "customer": "acme",
        "assignee": "alice",
        "escalated": True,
        "breached": False,
        "opened_at": "2026-11-27T14:00:00Z",
        "status": "RUNNING",
        "closed_at": None,
    }
    entries = json.loads(timeline_json(engaged_case()))
    assert [e["type"] for e in entries] == ["opened", "rejected", "customer_contacted"]


def test_explain_still_reads_without_clocks() -> None:
    case = engaged_case(phase=Phase.CLOSED)
    assert render.explain(case) == "case T-7 has no running clocks (closed)"


WT = 'WorkflowType="CaseWorkflow"'


@pytest.mark.parametrize(
    ("kwargs", "query"),
    [
        ({}, WT),
        (
            {"priority": "P1", "escalated": True},
            f'{WT} AND CasePriority="P1" AND CaseEscalated=true',
        ),
        (
            {"customer": "acme", "phase": "open"},
            f'{WT} AND CasePhase!="closed" AND ExecutionStatus="Running" AND CaseCustomer="acme"',
        ),
        ({"phase": "closed", "breached": False}, f'{WT} AND CasePhase="closed" AND CaseSlaBreached=false'),
        (
            {
                "priority": "P2",
                "phase": "engaged",
                "assignee": "bob",
                "extra": 'TaskQueue="q" OR TaskQueue="r"',
            },
            f'{WT} AND CasePriority="P2" AND CasePhase="engaged" AND CaseAssignee="bob"'
            ' AND (TaskQueue="q" OR TaskQueue="r")',
        ),
        ({"customer": 'say "hi" \\o/'}, f'{WT} AND CaseCustomer="say \\"hi\\" \\\\o/"'),
        ({"extra": "   "}, WT),
    ],
)
def test_build_query(kwargs: dict[str, object], query: str) -> None:
    assert build_query(**kwargs) == query  # type: ignore[arg-type]


def test_build_query_refuses_what_is_no_priority_or_phase() -> None:
    with pytest.raises(ValueError, match="P9"):
        build_query(priority="P9")
    with pytest.raises(ValueError, match="resolved"):
        build_query(phase="resolved")


def test_quoted_value_cannot_end_the_string_early() -> None:
    assert quoted('a" OR WorkflowType!="x') == '"a\\" OR WorkflowType!=\\"x"'


def test_list_flags() -> None:
    args = console_args("list", "--priority", "P1", "--no-escalated", "--phase", "open", "--json")
    assert (args.priority, args.escalated, args.breached, args.phase, args.json) == (
        "P1",
        False,
        None,
        "open",
        True,
    )
    with pytest.raises(SystemExit):
        console_args("list", "--priority", "P7")
    status = console_args("status", "T-7", "--explain")
    assert (status.ticket_id, status.explain, status.json) == ("T-7", True, False)
    assert console_args("history", "T-7", "--json").json is True


def test_a_listing_written_to_a_pipe_is_not_squeezed_to_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("COLUMNS", "FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys.stdout, "isatty", lambda: False)
    out = views.output()
    assert out.width == 200
    with out.capture() as captured:
        out.print(render.case_list(ROWS))
    assert "2026-11-27 14:00:00 UTC" in captured.get()
    monkeypatch.setenv("COLUMNS", "90")
    assert views.output().width == 90


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0s"), (20, "20s"), (90, "1m30s"), (3600, "1h"), (3 * 86_400 + 7_205, "3d2h5s")],
)
def test_span_names_each_unit_once(seconds: int, text: str) -> None:
    assert render.span(timedelta(seconds=seconds)) == text


def test_web_ui_links_name_the_clients_namespace_and_escape_ids() -> None:
    from stack.web_ui import case_url

    assert case_url("http://ui:8233/", "support-prod", "case-T-1") == (
        "http://ui:8233/namespaces/support-prod/workflows/case-T-1"
    )
    assert case_url("http://ui", "ns", "case-a/b c") == "http://ui/namespaces/ns/workflows/case-a%2Fb%20c"


def test_instants_and_durations_read_the_same_everywhere() -> None:
    from datetime import datetime, timedelta, timezone

    from console.report import human
    from workflows import formats, messages
    from workflows.digest import age

    t = datetime(2026, 12, 2, 15, 28, 9, tzinfo=timezone(timedelta(hours=1)))
    assert formats.instant(t) == messages.when(t) == "2026-12-02 14:28 UTC"
    assert render.stamp(t) == "2026-12-02 14:28:09 UTC" and render.when(t) == "Wed 2026-12-02 14:28 UTC"
    d = timedelta(hours=1, minutes=30, seconds=20)
    assert messages.duration(d) == render.span(d) == "1h30m20s"
    assert human(d) == "1h30m" and age(d) == "2h" and age(timedelta(minutes=40)) == "40m"
    assert formats.duration(timedelta(days=2, hours=4)) == "2d4h" and formats.duration(None) == "-"
    assert formats.instant(None) == "-"


def test_outbox_and_attention_show_what_people_typed_verbatim() -> None:
    """Square brackets in a subject or an error are text, not rich markup: `[/checkout]` crashed the
    listing, `[bold red]` restyled it and `[t-1]` vanished."""
    now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
    subject = "[t-1] 500 on [/checkout] page [bold red]x[/bold red] [link=https://evil.example]click[/link]"
    error = "HTTPStatusError: 400 from chat: invalid channel [/support]"
    row = OutboxRow(
        dedupe_key="case-t-1/life:12:tam_update:tam:email",
        workflow_id="case-t-1",
        kind="tam_update",
        channel="email",
        role="tam",
        recipient="tam@acme.example",
        subject=subject,
        state="unknown",
        attempts=1,
        last_error=error,
        created_at=now,
        settled_at=None,
    )
    stuck = StuckCase(
        workflow_id="case-t-1",
        ticket_id="t-1",
        troubles=[Trouble(what="delivering [/x]", since=now, error=error)],
        note="status not available: [/oops]",
    )
    wide = Console(width=1000, color_system=None, record=True)
    with wide.capture() as captured:
        wide.print(render.attention(AttentionReport(cases=[stuck], notifications=[row])))
    shown = captured.get()
    for text in (subject, error, "delivering [/x]", "[/oops]"):
        assert text in shown, text
