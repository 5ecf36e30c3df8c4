"""Every message kind renders, as text and as HTML, from exactly the facts the workflow passes."""

from __future__ import annotations

from datetime import UTC, datetime
from importlib import resources

import pytest

from activities.notifications import render, render_html
from tests.cases import ticket
from workflows import messages
from workflows.models import CaseStatus, NotificationKind, Phase, Priority

NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)

# The `facts=` each call site in workflows/case.py adds to `messages.facts(case)`.
EXTRAS: dict[str, dict[str, str]] = {
    "case_opened": {},
    "customer_call": {},
    "case_queued": {},
    "tam_update": {"event": "case opened"},
    "milestone_warning": {"milestone": "first_response", "target": "1h00m", "due_at": "2026-11-24 11:00 UTC"},
    "milestone_breach": {"milestone": "first_response", "target": "1h00m", "due_at": "2026-11-24 11:00 UTC"},
    "escalation": {"level": "tech_lead", "after": "1h00m"},
    "escalation_repeated": {
        "level": "tech_lead",
        "repeat": "1",
        "repeats": "2",
        "raised_at": "2026-11-24 11:00 UTC",
        "next_level_at": "2026-11-24 11:45 UTC",
    },
    "follow_up": {},
    "reminder": {},
    "pause_reminder": {},
    "case_closed": {},
    "case_reopened": {"note": "still failing"},
}


def test_extras_and_the_standup_digest_are_every_kind() -> None:
    """The rendering tests run over EXTRAS: a new kind without its facts there would be skipped silently.
    The standup digest is rendered from a digest's facts, not a case's, in tests/test_standup.py."""
    assert NotificationKind.STANDUP_DIGEST not in EXTRAS
    assert {NotificationKind(k) for k in EXTRAS} | {NotificationKind.STANDUP_DIGEST} == set(NotificationKind)


def case_facts(priority: str = "P2", **ticket_fields: str) -> dict[str, str]:
    """The facts `messages.facts` derives from a real case, as the workflow would pass them."""
    status = CaseStatus(
        workflow_id="case-T-1",
        ticket=ticket("T-1", priority, **ticket_fields),
        priority=Priority(priority),
        phase=Phase.ENGAGED,
        opened_at=NOW,
        engaged_at=NOW,
        assignee="ana@support.example",
        resolution="Rolled back the release",
        confirmation_due_at=NOW,
    )
    return messages.facts(status)


@pytest.mark.parametrize("kind", sorted(EXTRAS))
@pytest.mark.parametrize("priority", ["P1", "P3"])
def test_every_kind_renders_as_text_and_html(kind: str, priority: str) -> None:
    facts = case_facts(priority) | EXTRAS[kind]
    subject, body = render(kind, facts)
    html = render_html(kind, facts, subject)
    assert subject and "T-1" in subject
    assert body.strip() and "{{" not in body
    assert html is not None and html.startswith("<!DOCTYPE html>")
    assert "T-1" in html and f"<title>{subject}</title>" in html


def test_html_escapes_what_the_customer_wrote_and_text_keeps_it() -> None:
    facts = case_facts("P2", subject='Checkout <script>alert("x")</script> & co')
    subject, body = render("case_opened", facts)
    html = render_html("case_opened", facts, subject)
    assert html is not None
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp; co" in html
    assert '<script>alert("x")</script> & co' in body


def test_a_blank_line_in_a_resolution_summary_stays_in_the_subject_line() -> None:
    facts = case_facts("P2") | {"event": "resolved: Root cause: full disk.\n\nIGNORE THE ABOVE"}
    subject, body = render("tam_update", facts)
    assert subject == "[T-1] Acme Corp: resolved: Root cause: full disk. IGNORE THE ABOVE"
    assert body == (
        "Acme Corp (acme) has a P2 case: Checkout API down\n"
        "What happened: resolved: Root cause: full disk.\n\nIGNORE THE ABOVE\n"
        "Phase: engaged. Assignee: ana@support.example.\n"
    )


@pytest.mark.parametrize("kind", sorted(EXTRAS))
def test_no_fact_can_end_the_subject_early(kind: str) -> None:
    """Ticket subjects, names and summaries are free text: a blank line in one is still the subject's."""
    plain = case_facts("P2") | EXTRAS[kind]
    subject, body = render(kind, {k: f"{v}\n\nWire the money" for k, v in plain.items()})
    assert "\n" not in subject and "Wire the money" in subject
    assert body.split("\n", 1)[0].split()[0] == render(kind, plain)[1].split()[0]


def test_a_kind_without_an_html_template_is_text_only() -> None:
    assert render_html("no_such_kind", case_facts(), "subject") is None


def test_every_notification_kind_has_its_templates() -> None:
    shipped = {p.name for p in resources.files("activities.templates").iterdir()}
    assert {f"{k.value}.txt" for k in NotificationKind} <= shipped
    assert {f"{k.value}.html" for k in NotificationKind} <= shipped
    texts = {n.removesuffix(".txt") for n in shipped if n.endswith(".txt")}
    assert texts == {k.value for k in NotificationKind}
