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
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
import structlog
import uvicorn
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import (
    RestrictedWorkflowAccessError,
    SandboxedWorkflowRunner,
    SandboxRestrictions,
)

from activities.case_store import CaseStore
from activities.case_writer import CaseWriter
from activities.database import connect, migrate
from activities.notifications import Notifier, Sender, log_sink
from activities.policy_source import PolicySource
from activities.standup import StandupActivities
from api.serve import DEFAULT_HOST, DEFAULT_PORT, server, with_development_token
from console.gauges import keep_current
from stack import logs
from stack.client import exit_process
from stack.codec_server import codec_app_of
from stack.embedded import running_stack
from stack.health import health_app
from stack.schedules import ensure_outbox_relay_schedule, ensure_standup_schedule
from stack.sender_config import SenderSettings
from stack.serving import serving
from stack.settings import Settings
from stack.telemetry import Telemetry, telemetry
from workflows.case import CaseWorkflow
from workflows.outbox_relay import OutboxRelayWorkflow
from workflows.policy import Policy, load_policy
from workflows.standup import StandupDigestWorkflow

log = structlog.get_logger("worker")

# What the strict sandbox shares with the host rather than importing into each run: the deterministic
# libraries the models use, and the models and the policy, which the data converter and the activities
# build outside the sandbox, and the activities the workflows call.
LIBRARIES = ("pydantic", "pydantic_core", "email_validator", "idna", "annotated_types", "opentelemetry")
SHARED = ("workflows.models", "workflows.policy", "activities")
# On a strict worker, a restricted call fails the workflow at once, with the sandbox's message, rather
# than its task again and again until a test times out.
STRICT_FAILURES: tuple[type[BaseException], ...] = (RestrictedWorkflowAccessError,)
# How long a stopping worker lets activities in flight finish (they heartbeat) before cancelling them.
SHUTDOWN_GRACE = timedelta(seconds=20)


def pin_zone_rules() -> None:
    """Read time zones from the pinned tzdata package, not the host's files, so every worker computes
    the same due instants and replays agree across machines."""
    zoneinfo.reset_tzpath(to=[])


def workflow_runner(*, strict: bool = False) -> WorkflowRunner:
    """How cases run: unsandboxed on workers, in the strict sandbox in the tests and the replay tests.

    `strict` imports the workflows' own modules into the sandbox, so a call they make that it restricts
    (the wall clock, randomness, the standard library's file and network calls) fails the workflow task
    (`build_worker` fails the case). The tests run their cases this way and replay every recorded history
    both ways. Workers run unsandboxed: a sandbox that passed the project through, as they used to, no
    longer checked its code, and still cost a fifth of the worker's CPU a case (docs/performance.md)."""
    if not strict:
        return UnsandboxedWorkflowRunner()
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(*LIBRARIES, *SHARED)
    )


@dataclass(frozen=True)
class Tuning:
    """How much one worker takes on at once (settings `ABH_MAX_*`)."""

    max_cached_workflows: int = 1000
    max_concurrent_workflow_tasks: int = 100
    max_concurrent_activities: int = 100
    max_concurrent_local_activities: int = 100

    @classmethod
    def of(cls, settings: Settings) -> Tuning:
        return cls(
            max_cached_workflows=settings.max_cached_workflows,
            max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
            max_concurrent_activities=settings.max_concurrent_activities,
            max_concurrent_local_activities=settings.max_concurrent_local_activities,
        )


def build_worker(
    client: Client,
    pool: asyncpg.Pool,
    *,
    task_queue: str,
    policy: PolicySource,
    sender: Sender = log_sink,
    tuning: Tuning = Tuning(),
    shutdown_grace: timedelta = SHUTDOWN_GRACE,
    strict_sandbox: bool = False,
) -> Worker:
    """The worker for one task queue; tests build theirs here too, with their own queue, most of them
    in the strict sandbox (`workflow_runner`), so every path they drive checks the workflows' own code."""
    store = CaseStore(pool)
    notifier = Notifier(pool, sender)
    writer = CaseWriter(store, notifier)
    standup = StandupActivities(pool)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[CaseWorkflow, StandupDigestWorkflow, OutboxRelayWorkflow],
        activities=[
            policy.current_policy,
            writer.record_and_send,
            store.record_changes,
            notifier.deliver,
            notifier.relay_outbox,
            standup.collect_standup_digest,
            # Cases opened before their journal was written beside the lifecycle still call these.
            store.record_case,
            store.open_tech_lead_ticket,
            notifier.send_notifications,
        ],
        graceful_shutdown_timeout=shutdown_grace,
        workflow_runner=workflow_runner(strict=strict_sandbox),
        max_cached_workflows=tuning.max_cached_workflows,
        max_concurrent_workflow_tasks=tuning.max_concurrent_workflow_tasks,
        max_concurrent_activities=tuning.max_concurrent_activities,
        max_concurrent_local_activities=tuning.max_concurrent_local_activities,
        workflow_failure_exception_types=STRICT_FAILURES if strict_sandbox else (),
    )


async def serve(settings: Settings, *, demo: bool = False, policy: Policy | None = None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    sre = telemetry(settings)
    polling = asyncio.Event()
    async with running_stack(settings, sre) as stack, AsyncExitStack() as serving_too:
        pool = await connect(stack.database_url, max_size=settings.database_pool_size)
        senders = SenderSettings.of(settings).build()
        try:
            await serve_sre_tools(serving_too, settings, sre, stack.client, pool, polling)
            await migrate(pool)
            keep_gauges_current(serving_too, settings, sre, stack.client, pool)
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
                stack.client,
                pool,
                task_queue=settings.task_queue,
                policy=source,
                sender=senders,
                tuning=Tuning.of(settings),
                shutdown_grace=timedelta(seconds=settings.shutdown_grace),
            )
            async with worker:
                polling.set()
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
                polling.clear()
                log.info("stopping worker")
                if demo_task:
                    demo_task.cancel()
                if api and api_task:
                    api.should_exit = True
                    await api_task
        finally:
            await serving_too.aclose()
            await senders.aclose()
            await pool.close()
            sre.shutdown()
    log.info("worker stopped")


async def serve_sre_tools(
    stack: AsyncExitStack,
    settings: Settings,
    sre: Telemetry,
    client: Client,
    pool: asyncpg.Pool,
    polling: asyncio.Event,
) -> None:
    """The metrics and health port and, for the embedded stack with payload keys, the codec server its
    Web UI decodes with; served before the migrations, which may wait for another worker's."""
    if settings.metrics_port is not None and sre.runtime and sre.sdk_metrics_url:
        app = health_app(client, pool, sre.sdk_metrics_url, polling)
        await stack.enter_async_context(serving(app, settings.metrics_host, settings.metrics_port))
        log.info("metrics and health", port=settings.metrics_port, host=settings.metrics_host)
    if settings.embedded_temporal and settings.payload_keys:
        app = codec_app_of(settings)
        await stack.enter_async_context(serving(app, settings.codec_host, settings.codec_port))
        log.info("codec server for the Web UI", endpoint=settings.codec_endpoint)


def keep_gauges_current(
    stack: AsyncExitStack, settings: Settings, sre: Telemetry, client: Client, pool: asyncpg.Pool
) -> None:
    """The gauges on the metrics port, refreshed from PostgreSQL and visibility once the migrations
    have made the tables they read."""
    if settings.metrics_port is not None and sre.runtime and sre.sdk_metrics_url:
        gauges = asyncio.create_task(
            keep_current(sre.runtime.metric_meter, pool, client, settings.gauge_interval)
        )
        stack.callback(gauges.cancel)


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
    exit_process(0)


if __name__ == "__main__":
    main()
