"""The client API upstream systems and `starter.py` use: open a case, act on it, read it."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
    WorkflowUpdateStage,
)
from temporalio.common import TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from stack.web_ui import case_url
from workflows import rules, search
from workflows.case import CaseWorkflow
from workflows.models import TASK_QUEUE, CaseInput, CaseStatus, Phase, case_workflow_id

# A burst of actions reaches a case as one workflow task (README, "Bursts of actions"): 30 s rather than
# Temporal's 10 s lets a big one finish instead of timing out on every retry. The price: a task caught on a
# worker that dies mid-task is retried after 30 s rather than 10 s.
CASE_TASK_TIMEOUT = timedelta(seconds=30)


# How long an action waits for the case's answer: a case answers in well under a second, and only waits
# this long when no worker is taking its tasks.
ANSWER_WITHIN = timedelta(seconds=20)


class NotAnsweredYet(Exception):
    """No worker answered for the case in time. Temporal holds the action and a worker that takes the case
    applies or refuses it; sending it again with the same update id waits for that same action, and never
    applies a second one."""

    def __init__(self, ticket_id: str, update_id: str, waited: timedelta) -> None:
        self.update_id = update_id
        super().__init__(
            f"case {case_workflow_id(ticket_id)} did not answer within {waited.total_seconds():g} s "
            "(is a worker running?); the action may still be applied when a worker takes the case: "
            f"send it again with the same update id ({update_id}; `--update-id` on the command line) to "
            "learn its outcome, never to apply it twice"
        )


class CaseFailed(Exception):
    """The case failed (a malformed start reached it past the checks) and holds no status to read."""


class CaseAlreadyExists(Exception):
    """A ticket opens at most one case, ever: the existing one is where to look."""

    def __init__(self, ticket_id: str, ui_url: str, namespace: str) -> None:
        self.workflow_id = case_workflow_id(ticket_id)
        self.link = case_url(ui_url, namespace, self.workflow_id)
        super().__init__(
            f"ticket {ticket_id} already has a case ({self.workflow_id}): see {self.link} "
            f"or `python starter.py status {ticket_id}`"
        )


def summary_of(ticket: CaseInput) -> str:
    return f"{ticket.priority.value} - {ticket.customer.name} - {ticket.subject}"


def details_of(ticket: CaseInput) -> str:
    c = ticket.customer
    lines = [
        f"**Customer:** {c.name} (`{c.account_id}`), {c.contact_email}",
        f"**TAM:** {c.tam_email or '-'}",
        f"**Source:** {ticket.source or '-'}",
    ]
    return "  \n".join(lines)


def preview_of(ticket: CaseInput) -> CaseStatus:
    """The case as it stands before its first workflow task: what its starter shows of it (the search
    attributes it starts with)."""
    return CaseStatus(
        workflow_id=case_workflow_id(ticket.ticket_id),
        ticket=ticket,
        priority=ticket.priority,
        phase=Phase.TRIAGE,
        opened_at=ticket.opened_at or datetime.now(UTC),
        assignee=ticket.assignee,
    )


async def open_case(
    client: Client,
    ticket: CaseInput,
    *,
    task_queue: str = TASK_QUEUE,
    ui_url: str = "http://localhost:8233",
    with_search_attributes: bool = True,
) -> WorkflowHandle[CaseWorkflow, Any]:
    """Start the ticket's case; CaseAlreadyExists if the ticket has one, open or closed."""
    preview = preview_of(ticket)
    try:
        return await client.start_workflow(
            CaseWorkflow.run,
            ticket,
            id=preview.workflow_id,
            task_queue=task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            task_timeout=CASE_TASK_TIMEOUT,
            search_attributes=(
                TypedSearchAttributes(search.pairs_at_start(preview)) if with_search_attributes else None
            ),
            static_summary=summary_of(ticket),
            static_details=details_of(ticket),
        )
    except WorkflowAlreadyStartedError:
        raise CaseAlreadyExists(ticket.ticket_id, ui_url, client.namespace) from None


def handle_for(client: Client, ticket_id: str) -> WorkflowHandle[CaseWorkflow, Any]:
    return client.get_workflow_handle_for(CaseWorkflow.run, case_workflow_id(ticket_id))


async def signal_action(client: Client, ticket_id: str, action: str, payload: dict[str, Any]) -> None:
    """Fire-and-forget: the payload is checked here first, so a typo never leaves this process; a case
    that is closed or was never opened is refused, as an update is."""
    model = rules.parse_action(action, payload)
    try:
        await handle_for(client, ticket_id).signal(action, model)
    except RPCError as err:
        if err.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise
        raise rules.Refused(await _why_not_running(client, ticket_id)) from None


async def update_action(
    client: Client,
    ticket_id: str,
    action: str,
    payload: dict[str, Any],
    *,
    update_id: str | None = None,
    wait: timedelta = ANSWER_WITHIN,
) -> CaseStatus:
    """Send an action and wait for the case's answer: the new status, or Refused saying why not, or
    NotAnsweredYet after `wait`. Temporal keeps one action per `update_id` on a case, so a caller that
    sends again with the same id (after a lost answer or NotAnsweredYet) gets the first one's outcome."""
    model = rules.parse_action(action, payload)
    update_id = update_id or f"{action}:{uuid.uuid4()}"
    # One deadline for the whole call: the SDK asks again each time the server's long poll (about 20 s)
    # ends with the update still waiting for a worker, so a per-call RPC timeout alone never ends it.
    deadline = asyncio.timeout(wait.total_seconds())
    try:
        async with deadline:
            update = await handle_for(client, ticket_id).start_update(
                action,
                model,
                wait_for_stage=WorkflowUpdateStage.COMPLETED,
                id=update_id,
                result_type=CaseStatus,
            )
            status: CaseStatus = await update.result()
        return status
    except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError):
        task = asyncio.current_task()
        if deadline.expired() or not (task and task.cancelling()):
            raise NotAnsweredYet(ticket_id, update_id, wait) from None
        raise  # the caller's own cancellation (a shutdown), which the SDK words as a timeout
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        raise rules.Refused(cause.message if isinstance(cause, ApplicationError) else str(cause)) from None
    except RPCError as err:
        if err.status not in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION):
            raise
        raise rules.Refused(await _why_not_running(client, ticket_id)) from None


async def _why_not_running(client: Client, ticket_id: str) -> str:
    try:
        described = await handle_for(client, ticket_id).describe()
    except RPCError:
        return f"ticket {ticket_id} has no case ({case_workflow_id(ticket_id)} not found)"
    state = described.status.name.lower() if described.status else "closed"
    return f"case {ticket_id} is closed ({state}); it takes no more actions"


async def case_status(client: Client, ticket_id: str) -> CaseStatus:
    try:
        return await handle_for(client, ticket_id).query(CaseWorkflow.status)
    except WorkflowQueryFailedError as err:
        raise CaseFailed(f"case {case_workflow_id(ticket_id)} holds no status: {err.message}") from None
