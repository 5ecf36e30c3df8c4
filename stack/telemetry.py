"""What the worker tells an SRE's tools: the SDK's runtime metrics with the case metrics beside them
(Prometheus), and traces of every client call, workflow and activity (OpenTelemetry, OTLP over HTTP).

The SDK's Prometheus endpoint binds a loopback port of its own; `stack.health` serves it on
`ABH_METRICS_PORT` together with the health checks, so one port answers a scraper and a prober.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME as SERVICE_KEY
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from stack.settings import Settings
from workflows import case_metrics

SERVICE_NAME = "abh-worker"


@dataclass
class Telemetry:
    """The runtime every client of the process uses, and the interceptors it gets."""

    runtime: Runtime | None = None
    sdk_metrics_url: str | None = None
    interceptors: Sequence[Interceptor] = field(default_factory=tuple)
    _flush: list[TracerProvider] = field(default_factory=list)

    def shutdown(self) -> None:
        """Send the spans still buffered."""
        for provider in self._flush:
            provider.shutdown()


def loopback_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def telemetry(settings: Settings) -> Telemetry:
    """Prometheus when `ABH_METRICS_PORT` is set, tracing when `OTEL_EXPORTER_OTLP_ENDPOINT` is."""
    found = Telemetry()
    if settings.metrics_port is not None:
        bind = f"127.0.0.1:{loopback_port()}"
        bounds = [float(b) for b in case_metrics.DURATION_BUCKETS]
        buckets = {
            name: bounds for name in (case_metrics.TIME_TO_ENGAGEMENT, case_metrics.TIME_TO_RESOLUTION)
        }
        prometheus = PrometheusConfig(bind_address=bind, histogram_bucket_overrides=buckets)
        found.runtime = Runtime(telemetry=TelemetryConfig(metrics=prometheus))
        found.sdk_metrics_url = f"http://{bind}/metrics"
    if settings.otlp_endpoint:
        found.interceptors, provider = tracing(settings.otlp_endpoint)
        found._flush.append(provider)
    return found


def tracing(endpoint: str) -> tuple[list[Interceptor], TracerProvider]:
    """The SDK's tracing interceptor over a tracer provider that exports to `endpoint` (OTLP/HTTP)."""
    provider = TracerProvider(resource=Resource.create({SERVICE_KEY: SERVICE_NAME}))
    provider.add_span_processor(
        BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint.rstrip('/')}/v1/traces"))
    )
    # Cases are opened by upstream systems that may not trace: their workflows get spans all the same.
    interceptor = TracingInterceptor(provider.get_tracer("abh"), always_create_workflow_spans=True)
    return [interceptor], provider
