"""The worker's port for an SRE's tools (`ABH_METRICS_PORT`): `/metrics` for Prometheus (the SDK's
runtime metrics, the case metrics and the gauges), `/healthz` (the process answers) and `/readyz`
(the worker polls its task queue, and Temporal and PostgreSQL answer: 503 naming what does not)."""

from __future__ import annotations

import asyncio

import asyncpg
import httpx
from aiohttp import web
from temporalio.client import Client

from workflows.safe_text import one_line

CHECK_TIMEOUT = 3.0
PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def health_app(
    client: Client, pool: asyncpg.Pool, sdk_metrics_url: str, polling: asyncio.Event
) -> web.Application:
    """`polling` is set while the worker takes tasks: not before its migrations are done, nor once it
    is stopping."""
    http = httpx.AsyncClient(timeout=CHECK_TIMEOUT)

    async def metrics(_: web.Request) -> web.Response:
        answer = await http.get(sdk_metrics_url)
        answer.raise_for_status()
        return web.Response(body=answer.content, headers={"Content-Type": PROMETHEUS_TEXT})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        checks = {"temporal": temporal_ready(client), "postgresql": postgresql_ready(pool)}
        found = {"worker": "ok" if polling.is_set() else "not polling (starting or stopping)"}
        found |= dict(zip(checks, await asyncio.gather(*checks.values()), strict=True))
        ready = all(v == "ok" for v in found.values())
        return web.json_response(
            {"status": "ok" if ready else "unavailable", **found}, status=200 if ready else 503
        )

    async def close_http(_: web.Application) -> None:
        await http.aclose()

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.on_cleanup.append(close_http)
    return app


async def temporal_ready(client: Client) -> str:
    try:
        await asyncio.wait_for(client.service_client.check_health(), CHECK_TIMEOUT)
    except Exception as err:  # any failure means not ready; the reason is reported, not raised
        return f"error: {one_line(str(err) or type(err).__name__, 200)}"
    return "ok"


async def postgresql_ready(pool: asyncpg.Pool) -> str:
    try:
        await asyncio.wait_for(pool.fetchval("SELECT 1"), CHECK_TIMEOUT)
    except Exception as err:  # as above
        return f"error: {one_line(str(err) or type(err).__name__, 200)}"
    return "ok"
