"""The operator's view in a real browser: an escalated case is found by `CaseEscalated=true` in the
Temporal Web UI and reads, on its page, as the case it is (summary, details, current details card).

Runs its own dev server with the Web UI and drives Debian's Chromium headless through playwright. The
screenshots it takes are the README's (docs/). Without Chromium it fails, naming the install script:
CI runs `.ci/install-browser` first, and a skipped browser check would hide a broken UI.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from pathlib import Path
from urllib.parse import quote

import asyncpg
import pytest
from playwright.async_api import Browser, FloatRect, Page, ViewportSize, async_playwright
from playwright.async_api import TimeoutError as PlaywrightTimeout
from temporalio.client import Client

from console.views import build_query, list_cases
from stack.cases import signal_action
from stack.embedded import start_dev_server
from tests.cases import Cases, case_worker, free_port, status_when, ticket
from tests.test_visibility import WAIT, customer, seconds_policy
from workflows.models import Phase

ROOT = Path(__file__).resolve().parent.parent
# The README's screenshots are refreshed on request only, so an ordinary test run leaves the tree clean.
DOCS = ROOT / "docs" if os.environ.get("ABH_REFRESH_SCREENSHOTS") == "1" else ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("ABH_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT: ViewportSize = {"width": 1400, "height": 1000}
DEADLINE = 90.0  # seconds for a page to show what it must: the UI is a SPA polling its API
# The case search attributes as list columns, the way an operator sets them with "Configure columns".
COLUMNS = [
    "Status",
    "Workflow ID",
    "CasePriority",
    "CasePhase",
    "CaseCustomer",
    "CaseEscalated",
    "CaseSlaBreached",
]

# Three tickets: one escalated and still worked, one escalated and since closed, one never escalated.
ACME, GLOBEX, INITECH = "ACME-1042", "GLOBEX-77", "INITECH-311"
TICKETS = {
    ACME: ticket(
        ACME, "P1", customer=customer("acme", "Acme Corp"), subject="Checkout API down", source="monitoring"
    ),
    GLOBEX: ticket(GLOBEX, "P1", customer=customer("globex", "Globex Inc"), subject="Webhooks delayed"),
    INITECH: ticket(INITECH, "P2", customer=customer("initech", "Initech LLC"), subject="Export is slow"),
}


def require_chromium() -> None:
    if not CHROMIUM.exists():
        pytest.fail(
            f"Chromium not found at {CHROMIUM}: run `.ci/install-browser` (apt-get install chromium) "
            "or point ABH_CHROMIUM at a Chromium binary"
        )


# A text to find, and the iframe it is in: the UI renders user metadata markdown in sandboxed frames.
Seen = tuple[str | None, str | re.Pattern[str]]


async def show(page: Page, url: str, texts: list[Seen], prepare: str | None = None) -> None:
    """Load `url` until every text is visible; reload if the UI's first answer came too early."""
    deadline = asyncio.get_running_loop().time() + DEADLINE
    while True:
        try:
            await page.goto(url, wait_until="domcontentloaded")
            if prepare is not None:
                await page.locator(prepare).click()
            for frame, text in texts:
                scope = page.frame_locator(frame) if frame else page
                await scope.get_by_text(text).first.wait_for(state="visible", timeout=15_000)
            return
        except PlaywrightTimeout:
            if asyncio.get_running_loop().time() > deadline:
                body = await page.inner_text("body")
                raise AssertionError(f"{url} never showed {texts}; it shows:\n{body[:3000]}") from None


def top_of_page(height: int) -> FloatRect:
    """A crop for the README: the part of the page with something on it."""
    return {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height}


async def new_page(browser: Browser) -> Page:
    context = await browser.new_context(viewport=VIEWPORT, timezone_id="UTC", locale="en-US")
    columns = json.dumps({"default": [{"label": c} for c in COLUMNS]})
    await context.add_init_script(
        f"window.localStorage.setItem('namespace-workflow-table-columns', {json.dumps(columns)});"
    )
    page = await context.new_page()
    page.set_default_timeout(30_000)
    page.set_default_navigation_timeout(60_000)
    return page


async def test_escalated_case_is_found_and_read_in_the_web_ui(pool: asyncpg.Pool) -> None:
    require_chromium()
    ui_port = free_port()
    env = await start_dev_server(None, port=free_port(), ui_port=ui_port, ui=True)
    try:
        task_queue = f"browser-{uuid.uuid4().hex[:8]}"
        async with case_worker(env, pool, task_queue, seconds_policy()) as cases:
            await work_the_cases(env.client, cases)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = await new_page(browser)
                    await check_list(page, f"http://127.0.0.1:{ui_port}")
                    await check_case_page(page, f"http://127.0.0.1:{ui_port}")
                finally:
                    await browser.close()
    finally:
        await env.shutdown()


async def work_the_cases(client: Client, cases: Cases) -> None:
    """ACME escalates and gets its first response; GLOBEX escalates, is fixed and confirmed."""
    handles = {tid: await cases.open(t) for tid, t in TICKETS.items()}
    await status_when(handles[ACME], lambda s: s.escalated, timeout=WAIT)
    await signal_action(client, ACME, "customer_contacted", {"channel": "call", "note": "bridge open"})
    await status_when(handles[GLOBEX], lambda s: s.escalated, timeout=WAIT)
    await signal_action(client, GLOBEX, "resolved", {"summary": "replayed the queue", "by": "bob"})
    await status_when(handles[GLOBEX], lambda s: s.follow_up_sent_at is not None, timeout=WAIT)
    await signal_action(client, GLOBEX, "customer_confirmed", {})
    await status_when(handles[GLOBEX], lambda s: s.phase is Phase.CLOSED, timeout=WAIT)
    await status_when(handles[INITECH], lambda s: s.phase is Phase.ENGAGED, timeout=WAIT)
    await visible_to_visibility(client, {ACME, GLOBEX})


async def visible_to_visibility(client: Client, tickets: set[str]) -> None:
    """The UI lists what visibility lists: wait for it there first, so the page's first answer counts."""
    expected = {f"case-{t}" for t in tickets}
    query = build_query(escalated=True)
    deadline = asyncio.get_running_loop().time() + WAIT
    while {r.workflow_id for r in await list_cases(client, query)} != expected:
        assert asyncio.get_running_loop().time() < deadline, f"visibility never listed {expected}"
        await asyncio.sleep(0.25)


async def check_list(page: Page, base: str) -> None:
    url = f"{base}/namespaces/default/workflows?query={quote('CaseEscalated=true')}"
    await show(page, url, [(None, f"case-{ACME}"), (None, f"case-{GLOBEX}")])
    assert await page.get_by_text(f"case-{INITECH}").count() == 0, "a case that is not escalated is listed"
    await page.get_by_role("columnheader", name="CaseEscalated").wait_for(state="visible")
    DOCS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=DOCS / "escalated-list.png", clip=top_of_page(420))


async def check_case_page(page: Page, base: str) -> None:
    """The case's id, its static summary and its current details card, on the User Metadata tab."""
    url = f"{base}/namespaces/default/workflows/case-{ACME}"
    await show(
        page,
        url,
        [
            (None, f"case-{ACME}"),
            ("#user-metadata-summary", "P1 - Acme Corp - Checkout API down"),
            ("#user-metadata-details", "tam@support.example"),
            ("#user-metadata-current-details", "Escalations:"),
            ("#user-metadata-current-details", "tech_lead (engagement 1"),
            ("#user-metadata-current-details", re.compile(r"first_response.*· met")),  # after the call
        ],
        prepare="[data-testid='user-metadata-tab']",
    )
    await page.screenshot(path=DOCS / "case-page.png", clip=top_of_page(800))
