"""Safe deploys: recorded histories of real cases replay against the current workflow code.

A change that would make a running case take a different path fails here, in CI, before it ships. Each
history replays both as workers run it (unsandboxed) and in the strict sandbox the tests run their cases
in, with the workflows' own modules imported into it, so a workflow that reads the wall clock, draws a
random number or calls the file system fails here too: workers run unsandboxed, for speed, and check
none of it.
Refresh the recordings with `python -m tests.histories.record` (see the README).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from worker import workflow_runner
from workflows.case import CaseWorkflow

HISTORIES = sorted((Path(__file__).parent / "histories").rglob("*.json"))


def test_the_representative_cases_are_recorded() -> None:
    names = {p.stem for p in HISTORIES if p.parent.name == "histories"}
    assert {"p1_escalated_and_closed", "p3_queued_paused_reopened", "cancelled", "continued_as_new"} <= names
    assert {"p1_acknowledged_and_updated", "raised_to_p1_while_queued", "updates_on_the_dev_server"} <= names
    assert "updates_while_opened" in names


@pytest.mark.parametrize("strict", [False, True], ids=["workers", "strict-sandbox"])
@pytest.mark.parametrize("path", HISTORIES, ids=[f"{p.parent.name}/{p.stem}" for p in HISTORIES])
async def test_recorded_case_replays(path: Path, strict: bool) -> None:
    workflow_id = json.loads(path.read_text())["events"][0]["workflowExecutionStartedEventAttributes"].get(
        "workflowId", path.stem
    )
    history = WorkflowHistory.from_json(workflow_id, path.read_text())
    replayer = Replayer(
        workflows=[CaseWorkflow],
        data_converter=pydantic_data_converter,
        workflow_runner=workflow_runner(strict=strict),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None
