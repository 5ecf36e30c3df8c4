"""Tracing: with OTEL_EXPORTER_OTLP_ENDPOINT set, the worker exports spans of each case's workflow and
activities over OTLP/HTTP, to a collector here played by a loopback receiver that decodes them."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from temporalio.testing import WorkflowEnvironment

from stack.cases import open_case
from stack.serving import serving
from stack.telemetry import SERVICE_NAME
from tests.cases import free_port, status_when, ticket
from tests.worker_process import worker_process
from workflows.models import Phase


class Collector:
    def __init__(self) -> None:
        self.requests: list[ExportTraceServiceRequest] = []

    async def traces(self, request: web.Request) -> web.Response:
        self.requests.append(ExportTraceServiceRequest.FromString(await request.read()))
        answer = ExportTraceServiceResponse().SerializeToString()
        return web.Response(body=answer, content_type="application/x-protobuf")

    def spans(self) -> dict[str, set[str]]:
        """{span name: trace ids} of every span received from the worker's service."""
        found: dict[str, set[str]] = {}
        for request in self.requests:
            for resource_spans in request.resource_spans:
                attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
                if attributes.get("service.name") != SERVICE_NAME:
                    continue
                for scope in resource_spans.scope_spans:
                    for span in scope.spans:
                        found.setdefault(span.name, set()).add(span.trace_id.hex())
        return found


@pytest_asyncio.fixture
async def collector() -> AsyncIterator[tuple[Collector, str]]:
    found, port = Collector(), free_port()
    app = web.Application()
    app.router.add_post("/v1/traces", found.traces)
    async with serving(app, "127.0.0.1", port):
        yield found, f"http://127.0.0.1:{port}"


async def test_the_worker_exports_spans_of_a_case(
    dev_env: WorkflowEnvironment,
    database_url: str,
    task_queue: str,
    ticket_id: str,
    collector: tuple[Collector, str],
) -> None:
    received, endpoint = collector
    env = {
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "DATABASE_URL": database_url,
        "ABH_TASK_QUEUE": task_queue,
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
    }
    async with worker_process(env):
        handle = await open_case(dev_env.client, ticket(ticket_id, "P1"), task_queue=task_queue)
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED, timeout=60)
        await handle.signal("add_note", {"text": "on the bridge"})
        await status_when(handle, lambda s: s.timeline[-1].detail == "on the bridge", timeout=60)
    # Stopped: the worker sent what it had buffered.
    spans = received.spans()
    assert {"RunWorkflow:CaseWorkflow", "HandleSignal:add_note", "StartActivity:record_and_send"} <= set(
        spans
    )
    assert "RunActivity:record_and_send" in spans
    # Each activity runs in the trace of the workflow step that scheduled it.
    for activity in ("current_policy", "record_and_send"):
        assert spans[f"RunActivity:{activity}"] == spans[f"StartActivity:{activity}"]
