"""A worker SIGKILLed while its chat webhook call is held open by the provider: the post may have landed,
and only a provider that drops a repeated Idempotency-Key makes sending it again harmless. So by default
(Slack's incoming webhooks ignore the key) the row is left `unknown` for an operator after exactly one
post, and with ABH_CHAT_IDEMPOTENT=true the next worker posts it again under the same key and it is sent.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.test_delivery import _spawn, _until_disconnected, batch_worker, start
from tests.test_senders import Receiver, loopback_provider, notification, outcomes, row, webhook_env
from workflows.policy import Role

# Each wait is far longer than the step needs on a loaded machine, and short enough to fail fast.
REACH_PROVIDER = 20.0
WORKER_EXIT = 10.0
SETTLE = 20.0


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with loopback_provider() as rec:
        yield rec


@pytest.mark.parametrize(
    ("chat_idempotent", "posts", "state", "log", "delivered"),
    [
        (None, 1, "unknown", ["abandoned"], 0),
        ("true", 2, "sent", ["replay", "sent"], 1),
    ],
    ids=["default", "idempotent"],
)
async def test_a_worker_killed_mid_chat_post(
    dev_env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    database_url: str,
    task_queue: str,
    ticket_id: str,
    receiver: Receiver,
    tmp_path: Path,
    chat_idempotent: str | None,
    posts: int,
    state: str,
    log: list[str],
    delivered: int,
) -> None:
    notify_queue, app = f"{task_queue}-notify", f"notifier-{task_queue}"
    env = (
        dict(os.environ)
        | webhook_env(receiver)
        | {
            "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "TEMPORAL_NAMESPACE": dev_env.client.namespace,
            "DATABASE_URL": database_url + ("&" if "?" in database_url else "?") + f"application_name={app}",
            "ABH_NOTIFY_QUEUE": notify_queue,
        }
    )
    env.pop("ABH_CHAT_IDEMPOTENT")
    if chat_idempotent is not None:
        env["ABH_CHAT_IDEMPOTENT"] = chat_idempotent
    wf = f"case-{ticket_id}"
    n = notification(wf, 1, "chat", kind="escalation", role=Role.TEAM, recipient="#support")
    receiver.hold_at = 1
    worker_log = tmp_path / "worker.log"

    first = await _spawn(env, worker_log)
    second: asyncio.subprocess.Process | None = None
    try:
        async with batch_worker(dev_env, task_queue):
            handle = await start(dev_env, task_queue, wf, [n], notify_queue)
            reached = await asyncio.to_thread(receiver.held.wait, REACH_PROVIDER)
            assert reached, f"the chat post never reached the provider in {REACH_PROVIDER}s; see {worker_log}"
            first.kill()
            code = await asyncio.wait_for(first.wait(), WORKER_EXIT)
            assert code == -9, f"the first worker exited with {code}, not SIGKILL"
            await _until_disconnected(pool, app)
            assert (await row(pool, n.dedupe_key))["state"] == "sending"
            receiver.release.set()
            second = await _spawn(env, worker_log)
            try:
                result = await asyncio.wait_for(handle.result(), SETTLE)
            except TimeoutError:
                pytest.fail(f"the workflow did not finish within {SETTLE}s of the restart; see {worker_log}")
    finally:
        for proc in (first, second):
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()

    assert result == delivered
    assert [h.key for h in receiver.hits] == [n.dedupe_key] * posts
    assert list(receiver.delivered) == [n.dedupe_key]
    r = await row(pool, n.dedupe_key)
    assert (r["state"], r["attempts"], outcomes(r)) == (state, posts, log)
    if state == "unknown":
        assert r["last_error"].startswith("in doubt: attempt ")
