"""The actions of the wire contract, each as a signal and as an update of the same name.

A signal is fire-and-forget: one the case cannot take is kept in the timeline as `rejected`. Every signal
goes through one dynamic handler that decodes its payloads itself, so that a malformed one (several
values, bytes that are not JSON) is rejected, never dropped nor a failed workflow task. An update is
checked by its validator first, so a bad one is refused to the caller and leaves no trace in history; a
good one returns the case once its timeline entry is stored. CaseWorkflow supplies the three methods.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from temporalio import workflow
from temporalio.common import RawValue

with workflow.unsafe.imports_passed_through():
    from workflows.models import CaseStatus
    from workflows.safe_text import one_line


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
    async def _act(self, name: str, payload: Any, unreadable: str | None = None) -> None:
        raise NotImplementedError

    async def _act_now(self, name: str, payload: Any) -> CaseStatus:
        raise NotImplementedError

    def _check(self, name: str, payload: Any) -> None:
        raise NotImplementedError

    @workflow.signal(dynamic=True)
    async def action_signal(self, name: str, payloads: Sequence[RawValue]) -> None:
        """Every action's signal, and any other name (rejected as unknown): one handler, so each payload
        is decoded here and a bad one is rejected in the timeline, never dropped."""
        await self._act(name, *only(payloads))

    @workflow.update(name="assign")
    async def assign_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("assign", payload)

    @assign_now.validator
    def _assign_allowed(self, payload: Any) -> None:
        self._check("assign", payload)

    @workflow.update(name="customer_contacted")
    async def customer_contacted_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("customer_contacted", payload)

    @customer_contacted_now.validator
    def _customer_contacted_allowed(self, payload: Any) -> None:
        self._check("customer_contacted", payload)

    @workflow.update(name="milestone_verified")
    async def milestone_verified_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("milestone_verified", payload)

    @milestone_verified_now.validator
    def _milestone_verified_allowed(self, payload: Any) -> None:
        self._check("milestone_verified", payload)

    @workflow.update(name="resolved")
    async def resolved_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("resolved", payload)

    @resolved_now.validator
    def _resolved_allowed(self, payload: Any) -> None:
        self._check("resolved", payload)

    @workflow.update(name="customer_confirmed")
    async def customer_confirmed_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("customer_confirmed", payload)

    @customer_confirmed_now.validator
    def _customer_confirmed_allowed(self, payload: Any = None) -> None:
        self._check("customer_confirmed", payload)

    @workflow.update(name="customer_rejected")
    async def customer_rejected_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("customer_rejected", payload)

    @customer_rejected_now.validator
    def _customer_rejected_allowed(self, payload: Any = None) -> None:
        self._check("customer_rejected", payload)

    @workflow.update(name="change_priority")
    async def change_priority_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("change_priority", payload)

    @change_priority_now.validator
    def _change_priority_allowed(self, payload: Any) -> None:
        self._check("change_priority", payload)

    @workflow.update(name="waiting_on_customer")
    async def waiting_on_customer_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("waiting_on_customer", payload)

    @waiting_on_customer_now.validator
    def _waiting_on_customer_allowed(self, payload: Any = None) -> None:
        self._check("waiting_on_customer", payload)

    @workflow.update(name="customer_replied")
    async def customer_replied_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("customer_replied", payload)

    @customer_replied_now.validator
    def _customer_replied_allowed(self, payload: Any = None) -> None:
        self._check("customer_replied", payload)

    @workflow.update(name="add_note")
    async def add_note_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("add_note", payload)

    @add_note_now.validator
    def _add_note_allowed(self, payload: Any) -> None:
        self._check("add_note", payload)

    @workflow.update(name="cancel")
    async def cancel_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("cancel", payload)

    @cancel_now.validator
    def _cancel_allowed(self, payload: Any) -> None:
        self._check("cancel", payload)
