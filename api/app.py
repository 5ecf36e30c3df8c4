"""The API's application: its routes, its auth, and the Temporal client and PostgreSQL pool it uses."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from temporalio.client import Client
from temporalio.service import RPCError

from activities.database import DATABASE_OUTAGES, migrate
from activities.database import connect as connect_database
from api import actions, cases
from api.auth import closed_without_tokens
from api.webhooks import jira, zendesk
from stack.client import connect
from stack.embedded import start_postgres
from stack.settings import Settings

log = structlog.get_logger("api")


async def database_url(settings: Settings) -> str:
    """The configured PostgreSQL, or the embedded one `make run` keeps."""
    if settings.database_url:
        return settings.database_url
    return await asyncio.to_thread(start_postgres, settings.data_dir / "postgres")


def create_app(settings: Settings, client: Client | None = None, pool: asyncpg.Pool | None = None) -> FastAPI:
    """The API; it connects to Temporal and PostgreSQL at start-up unless it is handed them."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            app.state.client = client or await connect(settings)
            if pool is None:
                app.state.pool = await connect_database(await database_url(settings), max_size=5)
                stack.push_async_callback(app.state.pool.close)
                await migrate(app.state.pool)
            else:
                app.state.pool = pool
            log.info("API ready", namespace=app.state.client.namespace, task_queue=settings.task_queue)
            yield

    app = FastAPI(
        title="ABH cases",
        summary="Open support cases, act on them and read them; Zendesk and Jira Service Management hooks.",
        version="1",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.middleware("http")(closed_without_tokens)
    app.include_router(cases.router)
    app.include_router(actions.router)
    app.include_router(zendesk.router)
    app.include_router(jira.router)

    @app.get("/healthz", tags=["health"], summary="The API process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.exception_handler(RPCError)
    async def temporal_unavailable(request: Request, err: RPCError) -> JSONResponse:
        log.warning("Temporal refused a call", path=request.url.path, status=err.status.name, error=str(err))
        return JSONResponse({"detail": f"Temporal: {err.message}"}, status_code=503)

    async def database_unavailable(request: Request, err: Exception) -> JSONResponse:
        log.warning("PostgreSQL did not answer", path=request.url.path, error=repr(err))
        detail = "PostgreSQL did not answer: send the request again shortly"
        return JSONResponse({"detail": detail}, status_code=503, headers={"Retry-After": "5"})

    for outage in DATABASE_OUTAGES:  # a 503 to send again, not a 500
        app.add_exception_handler(outage, database_unavailable)

    return app
