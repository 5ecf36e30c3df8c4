"""The HTTP API as integrators meet it: `python starter.py serve` on loopback, a `worker.py` beside it,
both separate processes on the test's dev server and PostgreSQL; or the app in the test's own process,
on a client and pool the test chooses (one whose PostgreSQL is gone, say)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client

from api.app import create_app
from stack.settings import Settings
from tests.worker_process import drop_relay_schedule

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = Path(__file__).resolve().parent / "webhooks"
TOKENS = {"intake": "tok-intake", "act": "tok-act", "read": "tok-read", "all": "tok-all"}
ZENDESK_SECRET = "zendesk-signing-secret"
JIRA_SECRET = "jira-webhook-secret"


IN_PROCESS_TOKEN = "in-process-token"
IN_PROCESS_TOKENS = f"intake={IN_PROCESS_TOKEN},act={IN_PROCESS_TOKEN},read={IN_PROCESS_TOKEN}"


def in_process(settings: Settings, client: Client, pool: asyncpg.Pool) -> httpx.AsyncClient:
    """An HTTP client of the app run in this process on `client` and `pool`, with every scope."""
    app = create_app(settings)
    app.state.client, app.state.pool = client, pool
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    headers = {"Authorization": f"Bearer {IN_PROCESS_TOKEN}"}
    return httpx.AsyncClient(transport=transport, base_url="http://api", headers=headers, timeout=60)


def api_tokens() -> str:
    pairs = [f"{scope}={token}" for scope, token in TOKENS.items() if scope != "all"]
    pairs += [f"{scope}={TOKENS['all']}" for scope in ("intake", "act", "read")]
    return ",".join(pairs)


@dataclass
class Api:
    url: str
    task_queue: str

    def headers(self, scope: str = "all") -> dict[str, str]:
        return {"Authorization": f"Bearer {TOKENS[scope]}"}


@contextmanager
def _process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=out)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()


def api_env(temporal_address: str, database_url: str, task_queue: str, **more: str) -> dict[str, str]:
    """The test's environment without its own ABH/Temporal/PostgreSQL settings, and the API's."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("ABH_", "TEMPORAL_", "DATABASE_", "SMTP_"))
    }
    return env | {
        "TEMPORAL_ADDRESS": temporal_address,
        "DATABASE_URL": database_url,
        "ABH_TASK_QUEUE": task_queue,
        "ABH_API_TOKENS": api_tokens(),
        "ABH_ZENDESK_SECRET": ZENDESK_SECRET,
        "ABH_JIRA_SECRET": JIRA_SECRET,
        "ABH_WEBHOOK_REPLAY_WINDOW": "300",
        **more,
    }


@contextmanager
def api_process(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`starter.py serve` on `port`, once it answers /healthz; stopped on exit."""
    with _process(["starter.py", "serve", "--port", str(port)], env, log) as api:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if api.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield api


@contextmanager
def served(temporal_address: str, database_url: str, task_queue: str, port: int, logs: Path) -> Iterator[Api]:
    """The API and a worker, both stopped on exit, and the worker's relay schedule deleted after them;
    waits until the API answers /healthz."""
    env = api_env(temporal_address, database_url, task_queue)
    try:
        with ExitStack() as stack:
            stack.enter_context(_process(["worker.py", "--json-logs"], env, logs / "worker.log"))
            stack.enter_context(api_process(env, port, logs / "api.log"))
            yield Api(url=f"http://127.0.0.1:{port}", task_queue=task_queue)
    finally:
        with ThreadPoolExecutor(1) as thread:  # callers are synchronous, perhaps inside an event loop
            thread.submit(asyncio.run, drop_relay_schedule(temporal_address)).result()


def sample(name: str, **fill: Any) -> bytes:
    """A sample payload from tests/webhooks/, its `{{...}}` markers filled."""
    text = (SAMPLES / name).read_text(encoding="utf-8")
    for key, value in fill.items():
        text = text.replace("{{" + key + "}}", str(value))
    return json.dumps(json.loads(text)).encode()


def zendesk_headers(body: bytes, secret: str = ZENDESK_SECRET, at: datetime | None = None) -> dict[str, str]:
    stamp = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    digest = hmac.new(secret.encode(), stamp.encode() + body, hashlib.sha256).digest()
    return {
        "Content-Type": "application/json",
        "X-Zendesk-Webhook-Signature": base64.b64encode(digest).decode(),
        "X-Zendesk-Webhook-Signature-Timestamp": stamp,
    }


def jira_headers(body: bytes, secret: str = JIRA_SECRET, delivery: str | None = None) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"Content-Type": "application/json", "X-Hub-Signature": f"sha256={digest}"}
    if delivery:
        headers["X-Atlassian-Webhook-Identifier"] = delivery
    return headers


def now_ms() -> int:
    return int(time.time() * 1000)


async def phase_is(
    http: httpx.AsyncClient,
    ticket_id: str,
    phase: str,
    wait: float = 30,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The case once it is in `phase`, read over HTTP (the client's headers, or `headers`, must allow
    `read`)."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        answer = await http.get(f"/cases/{ticket_id}", headers=headers)
        if answer.status_code == 200 and answer.json()["phase"] == phase:
            return dict(answer.json())
        assert asyncio.get_running_loop().time() < deadline, f"never {phase}: {answer.text[:500]}"
        await asyncio.sleep(0.2)
