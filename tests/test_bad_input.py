"""Bad starts fail at once and say why; a ticket opens at most one case; starter refuses before sending."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

import starter
from console.attention import failed_cases
from console.views import build_query
from stack.cases import CaseAlreadyExists, CaseFailed, case_status, open_case, signal_action, update_action
from tests.cases import case_worker, round_the_clock_policy, status_when, ticket, until
from tests.test_case_lives import first_event
from workflows.models import TASK_QUEUE, CaseInput, Phase


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


async def test_a_case_failed_on_an_unknown_calendar_reads_as_failed_everywhere(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """The calendar is checked by the case (the policy lives with the workers), so such a ticket opens and
    its case fails at once: `status` says why, `attention` lists it, and `list --phase open` leaves it out,
    though its search attributes still read as it began (triage)."""
    raw = json.loads(ticket(ticket_id).model_dump_json())
    raw["customer"]["calendar"] = "mars-base"
    async with case_worker(dev_env, pool, task_queue):
        handle = await open_case(dev_env.client, CaseInput.model_validate(raw), task_queue=task_queue)
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        with pytest.raises(CaseFailed, match="unknown calendar 'mars-base'"):
            await case_status(dev_env.client, ticket_id)
    scope = f'WorkflowId="{handle.id}"'
    await until(lambda: _listed(dev_env, scope + ' AND ExecutionStatus="Failed"'), "visible as failed")
    assert not await _listed(dev_env, build_query(phase="open", extra=scope))
    failed = {c.workflow_id: c.note for c in await failed_cases(dev_env.client, limit=1000)}
    assert "unknown calendar 'mars-base'" in (failed.get(handle.id) or "")

    # Reset to its first workflow task (no worker: the new run waits), it is no longer a failed case.
    first_task = await first_event(handle, EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED)
    client = dev_env.client
    reset = await client.workflow_service.reset_workflow_execution(
        ResetWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(
                workflow_id=handle.id, run_id=handle.first_execution_run_id or ""
            ),
            reason="tests: the policy was fixed",
            workflow_task_finish_event_id=first_task.event_id,
            request_id=str(uuid.uuid4()),
        )
    )
    try:
        assert handle.id not in [c.workflow_id for c in await failed_cases(client, limit=1000)]
    finally:
        await client.get_workflow_handle(handle.id, run_id=reset.run_id).terminate("test over")


async def _listed(env: WorkflowEnvironment, query: str) -> bool:
    return bool([e async for e in env.client.list_workflows(query)])


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


async def test_an_action_to_a_ticket_without_a_case_says_so_as_update_or_signal(
    time_env: WorkflowEnvironment,
) -> None:
    from workflows.rules import Refused

    with pytest.raises(Refused, match="ticket NOPE-1 has no case"):
        await update_action(time_env.client, "NOPE-1", "add_note", {"text": "hello"})
    with pytest.raises(Refused, match="ticket NOPE-1 has no case"):
        await signal_action(time_env.client, "NOPE-1", "add_note", {"text": "hello"})


async def test_a_start_without_input_or_opened_in_the_future_fails_at_once(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    """On the dev server: real time, so "the future" stays the future while the case starts."""
    now = await dev_env.get_current_time()
    future = json.loads(ticket(ticket_id).model_dump_json()) | {
        "opened_at": (now + timedelta(days=1)).isoformat()
    }
    async with case_worker(dev_env, pool, task_queue):
        handle = await dev_env.client.start_workflow(
            "CaseWorkflow", id=f"case-empty-{ticket_id}", task_queue=task_queue
        )
        with pytest.raises(WorkflowFailureError) as empty:
            await handle.result()
        error, events = await failure_of(dev_env, task_queue, future)
    assert isinstance(empty.value.cause, ApplicationError) and empty.value.cause.type == "InvalidCaseInput"
    assert "opened_at:" in error.message and "is in the future" in error.message
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in events


async def test_signals_with_no_or_several_payloads_never_fail_a_task(
    time_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    async with case_worker(time_env, pool, task_queue, round_the_clock_policy()) as cases:
        handle = await cases.open(ticket(ticket_id, "P3"))
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        raw = time_env.client.get_workflow_handle(handle.id)
        await raw.signal("resolved")
        await raw.signal("add_note", args=[{"text": "one"}, {"text": "two"}])
        await raw.signal("waiting_on_customer")
        status = await status_when(handle, lambda s: s.paused)
        events = [EventType.Name(e.event_type) async for e in handle.fetch_history_events()]

    rejected = [e.detail for e in status.timeline if e.type == "rejected"]
    assert rejected[0] == "invalid resolved payload: summary: Field required"
    assert rejected[1].startswith("invalid add_note payload: ")
    assert "EVENT_TYPE_WORKFLOW_TASK_FAILED" not in events


def test_opened_at_is_kept_in_utc_and_must_be_plausible() -> None:
    from pydantic import ValidationError

    t = ticket("T-1", opened_at="2026-11-27T14:00:00+05:30")
    assert t.opened_at is not None and (t.opened_at.hour, t.opened_at.utcoffset()) == (8, timedelta(0))
    with pytest.raises(ValidationError, match="opened_at"):
        ticket("T-1", opened_at="1970-01-01T00:00:00Z")


def test_a_bad_setting_is_refused_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_PORT", "smtp")
    assert starter.main(["list"]) == 2
    assert "refused: invalid settings: SMTP_PORT:" in capsys.readouterr().err
