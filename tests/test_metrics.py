"""The worker's metrics port after a real lifecycle: each case metric with its labels and value, the
gauges as PostgreSQL and visibility hold them, and the SDK's own runtime metrics beside them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from console.gauges import NEEDING_ATTENTION_QUERY
from console.outbox import rows_by_state
from stack.cases import handle_for, open_case, signal_action
from tests.cases import free_port, status_when, ticket, until
from tests.test_end_to_end import ROOT
from tests.worker_process import get, parse_samples, value, worker_process
from workflows.models import CloseReason, Milestone


@pytest.fixture
def breaching_policy(tmp_path: Path) -> Path:
    """The demo policy where a P1 misses first response after 2 s and escalates after 3 s."""
    text = (ROOT / "policies" / "demo.toml").read_text()
    text = text.replace("first_response = 20,", "first_response = 2,").replace("after = 60", "after = 3")
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


async def test_metrics_show_a_lifecycle_and_the_sdk_runtime(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    database_url: str,
    task_queue: str,
    ticket_id: str,
    breaching_policy: Path,
) -> None:
    port = free_port()
    metrics = f"http://127.0.0.1:{port}"
    env = {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DATABASE_URL": database_url,
        "ABH_TASK_QUEUE": task_queue,
        "ABH_POLICY_FILE": str(breaching_policy),
        "ABH_METRICS_PORT": str(port),
        "ABH_GAUGE_INTERVAL": "0.5",
    }
    client = dev_env.client
    async with worker_process(env):
        handle = await open_case(client, ticket(ticket_id, "P1"), task_queue=task_queue)
        await status_when(handle, lambda s: s.escalated and s.sla_breached, timeout=60)
        await signal_action(client, ticket_id, "resolved", {"summary": "rolled back", "by": "alice"})
        await status_when(handle, lambda s: s.follow_up_sent_at is not None, timeout=60)
        await signal_action(client, ticket_id, "customer_confirmed", {})
        outcome = await handle_for(client, ticket_id).result()
        assert outcome.close_reason is CloseReason.CONFIRMED
        assert outcome.time_to_resolution is not None

        async def scraped_after_close():  # type: ignore[no-untyped-def]
            answer = await get(f"{metrics}/metrics")
            samples = parse_samples(answer.text) if answer and answer.status_code == 200 else {}
            return samples if value(samples, "abh_cases_closed_total", task_queue=task_queue) else None

        samples = await until(scraped_after_close, "the close counted")
        ours = {"task_queue": task_queue, "workflow_type": "CaseWorkflow", "priority": "P1"}
        assert value(samples, "abh_cases_opened_total", **ours) == 1
        assert value(samples, "abh_cases_closed_total", **ours, close_reason="confirmed") == 1
        assert value(samples, "abh_escalations_total", **ours, level="tech_lead") == 1
        assert value(samples, "abh_breaches_total", **ours, milestone=Milestone.FIRST_RESPONSE.value) == 1
        assert value(samples, "abh_time_to_engagement_seconds_count", **ours) == 1
        assert value(samples, "abh_time_to_engagement_seconds_sum", **ours) == 0  # a P1 engages at opening
        assert value(samples, "abh_time_to_resolution_seconds_count", **ours) == 1
        resolution = value(samples, "abh_time_to_resolution_seconds_sum", **ours)
        assert resolution is not None
        assert abs(resolution - outcome.time_to_resolution.total_seconds()) < 1
        assert value(samples, "abh_time_to_resolution_seconds_bucket", **ours, le="60") == 1

        # The SDK's own runtime metrics, from the same port.
        assert value(
            samples, "temporal_workflow_completed", task_queue=task_queue, workflow_type="CaseWorkflow"
        )
        assert value(samples, "temporal_num_pollers", task_queue=task_queue, poller_type="workflow_task")

        # The gauges read what PostgreSQL and visibility hold (other tests' rows included: they are global).
        async def gauges_current():  # type: ignore[no-untyped-def]
            answer = await get(f"{metrics}/metrics")
            assert answer is not None
            now = parse_samples(answer.text)
            outbox = {s: value(now, "abh_outbox_rows", state=s) for s in (await rows_by_state(pool))}
            needing = (await client.count_workflows(NEEDING_ATTENTION_QUERY)).count
            same = outbox == await rows_by_state(pool)
            return same and value(now, "abh_cases_needing_attention") == needing

        await until(gauges_current, "the gauges equal to PostgreSQL and visibility")

        healthz, readyz = await get(f"{metrics}/healthz"), await get(f"{metrics}/readyz")
        assert healthz is not None and healthz.status_code == 200
        assert readyz is not None and readyz.status_code == 200
        assert readyz.json() == {"status": "ok", "worker": "ok", "temporal": "ok", "postgresql": "ok"}

        # Every metric the Grafana dashboard queries is one the worker exports.
        queried = dashboard_metrics()
        assert {"abh_outbox_rows", "temporal_local_activity_execution_latency_bucket"} <= queried
        for name in queried:
            assert any(n == name for n, _ in samples), f"the dashboard queries {name}, not exported"


def dashboard_metrics() -> set[str]:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "dashboards" / "abh-cases.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    return {name for e in exprs for name in re.findall(r"\b(?:abh|temporal)_[a-z_]+", e)}


async def test_a_worker_on_a_new_database_reads_its_gauges_only_once_the_tables_are_there(
    dev_env: WorkflowEnvironment, new_database_url: str, task_queue: str, tmp_path: Path
) -> None:
    """The first `make run` on a new machine: the gauges start after the migrations, so the worker's
    first refresh finds the outbox table instead of logging that it is missing."""
    port, logs = free_port(), tmp_path / "worker.log"
    env = {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DATABASE_URL": new_database_url,
        "ABH_TASK_QUEUE": task_queue,
        "ABH_METRICS_PORT": str(port),
        "ABH_GAUGE_INTERVAL": "0.2",
    }
    async with worker_process(env, output=logs):

        async def gauges_read():  # type: ignore[no-untyped-def]
            answer = await get(f"http://127.0.0.1:{port}/metrics")
            samples = parse_samples(answer.text) if answer and answer.status_code == 200 else {}
            return value(samples, "abh_cases_needing_attention") is not None

        await until(gauges_read, "the gauges read", timeout=60)
    lines = logs.read_text()
    assert "worker running" in lines
    assert "gauges not refreshed" not in lines
