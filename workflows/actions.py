"""The actions of the wire contract: one registry, and how they reach a case.

Each action is defined once, in ACTIONS: its payload model, the phases it is accepted in, whether it can
move a due instant, and what it means (the README's table is printed from it:
`python -m workflows.actions`). CaseWorkflow marks the method that applies each one with `@handles`.
From the registry every action becomes a signal and an update of the same name:
- a signal is fire-and-forget: every signal goes through one dynamic handler that decodes its payloads
  itself, so a malformed one (several values, bytes that are not JSON) is rejected in the timeline, never
  dropped nor a failed workflow task;
- an update is checked by its validator first, so a bad one is refused to the caller and leaves no trace
  in history; a good one returns the case once its timeline entry is stored.
Adding an action: its model in models.py, a line here, its `@handles` method in case.py, a test.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel

    from workflows.models import (
        AddNote,
        Assign,
        Cancel,
        CaseStatus,
        ChangePriority,
        CustomerConfirmed,
        CustomerContacted,
        CustomerRejected,
        CustomerReplied,
        MilestoneVerified,
        Phase,
        Resolved,
        WaitingOnCustomer,
    )
    from workflows.safe_text import one_line

OPEN_PHASES = frozenset({Phase.TRIAGE, Phase.QUEUED, Phase.ENGAGED, Phase.AWAITING_CONFIRMATION})
ENGAGED = frozenset({Phase.ENGAGED})
AWAITING = frozenset({Phase.AWAITING_CONFIRMATION})


@dataclass(frozen=True)
class ActionSpec:
    model: type[BaseModel]
    phases: frozenset[Phase]
    moves_clocks: bool
    """Whether it can move a due instant (priority, phase, engagement, pause): a burst of notes, which
    cannot, costs no calendar arithmetic."""
    meaning: str
    payload: str


ACTIONS: dict[str, ActionSpec] = {
    "assign": ActionSpec(Assign, OPEN_PHASES, False, "open", "{assignee}"),
    "customer_contacted": ActionSpec(
        CustomerContacted,
        ENGAGED,
        False,
        "engaged; verifies `first_response`",
        "{channel: call/email/chat/portal, note?}",
    ),
    "milestone_verified": ActionSpec(
        MilestoneVerified, ENGAGED, False, "engaged; milestones in order", "{milestone, note?, by?}"
    ),
    "resolved": ActionSpec(Resolved, ENGAGED, True, "engaged; starts the follow-up", "{summary, by?}"),
    "customer_confirmed": ActionSpec(
        CustomerConfirmed, AWAITING, True, "awaiting_confirmation; closes after the follow-up", "{note?}"
    ),
    "customer_rejected": ActionSpec(
        CustomerRejected, AWAITING, True, "awaiting_confirmation; reopens", "{note?}"
    ),
    "change_priority": ActionSpec(
        ChangePriority,
        OPEN_PHASES,
        True,
        "open; re-triages from the original `opened_at`",
        "{priority, reason?}",
    ),
    "waiting_on_customer": ActionSpec(
        WaitingOnCustomer, ENGAGED, True, "engaged; pauses the resolution clocks", "{note?}"
    ),
    "customer_replied": ActionSpec(
        CustomerReplied, ENGAGED, True, "engaged and paused; resumes them", "{note?}"
    ),
    "add_note": ActionSpec(AddNote, OPEN_PHASES, False, "open", "{text, by?}"),
    "cancel": ActionSpec(
        Cancel, OPEN_PHASES, True, "open; closes at once, no follow-up, every timer stopped", "{reason, by?}"
    ),
}


def readme_table() -> str:
    """The README's table of actions, from the registry."""
    lines = ["| action | payload | accepted while |", "|---|---|---|"]
    lines += [f"| `{name}` | `{a.payload}` | {a.meaning} |" for name, a in ACTIONS.items()]
    return "\n".join(lines)


F = TypeVar("F", bound=Callable[..., None])


def handles(name: str) -> Callable[[F], F]:
    """Marks the CaseWorkflow method that applies the action `name`."""

    def mark(method: F) -> F:
        method.__dict__["applies_action"] = name
        return method

    return mark


def only(payloads: Sequence[RawValue]) -> tuple[Any, str | None]:
    """A signal's single payload and, when it cannot be read, why: decoded here so that one that is not
    JSON (a lone surrogate, bad bytes) is rejected in the timeline rather than dropped by the SDK; none is
    an empty payload, several are one bad payload."""
    if len(payloads) > 1:
        return None, f"expected one JSON object, got {len(payloads)} values"
    if not payloads:
        return None, None
    try:
        return workflow.payload_converter().from_payload(payloads[0].payload), None
    except Exception as err:
        return None, f"not readable as JSON: {one_line(str(err), 200)}"


class CaseActions:
    """Every action as a signal and an update; CaseWorkflow supplies `_act`, `_act_now` and `_check`."""

    handlers: ClassVar[dict[str, Callable[..., None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {
            m.__dict__["applies_action"]: m
            for m in vars(cls).values()
            if "applies_action" in getattr(m, "__dict__", {})
        }
        missing = set(ACTIONS) - set(cls.handlers)
        if missing:
            raise TypeError(f"{cls.__name__} has no @handles method for: {', '.join(sorted(missing))}")

    async def _act(self, name: str, payload: Any, unreadable: str | None = None) -> None:
        raise NotImplementedError

    async def _act_now(self, name: str, payload: Any) -> CaseStatus:
        raise NotImplementedError

    def _check(self, name: str, payload: Any) -> None:
        raise NotImplementedError

    def _register_updates(self) -> None:
        """An update of each action's name, validated before it is accepted."""
        for name in ACTIONS:
            workflow.set_update_handler(name, self._update(name), validator=self._validator(name))

    def _update(self, name: str) -> Callable[..., Any]:
        async def update(payload: Any = None) -> CaseStatus:
            return await self._act_now(name, payload)

        return update

    def _validator(self, name: str) -> Callable[..., None]:
        def validate(payload: Any = None) -> None:
            self._check(name, payload)

        return validate

    @workflow.signal(dynamic=True)
    async def action_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        """Every action's signal, and any other name (rejected as unknown)."""
        await self._act(name, *only(payloads))


if __name__ == "__main__":
    print(readme_table())
