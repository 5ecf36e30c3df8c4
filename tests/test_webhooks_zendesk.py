"""Zendesk trigger webhooks (samples in tests/webhooks/, written from Zendesk's documentation) open,
resolve and reopen cases; a bad, stale or replayed signature is a 401 and changes nothing."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from tests.api_server import Api, phase_is, sample, zendesk_headers
from workflows.models import case_workflow_id


@pytest.fixture
def zendesk_id() -> int:
    return random.randrange(10**6, 10**9)


def created(zendesk_id: int) -> bytes:
    return sample(
        "zendesk_ticket_created.json",
        **{
            "ticket.id": zendesk_id,
            "ticket.title": "Checkout API down",
            "ticket.description": "All orders fail since 09:40.",
            "ticket.priority": "Urgent",
            "ticket.created_at_with_timestamp": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ticket.requester.name": "Olga Ops",
            "ticket.requester.email": "ops@acme.example",
            "ticket.requester.phone": "",
            "ticket.organization.id": "",
            "ticket.organization.name": "Acme Corp",
            "ticket.assignee.email": "alice@support.example",
        },
    )


def solved(zendesk_id: int) -> bytes:
    return sample(
        "zendesk_ticket_solved.json",
        **{
            "ticket.id": zendesk_id,
            "ticket.latest_public_comment": "Rolled back release 42.",
            "ticket.assignee.email": "alice@support.example",
        },
    )


def reopened(zendesk_id: int) -> bytes:
    return sample(
        "zendesk_ticket_reopened.json",
        **{"ticket.id": zendesk_id, "ticket.latest_public_comment": "Still failing for EU orders."},
    )


async def test_zendesk_opens_solves_and_reopens_a_case(api: Api, pool: asyncpg.Pool, zendesk_id: int) -> None:
    ticket_id = f"ZD-{zendesk_id}"
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        body = created(zendesk_id)
        answer = await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body))
        assert answer.status_code == 201, answer.text
        assert answer.json() == {"ticket_id": ticket_id, "outcome": "opened", "case": f"/cases/{ticket_id}"}
        case = await phase_is(http, ticket_id, "engaged")
        assert case["priority"] == "P1"
        customer = case["ticket"]["customer"]
        assert (customer["account_id"], customer["name"]) == ("acme.example", "Acme Corp")
        assert case["ticket"]["source"] == "zendesk"
        assert case["assignee"] == "alice@support.example"

        resend = created(zendesk_id)
        again = await http.post(
            "/webhooks/zendesk",
            content=resend,
            headers=zendesk_headers(resend, at=datetime.now(UTC) + timedelta(seconds=1)),
        )
        assert again.status_code == 200 and again.json()["outcome"] == "exists"

        body = solved(zendesk_id)
        answer = await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body))
        assert answer.status_code == 200, answer.text
        assert answer.json()["outcome"] == "resolved"
        case = await phase_is(http, ticket_id, "awaiting_confirmation")
        assert case["resolution"] == "Rolled back release 42."

        body = reopened(zendesk_id)
        answer = await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body))
        assert answer.status_code == 200, answer.text
        await phase_is(http, ticket_id, "engaged")

        # Solved again: the same body, so a later timestamp (Zendesk's are to the second) tells it apart.
        body, later = solved(zendesk_id), datetime.now(UTC) + timedelta(seconds=2)
        answer = await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body, at=later))
        assert answer.status_code == 200, answer.text
        await phase_is(http, ticket_id, "awaiting_confirmation")

    row = await pool.fetchrow("SELECT * FROM cases WHERE workflow_id = $1", case_workflow_id(ticket_id))
    assert row is not None and row["priority"] == "P1" and row["customer_account"] == "acme.example"


async def test_a_bad_signature_is_refused_and_opens_nothing(
    api: Api, pool: asyncpg.Pool, zendesk_id: int
) -> None:
    ticket_id = f"ZD-{zendesk_id}"
    body = created(zendesk_id)
    forged = zendesk_headers(body, secret="not-the-secret")
    tampered = zendesk_headers(body) | {}
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        for headers, content in ((forged, body), (tampered, body.replace(b"Urgent", b"Low"))):
            answer = await http.post("/webhooks/zendesk", content=content, headers=headers)
            assert answer.status_code == 401
            assert "signature does not match" in answer.json()["detail"]
        unsigned = await http.post(
            "/webhooks/zendesk", content=body, headers={"Content-Type": "application/json"}
        )
        assert unsigned.status_code == 401 and "required" in unsigned.json()["detail"]
        stale = zendesk_headers(body, at=datetime.now(UTC) - timedelta(minutes=10))
        answer = await http.post("/webhooks/zendesk", content=body, headers=stale)
        assert answer.status_code == 401 and "outside the 300 s window" in answer.json()["detail"]
        assert (await http.get(f"/cases/{ticket_id}")).status_code == 404
    assert await pool.fetchval("SELECT count(*) FROM cases WHERE ticket_id = $1", ticket_id) == 0


async def test_a_replayed_delivery_is_refused_and_changes_nothing(api: Api, zendesk_id: int) -> None:
    ticket_id = f"ZD-{zendesk_id}"
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        body = created(zendesk_id)
        assert (
            await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body))
        ).status_code == 201
        await phase_is(http, ticket_id, "engaged")
        body = solved(zendesk_id)
        solved_headers = zendesk_headers(body)
        assert (await http.post("/webhooks/zendesk", content=body, headers=solved_headers)).status_code == 200
        body_reopened = reopened(zendesk_id)
        answer = await http.post(
            "/webhooks/zendesk", content=body_reopened, headers=zendesk_headers(body_reopened)
        )
        assert answer.status_code == 200
        before = await phase_is(http, ticket_id, "engaged")

        replay = await http.post("/webhooks/zendesk", content=body, headers=solved_headers)
        assert replay.status_code == 401
        assert "already received" in replay.json()["detail"]
        after = (await http.get(f"/cases/{ticket_id}")).json()
        assert after["phase"] == "engaged"
        assert len(after["timeline"]) == len(before["timeline"])


async def test_a_ticket_that_maps_to_no_valid_case_is_named_field_by_field(api: Api, zendesk_id: int) -> None:
    body = created(zendesk_id).replace(b"ops@acme.example", b"")
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        answer = await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body))
        assert answer.status_code == 422, answer.text
        named = [error["loc"] for error in answer.json()["detail"]]
        assert ["body", "mapped ticket", "customer", "contact_email"] in named, named
        assert (await http.get(f"/cases/ZD-{zendesk_id}")).status_code == 404
        # Refused for its content, not its signature: the corrected ticket is taken.
        fixed = created(zendesk_id)
        assert (
            await http.post("/webhooks/zendesk", content=fixed, headers=zendesk_headers(fixed))
        ).status_code == 201


async def test_a_ticket_without_an_id_is_refused_and_a_long_description_is_clipped(
    api: Api, zendesk_id: int
) -> None:
    """A trigger whose id placeholder renders empty opens nothing (not a case `ZD-` that every later such
    ticket would be told exists); a description past the wire contract's 10,000 characters is cut, not
    refused, since a helpdesk does not send a refused ticket again."""
    async with httpx.AsyncClient(base_url=api.url, headers=api.headers("read"), timeout=30) as http:
        for blank in ('""', '"  "', "null"):
            body = created(zendesk_id).replace(f'"id": "{zendesk_id}"'.encode(), f'"id": {blank}'.encode())
            assert body != created(zendesk_id)
            answer = await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body))
            assert answer.status_code == 422, answer.text
            assert ["body", "ticket", "id"] in [e["loc"] for e in answer.json()["detail"]]
        assert (await http.get("/cases/ZD-")).status_code in (404, 422)

        long = created(zendesk_id).replace(b"All orders fail since 09:40.", b"x" * 12_000)
        answer = await http.post("/webhooks/zendesk", content=long, headers=zendesk_headers(long))
        assert answer.status_code == 201, answer.text
        case = await phase_is(http, f"ZD-{zendesk_id}", "engaged")
        description = case["ticket"]["description"]
        assert len(description) == 10_000 and description.endswith("…")
