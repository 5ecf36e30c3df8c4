"""The API when something behind it is missing: no worker takes the case, PostgreSQL is out of reach, or
the case failed at its start. Each gets a clear answer, never a hang or a 500, and nothing is applied
twice."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment

from stack.samples import ticket
from stack.settings import Settings
from tests.api_server import (
    IN_PROCESS_TOKENS,
    ZENDESK_SECRET,
    api_env,
    api_process,
    in_process,
    phase_is,
    zendesk_headers,
)
from tests.cases import case_worker, free_port, quiet, status_when, until
from tests.test_webhooks_zendesk import created, solved
from workflows.models import Phase, case_workflow_id


@pytest.fixture
def settings(task_queue: str) -> Settings:
    return Settings.from_env(
        {
            "ABH_API_TOKENS": IN_PROCESS_TOKENS,
            "ABH_TASK_QUEUE": task_queue,
            "ABH_ZENDESK_SECRET": ZENDESK_SECRET,
            "ABH_API_ANSWER_WITHIN": "2",
        }
    )


async def test_an_action_no_worker_answers_is_a_503_and_applied_once_with_its_key(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, task_queue: str, ticket_id: str
) -> None:
    async with in_process(settings, dev_env.client, pool) as http:
        async with case_worker(dev_env, pool, task_queue):
            opened = await http.post("/cases", json=ticket(ticket_id, "P1").model_dump(mode="json"))
            assert opened.status_code == 201, opened.text
            await phase_is(http, ticket_id, "engaged")

        note = {"text": "called the customer back"}
        keyless = await http.post(f"/cases/{ticket_id}/actions/add_note", json={"text": "another"})
        assert keyless.status_code == 503, keyless.text
        assert keyless.headers["Idempotency-Key"] in keyless.json()["detail"]
        for _ in range(2):
            waiting = await http.post(
                f"/cases/{ticket_id}/actions/add_note", json=note, headers={"Idempotency-Key": "note-1"}
            )
            assert waiting.status_code == 503, waiting.text
            assert waiting.headers["Retry-After"] and waiting.headers["Idempotency-Key"] == "note-1"
            assert "did not answer within 2 s" in waiting.json()["detail"]

        async with case_worker(dev_env, pool, task_queue):
            answered = await http.post(
                f"/cases/{ticket_id}/actions/add_note", json=note, headers={"Idempotency-Key": "note-1"}
            )
            assert answered.status_code == 200, answered.text
            case = (await http.get(f"/cases/{ticket_id}")).json()
            bad_key = await http.post(
                f"/cases/{ticket_id}/actions/add_note", json=note, headers={"Idempotency-Key": "a b"}
            )

    notes = [e["detail"] for e in case["timeline"] if e["type"] == "note"]
    assert notes.count(note["text"]) == 1, notes
    assert bad_key.status_code == 422 and "idempotency-key" in bad_key.text.lower()


async def test_a_case_that_failed_at_its_start_is_a_409_not_a_500(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(dev_env, pool, task_queue):
        failed = await dev_env.client.start_workflow(
            "CaseWorkflow",
            {"ticket_id": ticket_id, "priority": "P9"},
            id=case_workflow_id(ticket_id),
            task_queue=task_queue,
        )
        with pytest.raises(WorkflowFailureError):
            await failed.result()
        async with in_process(settings, dev_env.client, pool) as http:
            answers = [
                await http.get(f"/cases/{ticket_id}"),
                await http.get(f"/cases/{ticket_id}/timeline"),
                await http.post(f"/cases/{ticket_id}/actions/add_note", json={"text": "hello"}),
            ]
    for answer in answers:
        assert answer.status_code == 409, answer.text
    assert "priority" in answers[0].json()["detail"]
    assert answers[2].json()["allowed_now"] == []


async def test_a_webhook_while_postgresql_is_out_of_reach_is_a_503_and_opens_nothing(
    dev_env: WorkflowEnvironment, unreachable_database: asyncpg.Pool, settings: Settings
) -> None:
    zendesk_id = random.randrange(10**6, 10**9)
    body = created(zendesk_id)
    async with in_process(settings, dev_env.client, unreachable_database) as http:
        answer = await http.post("/webhooks/zendesk", content=body, headers=zendesk_headers(body))
    assert answer.status_code == 503, answer.text
    assert "PostgreSQL" in answer.json()["detail"] and answer.headers["Retry-After"]
    with pytest.raises(Exception, match="not found"):
        await dev_env.client.get_workflow_handle(case_workflow_id(f"ZD-{zendesk_id}")).describe()


async def test_a_webhook_delivery_cut_off_by_a_crash_is_taken_again_and_applied_once(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """The API process dies while a helpdesk's delivery waits on the case: its retry must not be refused
    as a replay (the delivery would be lost), and the action must not land twice."""
    zendesk_id = random.randrange(10**6, 10**9)
    ticket_id = f"ZD-{zendesk_id}"
    async with case_worker(dev_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await quiet(handle)  # from here, a workflow task to do is the delivery's update, with no worker

    async def update_waits_on_the_case() -> bool:
        return (await handle.describe()).raw_description.HasField("pending_workflow_task")

    env = api_env(dev_env.client.service_client.config.target_host, database_url, task_queue)
    port = free_port()
    body = solved(zendesk_id)
    headers = zendesk_headers(body)
    url = f"http://127.0.0.1:{port}/webhooks/zendesk"
    async with httpx.AsyncClient(timeout=60) as http:
        with api_process(env, port, tmp_path / "api-1.log") as api:
            assert not await update_waits_on_the_case()
            first = asyncio.create_task(http.post(url, content=body, headers=headers))
            await until(update_waits_on_the_case, "the delivery's update reaching the case", every=0.05)
            api.kill()
            with pytest.raises(httpx.TransportError):
                await first
        async with case_worker(dev_env, pool, task_queue):
            with api_process(env, port, tmp_path / "api-2.log"):
                retried = await http.post(url, content=body, headers=headers)
                replayed = await http.post(url, content=body, headers=headers)
            resolved = await status_when(handle, lambda s: s.phase is Phase.AWAITING_CONFIRMATION)
    assert retried.status_code == 200, retried.text
    assert replayed.status_code == 401 and "already received" in replayed.text
    assert [e.type for e in resolved.timeline].count("resolved") == 1
