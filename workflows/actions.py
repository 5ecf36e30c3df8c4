"""The actions of the wire contract, each as a signal and as an update of the same name.

A signal is fire-and-forget: one the case cannot take is kept in the timeline as `rejected`; signals
take any number of arguments so that a malformed one is rejected, never a failed workflow task. An update is
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


def only(payloads: tuple[Any, ...]) -> Any:
    """A signal's single payload; none is an empty payload, several are refused as one bad payload."""
    if len(payloads) > 1:
        return {"payloads": f"expected one JSON object, got {len(payloads)} values"}
    return payloads[0] if payloads else None


class CaseActions:
    async def _act(self, name: str, payload: Any) -> None:
        raise NotImplementedError

    async def _act_now(self, name: str, payload: Any) -> CaseStatus:
        raise NotImplementedError

    def _check(self, name: str, payload: Any) -> None:
        raise NotImplementedError

    @workflow.signal(dynamic=True)
    async def unknown_action(self, name: str, args: Sequence[RawValue]) -> None:
        await self._act(name, None)

    @workflow.signal(name="assign")
    async def assign(self, *payloads: Any) -> None:
        await self._act("assign", only(payloads))

    @workflow.update(name="assign")
    async def assign_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("assign", payload)

    @assign_now.validator
    def _assign_allowed(self, payload: Any) -> None:
        self._check("assign", payload)

    @workflow.signal(name="customer_contacted")
    async def customer_contacted(self, *payloads: Any) -> None:
        await self._act("customer_contacted", only(payloads))

    @workflow.update(name="customer_contacted")
    async def customer_contacted_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("customer_contacted", payload)

    @customer_contacted_now.validator
    def _customer_contacted_allowed(self, payload: Any) -> None:
        self._check("customer_contacted", payload)

    @workflow.signal(name="milestone_verified")
    async def milestone_verified(self, *payloads: Any) -> None:
        await self._act("milestone_verified", only(payloads))

    @workflow.update(name="milestone_verified")
    async def milestone_verified_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("milestone_verified", payload)

    @milestone_verified_now.validator
    def _milestone_verified_allowed(self, payload: Any) -> None:
        self._check("milestone_verified", payload)

    @workflow.signal(name="resolved")
    async def resolved(self, *payloads: Any) -> None:
        await self._act("resolved", only(payloads))

    @workflow.update(name="resolved")
    async def resolved_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("resolved", payload)

    @resolved_now.validator
    def _resolved_allowed(self, payload: Any) -> None:
        self._check("resolved", payload)

    @workflow.signal(name="customer_confirmed")
    async def customer_confirmed(self, *payloads: Any) -> None:
        await self._act("customer_confirmed", only(payloads))

    @workflow.update(name="customer_confirmed")
    async def customer_confirmed_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("customer_confirmed", payload)

    @customer_confirmed_now.validator
    def _customer_confirmed_allowed(self, payload: Any = None) -> None:
        self._check("customer_confirmed", payload)

    @workflow.signal(name="customer_rejected")
    async def customer_rejected(self, *payloads: Any) -> None:
        await self._act("customer_rejected", only(payloads))

    @workflow.update(name="customer_rejected")
    async def customer_rejected_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("customer_rejected", payload)

    @customer_rejected_now.validator
    def _customer_rejected_allowed(self, payload: Any = None) -> None:
        self._check("customer_rejected", payload)

    @workflow.signal(name="change_priority")
    async def change_priority(self, *payloads: Any) -> None:
        await self._act("change_priority", only(payloads))

    @workflow.update(name="change_priority")
    async def change_priority_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("change_priority", payload)

    @change_priority_now.validator
    def _change_priority_allowed(self, payload: Any) -> None:
        self._check("change_priority", payload)

    @workflow.signal(name="waiting_on_customer")
    async def waiting_on_customer(self, *payloads: Any) -> None:
        await self._act("waiting_on_customer", only(payloads))

    @workflow.update(name="waiting_on_customer")
    async def waiting_on_customer_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("waiting_on_customer", payload)

    @waiting_on_customer_now.validator
    def _waiting_on_customer_allowed(self, payload: Any = None) -> None:
        self._check("waiting_on_customer", payload)

    @workflow.signal(name="customer_replied")
    async def customer_replied(self, *payloads: Any) -> None:
        await self._act("customer_replied", only(payloads))

    @workflow.update(name="customer_replied")
    async def customer_replied_now(self, payload: Any = None) -> CaseStatus:
        return await self._act_now("customer_replied", payload)

    @customer_replied_now.validator
    def _customer_replied_allowed(self, payload: Any = None) -> None:
        self._check("customer_replied", payload)

    @workflow.signal(name="add_note")
    async def add_note(self, *payloads: Any) -> None:
        await self._act("add_note", only(payloads))

    @workflow.update(name="add_note")
    async def add_note_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("add_note", payload)

    @add_note_now.validator
    def _add_note_allowed(self, payload: Any) -> None:
        self._check("add_note", payload)

    @workflow.signal(name="cancel")
    async def cancel(self, *payloads: Any) -> None:
        await self._act("cancel", only(payloads))

    @workflow.update(name="cancel")
    async def cancel_now(self, payload: Any) -> CaseStatus:
        return await self._act_now("cancel", payload)

    @cancel_now.validator
    def _cancel_allowed(self, payload: Any) -> None:
        self._check("cancel", payload)
