"""Bearer tokens and scopes: each scope does exactly what it names; no or a wrong token is a 401, the
wrong scope a 403; with no token configured, everything but /healthz is a 401."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.serve import server
from stack.samples import ticket
from stack.settings import Settings
from tests.api_server import Api
from tests.conftest import _free_port


def requests(ticket_id: str) -> dict[str, tuple[str, str, dict[str, Any] | None]]:
    """One request per scope, each on the same ticket, in the order they can succeed."""
    body = ticket(ticket_id, "P1").model_dump(mode="json", exclude_none=True)
    return {
        "intake": ("POST", "/cases", body),
        "act": ("POST", f"/cases/{ticket_id}/actions/add_note", {"text": "from the auth test"}),
        "read": ("GET", f"/cases/{ticket_id}", None),
    }


async def send(
    http: httpx.AsyncClient, request: tuple[str, str, Any], headers: dict[str, str]
) -> httpx.Response:
    method, path, body = request
    return await http.request(method, path, json=body, headers=headers)


async def test_each_scope_does_exactly_what_it_names(api: Api, ticket_id: str) -> None:
    calls = requests(ticket_id)
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for scope, call in calls.items():
            for other in calls:
                if other != scope:
                    refused = await send(http, calls[other], api.headers(scope))
                    assert refused.status_code == 403, (scope, other, refused.text)
                    assert f"may not {other}" in refused.json()["detail"]
            answer = await send(http, call, api.headers(scope))
            assert answer.status_code in (200, 201), (scope, answer.text)
            if scope == "intake":
                await _engaged(http, api, ticket_id)


async def _engaged(http: httpx.AsyncClient, api: Api, ticket_id: str) -> None:
    for _ in range(150):
        answer = await http.get(f"/cases/{ticket_id}", headers=api.headers("read"))
        if answer.status_code == 200 and answer.json()["phase"] == "engaged":
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"case {ticket_id} never engaged")


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic dG9rLWFsbDo="}],
    ids=["missing", "wrong", "not-bearer"],
)
async def test_a_missing_or_wrong_token_is_refused(api: Api, ticket_id: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for call in requests(ticket_id).values():
            answer = await send(http, call, headers)
            assert answer.status_code == 401, answer.text
            assert answer.headers["WWW-Authenticate"] == "Bearer"
            assert "token" in answer.json()["detail"]
        assert (await http.get(f"/cases/{ticket_id}", headers=api.headers())).status_code == 404


async def test_no_token_configured_closes_everything_but_healthz(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, ticket_id: str
) -> None:
    port = _free_port()
    uvicorn = server(Settings.from_env({}), port=port, client=dev_env.client, pool=pool)
    serving = asyncio.create_task(uvicorn.serve())
    try:
        while not uvicorn.started:
            await asyncio.sleep(0.05)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            for path in ("/docs", "/openapi.json", "/cases", f"/cases/{ticket_id}"):
                answer = await http.get(path, headers={"Authorization": "Bearer anything"})
                assert answer.status_code == 401, path
                assert "ABH_API_TOKENS" in answer.json()["detail"]
            answer = await http.post("/cases", json=ticket(ticket_id).model_dump(mode="json"))
            assert answer.status_code == 401
    finally:
        uvicorn.should_exit = True
        await serving
    with pytest.raises(Exception, match="not found"):
        await dev_env.client.get_workflow_handle(f"case-{ticket_id}").describe()
