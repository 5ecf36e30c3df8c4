"""Open a case, read one, list them: `POST /cases`, `GET /cases/{ticket_id}`, its timeline, `GET /cases`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

import structlog
from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from api.auth import require
from api.responses import Exists, Opened, documented
from console.read_models import CaseRow
from console.views import DEFAULT_LIMIT, OPEN, build_query, list_cases
from stack.cases import CaseAlreadyExists, CaseFailed, case_status, open_case
from stack.settings import Settings
from stack.web_ui import case_url
from workflows.models import (
    CLOCK_SKEW,
    CaseInput,
    CaseStatus,
    Phase,
    Priority,
    TimelineEntry,
    case_workflow_id,
)

router = APIRouter(prefix="/cases", tags=["cases"])
log = structlog.get_logger("api")

TicketPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$", description="the ticket's id"),
]
# A filter value goes into a visibility query: quoted there, and kept to printable text here.
FilterText = Annotated[str | None, Query(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")]
PhaseFilter = Literal["triage", "queued", "engaged", "awaiting_confirmation", "closed", "open"]


def case_path(ticket_id: str) -> str:
    return f"/cases/{ticket_id}"


def opened(request: Request, client: Client, ticket_id: str) -> Opened:
    settings: Settings = request.app.state.settings
    workflow_id = case_workflow_id(ticket_id)
    return Opened(
        ticket_id=ticket_id,
        workflow_id=workflow_id,
        case=case_path(ticket_id),
        web_ui=case_url(settings.ui_url, client.namespace, workflow_id),
    )


def future_opened_at(ticket: CaseInput) -> None:
    """The same refusal as `starter.py open`: an `opened_at` ahead of the clock is a typo, not a ticket."""
    if ticket.opened_at is not None and ticket.opened_at > datetime.now(UTC) + CLOCK_SKEW:
        raise RequestValidationError(
            [
                {
                    "loc": ("body", "opened_at"),
                    "msg": f"{ticket.opened_at.isoformat()} is in the future",
                    "type": "value_error",
                }
            ]
        )


async def open_ticket(request: Request, ticket: CaseInput) -> tuple[Opened, bool]:
    """Open the ticket's case: (the case, True) or, when it has one already, (that case, False)."""
    future_opened_at(ticket)
    settings: Settings = request.app.state.settings
    client: Client = request.app.state.client
    bound = log.bind(ticket_id=ticket.ticket_id, workflow_id=case_workflow_id(ticket.ticket_id))
    try:
        await open_case(client, ticket, task_queue=settings.task_queue, ui_url=settings.ui_url)
    except CaseAlreadyExists:
        bound.info("ticket already has a case", source=ticket.source)
        return opened(request, client, ticket.ticket_id), False
    bound.info("case opened", source=ticket.source, priority=ticket.priority.value)
    return opened(request, client, ticket.ticket_id), True


@router.post(
    "",
    status_code=201,
    response_model=Opened,
    dependencies=[Depends(require("intake"))],
    responses=documented(400, 401, 403, 503, r409=Exists),
    summary="Open a case for a ticket",
)
async def open_case_route(ticket: CaseInput, request: Request, response: Response) -> Opened | Response:
    """A ticket opens at most one case, ever: the same ticket again is a 409 with the existing case."""
    case, new = await open_ticket(request, ticket)
    response.headers["Location"] = case.case
    if not new:
        exists = Exists(
            **case.model_dump(),
            detail=f"ticket {ticket.ticket_id} already has a case ({case.workflow_id}): see {case.case}",
        )
        return Response(
            exists.model_dump_json(),
            status_code=409,
            media_type="application/json",
            headers={"Location": case.case},
        )
    return case


async def status_of(request: Request, ticket_id: str) -> CaseStatus:
    try:
        return await case_status(request.app.state.client, ticket_id)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"ticket {ticket_id} has no case") from None
        raise
    except CaseFailed as failed:
        raise HTTPException(409, str(failed)) from None


@router.get(
    "/{ticket_id}",
    response_model=CaseStatus,
    dependencies=[Depends(require("read"))],
    responses=documented(401, 403, 404, 409, 503),
    summary="The whole case (the `status` query)",
)
async def get_case(ticket_id: TicketPath, request: Request) -> CaseStatus:
    return await status_of(request, ticket_id)


@router.get(
    "/{ticket_id}/timeline",
    response_model=list[TimelineEntry],
    dependencies=[Depends(require("read"))],
    responses=documented(401, 403, 404, 409, 503),
    summary="The case's timeline (its last `timeline_window` entries; all of them are in PostgreSQL)",
)
async def get_timeline(ticket_id: TicketPath, request: Request) -> list[TimelineEntry]:
    return (await status_of(request, ticket_id)).timeline


@router.get(
    "",
    response_model=list[CaseRow],
    dependencies=[Depends(require("read"))],
    responses=documented(401, 403, 503),
    summary="Cases from Temporal visibility, filtered as `starter.py list` filters them",
)
async def list_cases_route(
    request: Request,
    priority: Priority | None = None,
    phase: Annotated[PhaseFilter | None, Query(description=f"'{OPEN}': every phase but closed")] = None,
    customer: Annotated[FilterText, Query(description="the customer's account_id")] = None,
    assignee: FilterText = None,
    escalated: bool | None = None,
    breached: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = DEFAULT_LIMIT,
) -> list[CaseRow]:
    query = build_query(
        priority.value if priority else None,
        Phase(phase).value if phase and phase != OPEN else phase,
        customer,
        escalated,
        breached,
        assignee=assignee,
    )
    return await list_cases(request.app.state.client, query, limit=limit)
