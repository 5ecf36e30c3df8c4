"""An Idempotency-Key is for one body: sent again with the same body it is answered with the first
action's outcome, sent with another body it is refused (422) and nothing is applied; a key the case
refused is free again, a key the API made and named in a 503 is held to its body too, and while
PostgreSQL is out of reach the action goes on unchecked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

import api.actions as actions
from api.idempotency import KEPT_FOR, fingerprint
from stack.cases import case_status
from stack.samples import ticket
from stack.settings import Settings
from tests.api_server import IN_PROCESS_TOKENS, in_process, phase_is
from tests.cases import case_worker
from workflows.models import AddNote, CaseStatus, case_workflow_id


@pytest.fixture
def settings(task_queue: str) -> Settings:
    return Settings.from_env(
        {"ABH_API_TOKENS": IN_PROCESS_TOKENS, "ABH_TASK_QUEUE": task_queue, "ABH_API_ANSWER_WITHIN": "2"}
    )


async def open_engaged(http: httpx.AsyncClient, ticket_id: str) -> None:
    assert (await http.post("/cases", json=ticket(ticket_id, "P1").model_dump(mode="json"))).is_success
    await phase_is(http, ticket_id, "engaged")


@pytest_asyncio.fixture
async def http(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, task_queue: str, ticket_id: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API in this process, beside a worker, on the test's ticket with its case engaged."""
    async with in_process(settings, dev_env.client, pool) as http, case_worker(dev_env, pool, task_queue):
        await open_engaged(http, ticket_id)
        yield http


def notes(case: dict[str, object]) -> list[str]:
    timeline = case["timeline"]
    assert isinstance(timeline, list)
    return [e["detail"] for e in timeline if e["type"] == "note"]


async def test_a_key_sent_again_with_its_body_is_answered_once_and_with_another_body_refused(
    http: httpx.AsyncClient, ticket_id: str
) -> None:
    url = f"/cases/{ticket_id}/actions/add_note"
    key = {"Idempotency-Key": "call-1"}
    first = await http.post(url, json={"text": "called back", "by": "ana"}, headers=key)
    same = await http.post(
        url,
        content=json.dumps({"by": "ana", "text": "called back"}, indent=2),  # key order and spacing
        headers=key | {"Content-Type": "application/json"},
    )
    other = await http.post(url, json={"text": "called back twice"}, headers=key)
    other_action = await http.post(f"/cases/{ticket_id}/actions/assign", json={"assignee": "bo"}, headers=key)
    case = (await http.get(f"/cases/{ticket_id}")).json()

    assert first.status_code == same.status_code == 200, (first.text, same.text)
    assert other.status_code == 422, other.text
    (error,) = other.json()["detail"]
    assert error["loc"] == ["header", "Idempotency-Key"]
    assert error["msg"] == (
        "Idempotency-Key call-1 was first sent with another body for add_note on this case, and a key is "
        "answered with its first action's outcome: send a new action with a new key"
    )
    assert notes(case) == ["called back"]
    assert other_action.status_code == 200 and case["assignee"] == "bo"  # a key is per action


async def test_a_key_the_case_refused_may_be_sent_again_with_another_body(
    http: httpx.AsyncClient, ticket_id: str
) -> None:
    confirm = f"/cases/{ticket_id}/actions/customer_confirmed"
    key = {"Idempotency-Key": "confirm-1"}
    too_early = await http.post(confirm, json={"note": "too early"}, headers=key)
    resolved = await http.post(f"/cases/{ticket_id}/actions/resolved", json={"summary": "rolled back"})
    confirmed = await http.post(confirm, json={"note": "works now"}, headers=key)

    assert too_early.status_code == 409, too_early.text
    assert resolved.status_code == 200, resolved.text
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["phase"] == "closed"


async def test_a_refusal_keeps_the_key_another_request_claimed_meanwhile(
    http: httpx.AsyncClient, ticket_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A is refused; before it lets the key go, B (same key and body) is applied; C's other body must not
    then be answered with B's outcome."""
    confirm = f"/cases/{ticket_id}/actions/customer_confirmed"
    key = {"Idempotency-Key": "confirm-2"}
    a_refused, b_answered = asyncio.Event(), asyncio.Event()
    read_status = case_status

    async def status_after_b(client: Client, ticket_id: str) -> CaseStatus:
        a_refused.set()  # A's refusal reads the case before it answers (and releases the key)
        await b_answered.wait()
        return await read_status(client, ticket_id)

    monkeypatch.setattr(actions, "case_status", status_after_b)
    a = asyncio.create_task(http.post(confirm, json={"note": "works"}, headers=key))
    await a_refused.wait()
    monkeypatch.setattr(actions, "case_status", read_status)
    assert (await http.post(f"/cases/{ticket_id}/actions/resolved", json={"summary": "fixed"})).is_success
    b = await http.post(confirm, json={"note": "works"}, headers=key)
    b_answered.set()
    assert (await a).status_code == 409
    c = await http.post(confirm, json={"note": "something else"}, headers=key)

    assert b.status_code == 200 and b.json()["phase"] == "closed", b.text
    assert c.status_code == 422, c.text


async def test_a_key_sent_before_the_case_existed_is_free_once_it_does(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, task_queue: str, ticket_id: str
) -> None:
    url = f"/cases/{ticket_id}/actions/add_note"
    key = {"Idempotency-Key": "early-1"}
    async with in_process(settings, dev_env.client, pool) as http, case_worker(dev_env, pool, task_queue):
        no_case = await http.post(url, json={"text": "too soon"}, headers=key)
        await open_engaged(http, ticket_id)
        noted = await http.post(url, json={"text": "now"}, headers=key)
        case = (await http.get(f"/cases/{ticket_id}")).json()

    assert no_case.status_code == 404, no_case.text
    assert noted.status_code == 200, noted.text
    assert notes(case) == ["now"]


async def test_a_key_older_than_its_retention_takes_another_body(
    http: httpx.AsyncClient, pool: asyncpg.Pool, ticket_id: str
) -> None:
    url = f"/cases/{ticket_id}/actions/add_note"
    for key in ("old-1", "old-2"):
        assert (await http.post(url, json={"text": key}, headers={"Idempotency-Key": key})).is_success
    await pool.execute(
        "UPDATE action_keys SET first_sent_at = now() - $1::interval - interval '1 hour' "
        "WHERE workflow_id = $2 AND update_id = 'add_note:old-1'",
        KEPT_FOR,
        case_workflow_id(ticket_id),
    )
    kept_past = await http.post(url, json={"text": "other"}, headers={"Idempotency-Key": "old-1"})
    still_held = await http.post(url, json={"text": "other"}, headers={"Idempotency-Key": "old-2"})

    assert kept_past.status_code == 200, kept_past.text  # answered with the first outcome, as before
    assert still_held.status_code == 422, still_held.text


@pytest.mark.parametrize(
    "same",
    [
        {"text": "called back"},
        {"text": "called back", "by": None},
        {"by": None, "text": "called back"},
    ],
)
def test_a_body_is_fingerprinted_as_parsed(same: dict[str, object]) -> None:
    first = AddNote.model_validate({"text": "called back"})
    assert fingerprint(AddNote.model_validate(same)) == fingerprint(first)
    assert fingerprint(AddNote.model_validate({"text": "called back", "by": "ana"})) != fingerprint(first)


async def test_the_key_a_503_names_is_held_to_the_body_it_was_made_for(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, task_queue: str, ticket_id: str
) -> None:
    url = f"/cases/{ticket_id}/actions/add_note"
    async with in_process(settings, dev_env.client, pool) as http:
        async with case_worker(dev_env, pool, task_queue):
            await open_engaged(http, ticket_id)
        waiting = await http.post(url, json={"text": "first"})  # no worker: not answered in time
        key = {"Idempotency-Key": waiting.headers["Idempotency-Key"]}
        other = await http.post(url, json={"text": "second"}, headers=key)
        async with case_worker(dev_env, pool, task_queue):
            answered = await http.post(url, json={"text": "first"}, headers=key)
            case = (await http.get(f"/cases/{ticket_id}")).json()

    assert waiting.status_code == 503, waiting.text
    assert other.status_code == 422, other.text
    assert answered.status_code == 200, answered.text
    assert notes(case) == ["first"]


async def test_two_bodies_racing_on_one_key_apply_one_and_refuse_the_other(
    http: httpx.AsyncClient, ticket_id: str
) -> None:
    url = f"/cases/{ticket_id}/actions/add_note"
    key = {"Idempotency-Key": "race-1"}
    bodies = [{"text": f"note {n}"} for n in range(6)]
    answers = await asyncio.gather(*(http.post(url, json=body, headers=key) for body in bodies))
    case = (await http.get(f"/cases/{ticket_id}")).json()

    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 422, 422, 422, 422, 422], [a.text for a in answers]
    (applied,) = [body for body, a in zip(bodies, answers, strict=True) if a.status_code == 200]
    assert notes(case) == [applied["text"]]


@pytest_asyncio.fixture(params=["out of reach", "without the API's tables"])
async def broken_database(
    request: pytest.FixtureRequest, unreachable_database: asyncpg.Pool, new_database_url: str
) -> AsyncIterator[asyncpg.Pool]:
    """A PostgreSQL where no key can be checked: nothing listens on its port, or it answers for a
    database the API's migrations never ran on, so every query about keys fails."""
    if request.param == "out of reach":
        yield unreachable_database
        return
    broken = await asyncpg.create_pool(new_database_url, min_size=0)
    yield broken
    await broken.close()


async def test_while_postgresql_cannot_check_a_key_the_action_goes_on_unchecked(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    broken_database: asyncpg.Pool,
    settings: Settings,
    task_queue: str,
    ticket_id: str,
) -> None:
    key = {"Idempotency-Key": "outage-1"}
    async with case_worker(dev_env, pool, task_queue):
        async with in_process(settings, dev_env.client, pool) as http:
            await open_engaged(http, ticket_id)
        async with in_process(settings, dev_env.client, broken_database) as http:
            url = f"/cases/{ticket_id}/actions/add_note"
            note = {"text": "during the outage"}
            answers = [await http.post(url, json=note, headers=key) for _ in range(2)]
            case = (await http.get(f"/cases/{ticket_id}")).json()

    assert [a.status_code for a in answers] == [200, 200], [a.text for a in answers]
    assert notes(case) == ["during the outage"]
