"""The actions of the wire contract, and how they reach a case.

Each action is defined once, by its payload model in workflows/models.py (a subclass of ActionPayload:
name, phases, clock effect, meaning, own rules). CaseWorkflow marks the method that applies it with
`@handles(Model)`. From the registry every action becomes a signal and an update of the same name, a
`starter.py` command, and a line of the README's table (`python -m workflows.actions --readme` rewrites it):
- a signal is fire-and-forget: every signal goes through one dynamic handler that decodes its payloads
  itself, so a malformed one (several values, bytes that are not JSON) is rejected in the timeline, never
  dropped nor a failed workflow task;
- an update is checked by its validator first, so a bad one is refused to the caller and leaves no trace
  in history; a good one returns the case once its timeline entry is stored.
Adding an action: its model, its `@handles` method, a test.
"""

from __future__ import annotations

import sys
import typing
from collections.abc import Callable, Sequence
from enum import Enum
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from temporalio import workflow
from temporalio.common import RawValue

from workflows.safe_text import one_line

with workflow.unsafe.imports_passed_through():
    from workflows.models import ACTIONS, OPEN_PHASES, ActionPayload, CaseStatus

# Not resolved: workflows import this module, and the strict sandbox refuses file-system calls.
README = Path(__file__).parent.parent / "README.md"
TABLE_BEGIN = "<!-- actions: printed by `python -m workflows.actions --readme` -->"
TABLE_END = "<!-- end of actions -->"


def payload_shape(model: type[ActionPayload]) -> str:
    """`{field, optional?, choice: a/b}` from the model's fields."""
    parts = []
    for name, field in model.model_fields.items():
        shape = name if field.is_required() else f"{name}?"
        choices = [t for t in typing.get_args(field.annotation) or (field.annotation,) if _is_enum(t)]
        if choices:
            shape += ": " + "/".join(str(v.value) for v in choices[0])
        parts.append(shape)
    return "{" + ", ".join(parts) + "}"


def _is_enum(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, Enum)


def accepted_while(model: type[ActionPayload]) -> str:
    phases = "open" if model.accepted_in == OPEN_PHASES else " or ".join(p.value for p in model.accepted_in)
    if model.while_paused is not None:
        phases += " and paused" if model.while_paused else " and not paused"
    return phases


def readme_table() -> str:
    """The README's table of actions, from the registry."""
    lines = ["| action | payload | accepted while | what it does |", "|---|---|---|---|"]
    lines += [
        f"| `{name}` | `{payload_shape(m)}` | {accepted_while(m)} | {_meaning(m)} |"
        for name, m in ACTIONS.items()
    ]
    return "\n".join(lines)


def _meaning(model: type[ActionPayload]) -> str:
    return " ".join((model.__doc__ or "").split())


def write_readme_table(readme: Path = README) -> bool:
    """Rewrite the table between its markers; True when the README changed."""
    text = readme.read_text(encoding="utf-8")
    head, rest = text.split(TABLE_BEGIN, 1)
    _, tail = rest.split(TABLE_END, 1)
    new = f"{head}{TABLE_BEGIN}\n{readme_table()}\n{TABLE_END}{tail}"
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


F = TypeVar("F", bound=Callable[..., None])


def handles(model: type[ActionPayload]) -> Callable[[F], F]:
    """Marks the CaseWorkflow method that applies the action of `model`."""

    def mark(method: F) -> F:
        method.__dict__["applies_action"] = model.action
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


def _update_id() -> str:
    info = workflow.current_update_info()
    return info.id if info is not None else ""


class CaseActions:
    """Every action as a signal and an update; CaseWorkflow supplies `_act`, `_act_now` and `_check`."""

    handlers: ClassVar[dict[str, Callable[..., None]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.handlers = {
            m.__dict__["applies_action"]: m
            for klass in reversed(cls.__mro__)
            for m in vars(klass).values()
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

    def _answered_before(self, update_id: str) -> CaseStatus | None:
        raise NotImplementedError

    def _answered(self, update_id: str) -> None:
        raise NotImplementedError

    def _register_updates(self) -> None:
        """An update of each action's name, validated before it is accepted. Temporal answers an update id
        it has seen with its first outcome, but only within a run: the case itself answers one its earlier
        runs took (with the case as it is) instead of applying the action again after a continue-as-new."""
        for name in ACTIONS:
            workflow.set_update_handler(name, self._update(name), validator=self._validator(name))

    def _update(self, name: str) -> Callable[..., Any]:
        async def update(payload: Any = None) -> CaseStatus:
            update_id = _update_id()
            known = self._answered_before(update_id)
            if known is not None:
                return known
            status = await self._act_now(name, payload)
            self._answered(update_id)
            return status

        return update

    def _validator(self, name: str) -> Callable[..., None]:
        def validate(payload: Any = None) -> None:
            if self._answered_before(_update_id()) is None:
                self._check(name, payload)

        return validate

    @workflow.signal(dynamic=True)
    async def action_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        """Every action's signal, and any other name (rejected as unknown)."""
        await self._act(name, *only(payloads))


if __name__ == "__main__":
    if sys.argv[1:] == ["--readme"]:
        print("README.md updated" if write_readme_table() else "README.md already current")
    else:
        print(readme_table())
