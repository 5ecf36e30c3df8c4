"""Serve the API with uvicorn: alone (`python starter.py serve`) or beside the worker (`make run`)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
import uvicorn
from temporalio.client import Client

from api.app import create_app
from stack.settings import API_SCOPES, Settings

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


class BesideWorker(uvicorn.Server):
    """Served inside the worker's process: the worker owns Ctrl-C and stops this server itself."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def server(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    client: Client | None = None,
    pool: asyncpg.Pool | None = None,
) -> uvicorn.Server:
    """Alone, it connects to Temporal and PostgreSQL itself; beside the worker, it shares the worker's."""
    config = uvicorn.Config(
        create_app(settings, client, pool), host=host, port=port, log_level="warning", lifespan="on"
    )
    return uvicorn.Server(config) if client is None else BesideWorker(config)


def with_development_token(settings: Settings) -> tuple[Settings, str | None]:
    """With no ABH_API_TOKENS, a fresh token holding every scope, for `make run` only."""
    if settings.api_tokens:
        return settings, None
    token = secrets.token_urlsafe(24)
    tokens = {token: frozenset(API_SCOPES)}
    return settings.model_copy(update={"api_tokens": tokens}), token
