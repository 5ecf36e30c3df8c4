"""Bearer tokens and scopes: each scope does exactly what it names; no or a wrong token is a 401, the
wrong scope a 403; with no token configured, everything but /healthz and the signed webhooks is a 401."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.serve import server
from stack.samples import ticket
from stack.settings import Settings
from tests.api_server import ZENDESK_SECRET, Api, jira_headers, phase_is, zendesk_headers
from tests.cases import free_port
from tests.test_webhooks_zendesk import created
from workflows.models import case_workflow_id

JSON = {"Content-Type": "application/json"}


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
                await phase_is(http, ticket_id, "engaged", headers=api.headers("read"))


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


async def test_no_token_configured_closes_everything_but_healthz_and_signed_webhooks(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, ticket_id: str, task_queue: str
) -> None:
    """A helpdesk integration needs no API token: its signature is its credential."""
    port = free_port()
    settings = Settings.from_env({"ABH_ZENDESK_SECRET": ZENDESK_SECRET, "ABH_TASK_QUEUE": task_queue})
    uvicorn = server(settings, port=port, client=dev_env.client, pool=pool)
    zendesk_id = random.randrange(10**6, 10**9)
    delivery = created(zendesk_id)
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
            unsigned = await http.post("/webhooks/zendesk", content=delivery, headers=JSON)
            assert unsigned.status_code == 401 and "Signature" in unsigned.json()["detail"]
            jira = await http.post("/webhooks/jira", content=b"{}", headers=jira_headers(b"{}"))
            assert jira.status_code == 401 and "ABH_JIRA_SECRET" in jira.json()["detail"]
            signed = await http.post("/webhooks/zendesk", content=delivery, headers=zendesk_headers(delivery))
            assert signed.status_code == 201, signed.text
    finally:
        uvicorn.should_exit = True
        await serving
    with pytest.raises(Exception, match="not found"):
        await dev_env.client.get_workflow_handle(f"case-{ticket_id}").describe()
    opened = dev_env.client.get_workflow_handle(case_workflow_id(f"ZD-{zendesk_id}"))
    assert (await opened.describe()).task_queue == task_queue
    await opened.terminate("test over")
