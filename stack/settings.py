"""Settings from the environment; nothing here is hard-coded for one machine."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.envconfig import ClientConfigProfile

from workflows.models import TASK_QUEUE

PROJECT_DIR = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    task_queue: str = TASK_QUEUE
    database_url: str | None = None
    policy_file: Path | None = None
    data_dir: Path = PROJECT_DIR / ".data"
    ui_url: str = "http://localhost:8233"
    temporal: ClientConfigProfile = field(default_factory=ClientConfigProfile)

    @property
    def embedded_temporal(self) -> bool:
        """No address from TEMPORAL_ADDRESS or a Temporal config profile: run the dev server."""
        return not self.temporal.address

    @property
    def embedded_database(self) -> bool:
        return not self.database_url

    @classmethod
    def from_env(cls) -> Settings:
        policy = os.environ.get("ABH_POLICY_FILE")
        return cls(
            task_queue=os.environ.get("ABH_TASK_QUEUE", TASK_QUEUE),
            database_url=os.environ.get("DATABASE_URL") or None,
            policy_file=Path(policy) if policy else None,
            data_dir=Path(os.environ.get("ABH_DATA_DIR", PROJECT_DIR / ".data")),
            ui_url=os.environ.get("ABH_UI_URL", "http://localhost:8233"),
            temporal=ClientConfigProfile.load(),
        )
