"""The Temporal client, always with the pydantic data converter so models cross the wire intact (and
encrypted, with payload keys)."""

from __future__ import annotations

import atexit
import os
import sys
from typing import NoReturn

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError

from stack.encryption import data_converter
from stack.settings import Settings
from stack.telemetry import Telemetry
from workflows.search import ALL_KEYS


async def connect(settings: Settings, telemetry: Telemetry | None = None) -> Client:
    """Connect with Temporal's environment configuration (TEMPORAL_ADDRESS, _NAMESPACE, _API_KEY, TLS),
    payloads encrypted when `ABH_PAYLOAD_KEYS` is set, on the process's telemetry runtime."""
    telemetry = telemetry or Telemetry()
    config = settings.temporal.to_client_connect_config()
    config.setdefault("target_host", "localhost:7233")
    return await Client.connect(
        **config,
        data_converter=data_converter(settings.payload_keys),
        runtime=telemetry.runtime,
        interceptors=telemetry.interceptors,
    )


async def register_search_attributes(client: Client) -> list[str]:
    """Add the case search attributes the namespace lacks; returns the names added.

    Self-hosted clusters and the test servers accept this; Temporal Cloud manages them in its console.
    """
    wanted = {k.name: IndexedValueType.ValueType(int(k.indexed_value_type)) for k in ALL_KEYS}
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        missing = {n: t for n, t in wanted.items() if n not in listed.custom_attributes}
    except RPCError:
        missing = wanted
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)


def exit_process(code: int) -> NoReturn:
    """End a process that used a Temporal client: its clean-up (`atexit`: the embedded PostgreSQL's stop,
    logging's flush) first, then out without the interpreter's finalization, where the SDK's runtime
    threads can abort it (exit 134 after a command that succeeded; temporalio/sdk-python#300)."""
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
