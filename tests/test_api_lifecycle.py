"""A whole case over HTTP: `starter.py serve` on loopback, a worker, the dev server and PostgreSQL.

Opened, worked, resolved and confirmed through the API only; the rows in PostgreSQL tell the same story.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import httpx

from stack.samples import ticket
from tests.api_server import Api, phase_is
from workflows.models import case_workflow_id

WAIT = 30.0


async def row_when(pool: asyncpg.Pool, workflow_id: str, phase: str) -> asyncpg.Record:
    deadline = asyncio.get_running_loop().time() + WAIT
    while True:
        row = await pool.fetchrow("SELECT * FROM cases WHERE workflow_id = $1", workflow_id)
        if row is not None and row["phase"] == phase:
            return row
        assert asyncio.get_running_loop().time() < deadline, f"row never {phase}: {row}"
        await asyncio.sleep(0.2)


async def test_a_case_opened_worked_and_closed_over_http(
    api: Api, pool: asyncpg.Pool, ticket_id: str
) -> None:
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers(), timeout=WAIT) as http:
        body = ticket(ticket_id, "P1").model_dump(mode="json", exclude_none=True)
        opened = await http.post("/cases", json=body)
        assert opened.status_code == 201, opened.text
        assert opened.headers["Location"] == f"/cases/{ticket_id}"
        assert opened.json()["workflow_id"] == case_workflow_id(ticket_id)

        again = await http.post("/cases", json=body)
        assert again.status_code == 409
        assert again.json()["case"] == f"/cases/{ticket_id}"
        assert "already has a case" in again.json()["detail"]

        await phase_is(http, ticket_id, "engaged")
        steps: list[tuple[str, dict[str, Any] | None]] = [
            ("assign", {"assignee": "alice@support.example"}),
            ("customer_contacted", {"channel": "call", "note": "bridge open"}),
            ("milestone_verified", {"milestone": "data_verified", "by": "alice@support.example"}),
            ("milestone_verified", {"milestone": "troubleshooting"}),
            ("resolved", {"summary": "rolled back release 42", "by": "alice@support.example"}),
        ]
        for action, payload in steps:
            answer = await http.post(f"/cases/{ticket_id}/actions/{action}", json=payload)
            assert answer.status_code == 200, f"{action}: {answer.text}"
        assert answer.json()["phase"] == "awaiting_confirmation"

        refused = await http.post(
            f"/cases/{ticket_id}/actions/milestone_verified", json={"milestone": "data_verified"}
        )
        assert refused.status_code == 409
        assert "accepted only while engaged" in refused.json()["detail"]
        assert "customer_confirmed" in refused.json()["allowed_now"]

        bad = await http.post(f"/cases/{ticket_id}/actions/assign", json={"assignee": ""})
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "assignee"]

        unknown = await http.post("/cases/T-no-such-ticket/actions/add_note", json={"text": "hello"})
        assert unknown.status_code == 404
        assert "has no case" in unknown.json()["detail"]

        await phase_is(http, ticket_id, "awaiting_confirmation")
        # The follow-up goes out first; a confirmation sent before it is kept and applied after it.
        confirmed = await http.post(f"/cases/{ticket_id}/actions/customer_confirmed")
        assert confirmed.status_code == 200, confirmed.text
        await phase_is(http, ticket_id, "closed")

        timeline = (await http.get(f"/cases/{ticket_id}/timeline")).json()
        types = [entry["type"] for entry in timeline]
        assert types[0] == "opened" and types[-1] == "closed", types

        listed = await http.get(
            "/cases", params={"customer": body["customer"]["account_id"], "phase": "closed"}
        )
        assert listed.status_code == 200

    row = await row_when(pool, case_workflow_id(ticket_id), "closed")
    assert row["assignee"] == "alice@support.example"
    assert row["close_reason"] == "confirmed"
    events = await pool.fetch(
        "SELECT type FROM case_events WHERE workflow_id = $1 ORDER BY seq", case_workflow_id(ticket_id)
    )
    stored = [e["type"] for e in events]
    assert "resolved" in stored and stored[-1] == "closed", stored
