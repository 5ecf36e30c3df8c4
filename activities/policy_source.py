"""The policy a new case starts with, read from the policy file when the case is opened."""

from __future__ import annotations

from pathlib import Path

from temporalio import activity

from workflows.policy import Policy, load_policy


class PolicySource:
    def __init__(self, path: Path | str | None = None, policy: Policy | None = None) -> None:
        self._path = path
        self._fixed = policy

    @activity.defn
    async def current_policy(self) -> Policy:
        """Re-read on every call so an edited file applies to the next case without a restart."""
        return self._fixed or load_policy(self._path)
