"""With payload keys, the Web UI of the embedded dev server decodes a case through the codec server: the
case page reads in clear in a real browser, while Temporal holds only ciphertext."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import asyncpg
from aiohttp import web
from playwright.async_api import async_playwright

from stack.codec_server import codec_app
from stack.embedded import start_dev_server
from stack.encryption import EncryptionCodec, data_converter, new_key, parse_keys
from stack.serving import serving
from tests.cases import case_worker, free_port, status_when, ticket
from tests.test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DOCS,
    new_page,
    require_chromium,
    show,
    top_of_page,
)
from tests.test_visibility import WAIT, customer, seconds_policy

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


async def test_the_web_ui_shows_an_encrypted_case_decoded(pool: asyncpg.Pool) -> None:
    require_chromium()
    keys = parse_keys(f"k1={new_key()}")
    ui_port, codec_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    asked: list[str] = []

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        asked.append(f"{request.method} {request.path}")
        return await handler(request)

    app = codec_app(EncryptionCodec(keys), token=None, origins=[ui])
    app.middlewares.append(count)
    env = await start_dev_server(
        None,
        port=free_port(),
        ui_port=ui_port,
        converter=data_converter(keys),
        codec_endpoint=f"http://127.0.0.1:{codec_port}",
    )
    try:
        ticket_id = f"SECRET-{uuid.uuid4().hex[:6]}"
        who = customer("hooli", "Hooli Health")
        async with (
            serving(app, "127.0.0.1", codec_port),
            case_worker(env, pool, "browser-codec", seconds_policy()) as cases,
        ):
            handle = await cases.open(
                ticket(ticket_id, "P1", customer=who, subject="Patient records unavailable")
            )
            await status_when(handle, lambda s: s.escalated, timeout=WAIT)
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                try:
                    page = await new_page(browser)
                    await show(
                        page,
                        f"{ui}/namespaces/default/workflows/{handle.id}",
                        [
                            ("#user-metadata-summary", "P1 - Hooli Health - Patient records unavailable"),
                            ("#user-metadata-details", "ops@hooli.example"),
                            ("#user-metadata-current-details", "tech_lead (engagement 1"),
                        ],
                        prepare="[data-testid='user-metadata-tab']",
                    )
                    await page.screenshot(path=DOCS / "case-page-decoded.png", clip=top_of_page(800))
                finally:
                    await browser.close()
            await handle.terminate("seen")
    finally:
        await env.shutdown()
    assert "POST /decode" in asked  # the page was decoded by the codec server, not read in clear
