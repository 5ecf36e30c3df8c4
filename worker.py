"""Run the case worker: workflows and activities on the `abh-cases` task queue.

With no TEMPORAL_ADDRESS / DATABASE_URL it starts the embedded dev server (Web UI on :8233) and
PostgreSQL under ./.data first. `--demo` also opens the demo cases. Stops cleanly on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import zoneinfo
from datetime import timedelta

import asyncpg
import structlog
import uvicorn
from temporalio.client import Client
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.case_store import CaseStore
from activities.database import connect, migrate
from activities.notifications import Notifier, Sender, log_sink
from activities.policy_source import PolicySource
from activities.standup import StandupActivities
from api.serve import DEFAULT_HOST, DEFAULT_PORT, server, with_development_token
from stack import logs
from stack.embedded import running_stack
from stack.schedules import ensure_outbox_relay_schedule, ensure_standup_schedule
from stack.sender_config import SenderSettings
from stack.settings import Settings
from workflows.case import CaseWorkflow
from workflows.outbox_relay import OutboxRelayWorkflow
from workflows.policy import Policy, load_policy
from workflows.standup import StandupDigestWorkflow

log = structlog.get_logger("worker")

# Deterministic libraries the workflow's models use, loaded once rather than per workflow run.
PASSTHROUGH = ("pydantic", "pydantic_core", "email_validator", "idna", "annotated_types")


def pin_zone_rules() -> None:
    """Read time zones from the pinned tzdata package, not the host's files, so every worker computes
    the same due instants and replays agree across machines."""
    zoneinfo.reset_tzpath(to=[])


def workflow_runner() -> SandboxedWorkflowRunner:
    """The sandbox every worker and the replay tests use, so a replay runs exactly what workers run."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*PASSTHROUGH)
    )


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    *,
    task_queue: str,
    policy: PolicySource,
    sender: Sender = log_sink,
) -> Worker:
    """The worker for one task queue; tests build theirs here too, with their own queue."""
    store = CaseStore(pool)
    notifier = Notifier(pool, sender)
    standup = StandupActivities(pool)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CaseWorkflow, StandupDigestWorkflow, OutboxRelayWorkflow],
        activities=[
            policy.current_policy,
            store.record_changes,
            notifier.deliver,
            notifier.relay_outbox,
            standup.collect_standup_digest,
            # Cases opened before their journal was written beside the lifecycle still call these.
            store.record_case,
            store.open_tech_lead_ticket,
            notifier.send_notifications,
        ],
        graceful_shutdown_timeout=timedelta(seconds=10),
        workflow_runner=workflow_runner(),
    )


async def serve(settings: Settings, *, demo: bool = False, policy: Policy | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with running_stack(settings) as stack:
        pool = await connect(stack.database_url)
        senders = SenderSettings.of(settings).build()
        try:
            await migrate(pool)
            if demo:
                from stack.demo import demo_policy, run_demo

                policy = policy or demo_policy()
            source = PolicySource(settings.policy_file, policy)
            if settings.embedded_temporal:
                await ensure_standup_schedule(
                    stack.client, policy or load_policy(settings.policy_file), settings.task_queue
                )
            await ensure_outbox_relay_schedule(stack.client, settings.task_queue)
            worker = build_worker(
                stack.client, pool, task_queue=settings.task_queue, policy=source, sender=senders
            )
            async with worker:
                log.info(
                    "worker running",
                    task_queue=settings.task_queue,
                    namespace=stack.client.namespace,
                    senders=senders.configured(),
                    web_ui=settings.ui_url if settings.embedded_temporal else None,
                )
                demo_task = asyncio.create_task(run_demo(stack.client, settings)) if demo else None
                api = _api_beside(settings, stack.client, pool) if demo else None
                api_task = asyncio.create_task(api.serve()) if api else None
                await stop.wait()
                log.info("stopping worker")
                if demo_task:
                    demo_task.cancel()
                if api and api_task:
                    api.should_exit = True
                    await api_task
        finally:
            await senders.aclose()
            await pool.close()
    log.info("worker stopped")


def _api_beside(settings: Settings, client: Client, pool: asyncpg.Pool) -> uvicorn.Server:
    """`make run` serves the HTTP API too, with a development token when none is configured."""
    settings, token = with_development_token(settings)
    api = server(settings, client=client, pool=pool)
    url = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"
    log.info("HTTP API running", url=url, docs=f"{url}/docs", development_token=token)
    if token:
        print(f"\nHTTP API {url} (docs {url}/docs); development token, every scope:\n  {token}\n", flush=True)
    return api


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo", action="store_true", help="also open and drive the demo cases")
    parser.add_argument("--json-logs", action="store_true", default=None, help="JSON logs even on a terminal")
    args = parser.parse_args()
    pin_zone_rules()
    logs.configure(json=args.json_logs)
    try:
        settings = Settings.from_env()
    except ValueError as err:
        sys.exit(f"worker not started: {err}")
    asyncio.run(serve(settings, demo=args.demo))


if __name__ == "__main__":
    main()
