"""Jira Service Management webhooks (samples in tests/webhooks/, written from Atlassian's documentation)
open a case on issue created and move it on status transitions; a bad, stale or replayed signature is a
401 and changes nothing."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import httpx
import pytest

from tests.api_server import Api, jira_headers, now_ms, phase_is, sample
from workflows.models import case_workflow_id

MINUTE_MS = 60_000


@pytest.fixture
def key() -> str:
    return f"SUP-{uuid.uuid4().int % 10**8}"


def created(key: str, timestamp: int | None = None) -> bytes:
    return sample(
        "jira_issue_created.json",
        key=key,
        timestamp=timestamp or now_ms(),
        created="2026-12-03T09:41:07.000+0000",
    )


def moved(key: str, status: str, status_id: str = "5", resolution: str = "null") -> bytes:
    return sample(
        "jira_issue_transitioned.json",
        key=key,
        timestamp=now_ms(),
        status=status,
        status_id=status_id,
        from_status="In Progress",
        resolution=resolution,
    )


async def post(http: httpx.AsyncClient, body: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
    return await http.post("/webhooks/jira", content=body, headers=headers or jira_headers(body))


async def test_jira_opens_resolves_reopens_and_closes_a_case(api: Api, pool: asyncpg.Pool, key: str) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        answer = await post(http, created(key))
        assert answer.status_code == 201, answer.text
        assert answer.headers["Location"] == f"/cases/{key}"
        case = await phase_is(http, key, "engaged")
        assert case["priority"] == "P1"
        assert case["opened_at"] == "2026-12-03T09:41:07Z"
        assert case["ticket"]["customer"]["contact_email"] == "ops@acme.example"

        answer = await post(http, moved(key, "In Progress", "3"))
        assert answer.status_code == 202
        assert answer.json()["outcome"] == "ignored"

        answer = await post(http, moved(key, "Resolved", resolution='{"id": "1", "name": "Fixed"}'))
        assert answer.status_code == 200, answer.text
        case = await phase_is(http, key, "awaiting_confirmation")
        assert case["resolution"] == "Fixed in Jira"

        assert (await post(http, moved(key, "Reopened", "4"))).status_code == 200
        await phase_is(http, key, "engaged")
        assert (await post(http, moved(key, "Resolved", resolution='{"name": "Fixed"}'))).status_code == 200
        await phase_is(http, key, "awaiting_confirmation")

        answer = await post(http, moved(key, "Closed", "6"))
        assert answer.status_code == 200, answer.text
        case = await phase_is(http, key, "closed")
        assert case["close_reason"] == "confirmed"

        refused = await post(http, moved(key, "Reopened", "4"))
        assert refused.status_code == 409
        assert "closed" in refused.json()["detail"]

    for _ in range(150):
        row = await pool.fetchrow("SELECT * FROM cases WHERE workflow_id = $1", case_workflow_id(key))
        if row is not None and row["phase"] == "closed":
            break
        await asyncio.sleep(0.2)
    assert row is not None and row["phase"] == "closed" and row["customer_account"] == "acme.example"


async def test_a_bad_or_stale_signature_is_refused_and_opens_nothing(
    api: Api, pool: asyncpg.Pool, key: str
) -> None:
    body = created(key)
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        forged = await post(http, body, jira_headers(body, secret="guessed"))
        assert forged.status_code == 401 and "does not match" in forged.json()["detail"]
        tampered = await post(http, body.replace(b"Highest", b"Lowest"), jira_headers(body))
        assert tampered.status_code == 401
        unsigned = await post(http, body, {"Content-Type": "application/json"})
        assert unsigned.status_code == 401 and "X-Hub-Signature" in unsigned.json()["detail"]
        stale = created(key, timestamp=now_ms() - 10 * MINUTE_MS)
        answer = await post(http, stale)
        assert answer.status_code == 401 and "outside the 300 s window" in answer.json()["detail"]
        assert (await http.get(f"/cases/{key}")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM cases WHERE ticket_id = $1", key) == 0


async def test_a_replayed_delivery_is_refused_and_changes_nothing(api: Api, key: str) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        assert (await post(http, created(key))).status_code == 201
        await phase_is(http, key, "engaged")
        resolved = moved(key, "Resolved", resolution='{"name": "Fixed"}')
        delivery = jira_headers(resolved, delivery=str(uuid.uuid4()))
        assert (await post(http, resolved, delivery)).status_code == 200
        assert (await post(http, moved(key, "Reopened", "4"))).status_code == 200
        before = await phase_is(http, key, "engaged")

        replays = [
            await post(http, resolved, headers)
            for headers in (
                delivery,
                jira_headers(resolved),  # the identifier dropped: the signature still knows it
                jira_headers(resolved, delivery=str(uuid.uuid4())),  # or changed
            )
        ]
        for replay in replays:
            assert replay.status_code == 401, replay.text
            assert "already received" in replay.json()["detail"]
        after = (await http.get(f"/cases/{key}")).json()
        assert after["phase"] == "engaged"
        assert len(after["timeline"]) == len(before["timeline"])
