"""What the API answers besides the case itself: every refusal carries a `detail` saying what was wrong."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """A refusal: what was wrong, in words."""

    detail: str


class Opened(BaseModel):
    """A case just opened, or the one a ticket already has."""

    ticket_id: str
    workflow_id: str
    case: str = Field(description="the case's URL in this API")
    web_ui: str = Field(description="the case's page in the Temporal Web UI")


class Exists(Opened):
    """A second open of a ticket: never a second case, the link to the one it has."""

    detail: str


class Refusal(BaseModel):
    """An action the case refused: why, and what it accepts now."""

    detail: str
    allowed_now: list[str]


class WebhookResult(BaseModel):
    """What a webhook delivery did to ABH."""

    ticket_id: str
    outcome: str = Field(description="opened, exists, an action's name, or ignored")
    case: str | None = None
    detail: str | None = None


def documented(*codes: int, **models: Any) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the refusals a route can give, each with the Problem shape unless named.
    A 400 is a body whose bytes FastAPI cannot decode at all; one that is text but not JSON is a 422."""
    shapes: dict[int | str, dict[str, Any]] = {code: {"model": Problem} for code in codes}
    for code, model in models.items():
        shapes[int(code.removeprefix("r"))] = {"model": model}
    return shapes
