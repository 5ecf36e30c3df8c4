"""Bearer tokens with scopes: `intake` opens cases, `act` sends actions, `read` reads them.

Tokens come from ABH_API_TOKENS. With none configured the API refuses everything but /healthz and the
signed helpdesk webhooks, so a server started without thought is closed, not open.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from stack.settings import Settings

PUBLIC_PATHS = frozenset({"/healthz"})
"""Answered even with no token configured."""
SIGNED_PREFIX = "/webhooks/"
"""Helpdesk webhooks: their signature is their credential, so they answer with no token configured
(each refuses every delivery while its own secret is not configured)."""
DOCS_PATHS = frozenset({"/docs", "/docs/oauth2-redirect", "/openapi.json", "/redoc"})
"""The OpenAPI schema and its pages: public once tokens are configured, so a browser can read them."""

_bearer = HTTPBearer(auto_error=False, description="A token from ABH_API_TOKENS")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


def scopes_of(settings: Settings, token: str) -> frozenset[str]:
    """The scopes a token holds; compared in constant time so a token cannot be guessed byte by byte."""
    scopes: frozenset[str] = frozenset()
    for known, granted in settings.api_tokens.items():
        if hmac.compare_digest(known.encode(), token.encode()):
            scopes = granted
    return scopes


def require(scope: str) -> Callable[..., Awaitable[None]]:
    """A dependency refusing a request whose token lacks `scope`: 401 without a valid token, 403 with one
    that holds other scopes only."""

    async def check(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        settings: Settings = request.app.state.settings
        if credentials is None:
            raise HTTPException(401, "missing bearer token (Authorization: Bearer <token>)", CHALLENGE)
        scopes = scopes_of(settings, credentials.credentials)
        if not scopes:
            raise HTTPException(401, "unknown bearer token", CHALLENGE)
        if scope not in scopes:
            raise HTTPException(403, f"this token may not {scope}: it holds {', '.join(sorted(scopes))}")

    return check


async def closed_without_tokens(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """Middleware: with no token configured, every request but the public and signed ones is refused."""
    settings: Settings = request.app.state.settings
    path = request.url.path
    if settings.api_tokens or path in PUBLIC_PATHS or path.startswith(SIGNED_PREFIX):
        return await call_next(request)
    return JSONResponse(
        {"detail": "no API token is configured (ABH_API_TOKENS): the API is closed"},
        status_code=401,
        headers=CHALLENGE,
    )
