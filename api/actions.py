"""`POST /cases/{ticket_id}/actions/{action}`: one route per action of the registry, so a new action is in
the API (its body schema, its OpenAPI page) the moment its model is defined."""

import inspect
import uuid
from datetime import timedelta
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Body, Depends, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from temporalio.service import RPCError, RPCStatusCode

from api.auth import require
from api.cases import TicketPath
from api.idempotency import KeyedAction
from api.responses import Refusal, documented
from stack.cases import CaseFailed, NotAnsweredYet, case_status, update_action
from stack.settings import Settings
from workflows.actions import accepted_while
from workflows.models import ACTIONS, ActionPayload, CaseStatus, case_workflow_id
from workflows.rules import Refused, allowed_now

router = APIRouter(prefix="/cases/{ticket_id}/actions", tags=["actions"])
IDEMPOTENCY_KEY = "Idempotency-Key"
IdempotencyKeyHeader = Annotated[
    str | None,
    Header(
        alias=IDEMPOTENCY_KEY,
        pattern=r"^[A-Za-z0-9._:-]{1,100}$",
        description="The action is applied once per key: send it again with the same key and body after "
        "a lost answer or a 503, and you get the first one's outcome; the key with another body is a 422. "
        "1-100 of A-Za-z0-9._:-",
    ),
]
log = structlog.get_logger("api")


async def refusal(request: Request, ticket_id: str, refused: Refused) -> JSONResponse:
    """409 with why and what the case accepts now; 404 when the ticket has no case at all."""
    try:
        status = await case_status(request.app.state.client, ticket_id)
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            raise HTTPException(404, f"ticket {ticket_id} has no case") from None
        allowed: list[str] = []
    except CaseFailed:
        allowed = []
    else:
        allowed = allowed_now(status)
    body = Refusal(detail=str(refused), allowed_now=allowed)
    return JSONResponse(body.model_dump(), status_code=409)


async def act(
    request: Request, ticket_id: str, payload: ActionPayload, key: str
) -> CaseStatus | JSONResponse:
    """Send the action as an update and answer with the case, or with the case's refusal. The action is
    applied once per idempotency `key`: when the case does not answer in time, the 503 names the key, and
    the same action sent again with it waits for the first, never applying a second."""
    settings: Settings = request.app.state.settings
    workflow_id = case_workflow_id(ticket_id)
    bound = log.bind(ticket_id=ticket_id, workflow_id=workflow_id, action=payload.action)
    try:
        status = await update_action(
            request.app.state.client,
            ticket_id,
            payload.action,
            payload.model_dump(exclude_none=True),
            update_id=update_id_of(payload, key),
            wait=timedelta(seconds=settings.answer_within),
        )
    except Refused as refused:
        bound.info("action refused", reason=str(refused))
        return await refusal(request, ticket_id, refused)
    except NotAnsweredYet:
        bound.warning("action not answered in time", idempotency_key=key)
        detail = (
            f"case {workflow_id} did not answer within {settings.answer_within:g} s (is a "
            "worker running?); the action may still be applied when a worker takes the case: send it "
            f"again with the header Idempotency-Key: {key} to learn its outcome, never to apply it twice"
        )
        headers = {"Retry-After": "5", IDEMPOTENCY_KEY: key}
        return JSONResponse({"detail": detail}, status_code=503, headers=headers)
    bound.info("action accepted", phase=status.phase.value)
    return status


def update_id_of(payload: ActionPayload, key: str) -> str:
    """Temporal keeps one update per id on a case: an action's id is its name and its key."""
    return f"{payload.action}:{key}"


async def act_once_per_key(
    request: Request, ticket_id: str, payload: ActionPayload, key: str | None
) -> CaseStatus | JSONResponse:
    """An action a client sends, `act` with its key for one body (`KeyedAction`). A key the client chose
    is claimed before the action and released when the case refuses it (unless another request claimed it
    meanwhile); a key the API made (none given) is claimed when a 503 names it, for the client to send
    again."""
    chosen, key = key is not None, key or uuid.uuid4().hex
    keyed = KeyedAction(
        request.app.state.pool, case_workflow_id(ticket_id), update_id_of(payload, key), key, payload
    )
    claims = await keyed.claim() if chosen else None
    try:
        answer = await act(request, ticket_id, payload, key)
    except HTTPException as no_case:
        if claims and no_case.status_code == 404:
            await keyed.release(claims)
        raise
    if isinstance(answer, JSONResponse):
        if claims and answer.status_code == 409:
            await keyed.release(claims)
        elif not chosen and answer.status_code == 503:
            await keyed.claim()
    return answer


def _route(model: type[ActionPayload]) -> Any:
    """The endpoint of one action, its body typed by the action's model (optional when every field is)."""
    optional = not any(f.is_required() for f in model.model_fields.values())

    async def endpoint(
        request: Request, ticket_id: str, payload: Any, idempotency_key: str | None
    ) -> CaseStatus | JSONResponse:
        return await act_once_per_key(
            request, ticket_id, payload if payload is not None else model(), idempotency_key
        )

    endpoint.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request),
            inspect.Parameter("ticket_id", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=TicketPath),
            inspect.Parameter(
                "payload",
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=Annotated[(model | None) if optional else model, Body()],
                default=None if optional else inspect.Parameter.empty,
            ),
            inspect.Parameter(
                "idempotency_key",
                inspect.Parameter.KEYWORD_ONLY,
                annotation=IdempotencyKeyHeader,
                default=None,
            ),
        ]
    )
    return endpoint


for _name, _model in ACTIONS.items():
    router.add_api_route(
        f"/{_name}",
        _route(_model),
        methods=["POST"],
        response_model=CaseStatus,
        dependencies=[Depends(require("act"))],
        responses=documented(400, 401, 403, 404, 503, r409=Refusal),
        summary=" ".join((_model.__doc__ or _name).split()),
        description=f"Accepted while {accepted_while(_model)}. Answers with the case after the action.",
        name=f"action_{_name}",
        operation_id=f"action_{_name}",
    )
