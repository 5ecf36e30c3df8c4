"""Bad starts fail at once and say why; a ticket opens at most one case; starter refuses before sending."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import starter
from stack.cases import CaseAlreadyExists, open_case, update_action
from tests.cases import case_worker, status_when, ticket
from workflows.models import TASK_QUEUE, Phase


async def failure_of(
    env: WorkflowEnvironment, task_queue: str, raw_input: Any
) -> tuple[ApplicationError, list[str]]:
    """Start CaseWorkflow by name with raw JSON, as the plain `temporal` CLI would."""
    handle = await env.client.start_workflow(
        "CaseWorkflow", raw_input, id=f"case-raw-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    events = [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]
    assert isinstance(failed.value.cause, ApplicationError)
    return failed.value.cause, events


async def test_invalid_input_fails_the_case_at_once_naming_each_field(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str
) -> None:
    raw = {"ticket_id": "bad id!", "priority": "P9", "subject": "x", "customer": {"account_id": "a"}}
    async with case_worker(time_env, pool, task_queue):
        error, events = await failure_of(time_env, task_queue, raw)
        not_an_object, _ = await failure_of(time_env, task_queue, "open a P1 please")

    assert error.type == "InvalidCaseInput" and error.non_retryable
    for field in (
        "ticket_id: String should match pattern",
        "priority: Input should be",
        "customer.name: Field required",
        "customer.contact_email: Field required",
    ):
        assert field in error.message
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in events
    assert events[-1] == "EVENT_TYPE_WORKFLOW_EXECUTION_FAILED"
    assert (
        not_an_object.type == "InvalidCaseInput"
        and "Input should be a valid dictionary" in not_an_object.message
    )


async def test_unknown_customer_calendar_is_named(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    raw = json.loads(ticket(ticket_id).model_dump_json())
    raw["customer"]["calendar"] = "mars-base"
    async with case_worker(time_env, pool, task_queue):
        error, events = await failure_of(time_env, task_queue, raw)
    assert "customer.calendar: unknown calendar 'mars-base'; known: business" in error.message
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in events


async def test_a_ticket_opens_one_case_ever(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(time_env, pool, task_queue) as cases:
        handle = await cases.open(ticket(ticket_id, "P1"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        with pytest.raises(
            CaseAlreadyExists, match=f"ticket {ticket_id} already has a case \\(case-{ticket_id}\\)"
        ):
            await open_case(time_env.client, ticket(ticket_id, "P2"), task_queue=task_queue)
        await time_env.client.get_workflow_handle(handle.id).signal("cancel", {"reason": "duplicate"})
        await handle.result()
        with pytest.raises(CaseAlreadyExists, match="/namespaces/default/workflows/case-"):
            await open_case(time_env.client, ticket(ticket_id, "P2"), task_queue=task_queue)


def test_starter_refuses_a_bad_ticket_before_starting_anything(capsys: pytest.CaptureFixture[str]) -> None:
    code = starter.main(
        [
            "open",
            "--ticket-id",
            "T 1",
            "--priority",
            "P7",
            "--subject",
            "x",
            "--account-id",
            "acme",
            "--customer-name",
            "Acme",
            "--contact-email",
            "not-an-email",
        ]
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "refused: invalid ticket:" in err
    for field in ("ticket_id:", "priority:", "customer.contact_email:"):
        assert field in err


def test_starter_refuses_a_bad_action_before_sending(capsys: pytest.CaptureFixture[str]) -> None:
    code = starter.main(["milestone_verified", "T-1", "--milestone", "root_cause"])
    assert code == 2
    assert "invalid milestone_verified payload: milestone: Input should be" in capsys.readouterr().err


def test_task_queue_of_the_wire_contract() -> None:
    assert TASK_QUEUE == "abh-cases"


async def test_update_to_a_ticket_without_a_case_says_so(time_env: WorkflowEnvironment) -> None:
    from workflows.rules import Refused

    with pytest.raises(Refused, match="ticket NOPE-1 has no case"):
        await update_action(time_env.client, "NOPE-1", "add_note", {"text": "hello"})
