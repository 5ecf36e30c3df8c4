"""Payload encryption on the dev server: Temporal holds only ciphertext (the plain CLI shows no subject,
e-mail or summary), the codec server gives the CLI the case in clear, and a new first key keeps older
cases readable and running."""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import Iterator

import asyncpg
import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.policy_source import PolicySource
from stack.cases import handle_for, open_case, update_action
from stack.codec_server import codec_app
from stack.embedded import bundled_binary
from stack.encryption import ENCODING, KEY_ID, EncryptionCodec, data_converter, new_key, parse_keys
from stack.serving import serving
from tests.cases import free_port, round_the_clock_policy, status_when, ticket
from tests.test_visibility import customer
from worker import build_worker
from workflows.models import CloseReason, Phase

SUBJECT = "Payroll export leaks salaries"
EMAIL = "ops@quuxcorp.example"
NAME = "Quux Corporation"
SECRETS = (SUBJECT, EMAIL, NAME)
TOKEN = "codec-test-token"


def sensitive_ticket(ticket_id: str):  # type: ignore[no-untyped-def]
    who = customer("quux", NAME).model_copy(update={"contact_email": EMAIL})
    return ticket(ticket_id, "P2", customer=who, subject=SUBJECT)


async def encrypted_client(env: WorkflowEnvironment, keys: str) -> Client:
    target = env.client.service_client.config.target_host
    return await Client.connect(target, data_converter=data_converter(parse_keys(keys)))


async def cli_show(env: WorkflowEnvironment, workflow_id: str, *extra: str) -> str:
    """What `temporal workflow show` lets a reader see: the detailed text output (payloads shown as
    JSON), and the JSON output with every payload's data base64-decoded."""
    target = env.client.service_client.config.target_host
    shown = []
    for output in ("--detailed", "--output=json"):
        cli = await asyncio.create_subprocess_exec(
            bundled_binary("temporal"), "workflow", "show", "--workflow-id", workflow_id,
            "--address", target, output, *extra,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        stdout, _ = await cli.communicate()
        assert cli.returncode == 0, stdout.decode()
        shown.append(stdout.decode())
    shown.extend(
        base64.b64decode(d).decode(errors="replace") for d in re.findall(r'"data": "([^"]*)"', shown[1])
    )
    return "\n".join(shown)


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every payload a history event holds, search attributes aside (they are not payloads' business)."""
    for field, value in message.ListFields():
        if field.name in {"search_attributes", "marker_recorded_event_attributes"}:
            continue
        if field.message_type is None:
            continue
        if isinstance(value, Message):
            items = [value]
        else:  # a repeated field, or a map of messages
            items = list(value.values()) if field.message_type.GetOptions().map_entry else list(value)
        for item in items:
            if isinstance(item, Payload):
                yield item
            elif isinstance(item, Message):
                yield from payloads_in(item)


async def key_ids(env: WorkflowEnvironment, workflow_id: str) -> set[str]:
    """The key ids the case's history names, read without any key; every payload must name one."""
    found = set()
    async for event in env.client.get_workflow_handle(workflow_id).fetch_history_events():
        for payload in payloads_in(event):
            assert payload.metadata["encoding"] == ENCODING, f"{event.event_type}: a payload in clear"
            found.add(payload.metadata[KEY_ID].decode())
    return found


async def test_temporal_holds_ciphertext_and_the_codec_server_reads_it(
    dev_env: WorkflowEnvironment, pool: asyncpg.Pool, task_queue: str, ticket_id: str
) -> None:
    old, new = new_key(), new_key()
    client = await encrypted_client(dev_env, f"k1={old}")
    source = PolicySource(policy=round_the_clock_policy())
    async with build_worker(client, pool, task_queue=task_queue, policy=source):
        handle = await open_case(client, sensitive_ticket(ticket_id), task_queue=task_queue)
        await status_when(handle, lambda s: s.phase is Phase.ENGAGED)
        await update_action(client, ticket_id, "add_note", {"text": f"called {EMAIL}", "by": "alice"})

    plain = await cli_show(dev_env, handle.id)
    assert "WorkflowExecutionStarted" in plain
    for secret in SECRETS:
        assert secret not in plain
    # The same ticket unencrypted (started, never run) shows all of it: the check above can fail.
    in_clear = await open_case(dev_env.client, sensitive_ticket(f"{ticket_id}-clear"), task_queue="nobody")
    shown = await cli_show(dev_env, in_clear.id)
    assert all(secret in shown for secret in SECRETS)
    await in_clear.terminate("seen")
    assert await key_ids(dev_env, handle.id) == {"k1"}

    # A new first key: the case goes on, what it writes now names k2, what it wrote before still reads.
    rotated = await encrypted_client(dev_env, f"k2={new},k1={old}")
    async with build_worker(rotated, pool, task_queue=task_queue, policy=source):
        status = await update_action(rotated, ticket_id, "customer_contacted", {"channel": "email"})
        assert status.ticket.subject == SUBJECT
        assert any(EMAIL in (e.detail or "") for e in status.timeline)
        await update_action(rotated, ticket_id, "cancel", {"reason": "duplicate of T-1"})
        outcome = await handle_for(rotated, ticket_id).result()
    assert outcome.close_reason is CloseReason.CANCELLED
    assert await key_ids(dev_env, handle.id) == {"k1", "k2"}

    port = free_port()
    codec = EncryptionCodec(parse_keys(f"k2={new},k1={old}"))
    async with serving(codec_app(codec, token=TOKEN, origins=[]), "127.0.0.1", port):
        endpoint = f"http://127.0.0.1:{port}"
        decoded = await cli_show(
            dev_env, handle.id, "--codec-endpoint", endpoint, "--codec-auth", f"Bearer {TOKEN}"
        )
        for secret in SECRETS:
            assert secret in decoded
        assert "P2 - Quux Corporation - Payroll export leaks salaries" in decoded  # the summary


async def test_a_payload_under_a_key_no_longer_given_names_that_key() -> None:
    sealed = EncryptionCodec(parse_keys(f"gone={new_key()}")).encrypt(Payload(data=b'"secret"'))
    with pytest.raises(ValueError, match="'gone', which is not in ABH_PAYLOAD_KEYS"):
        EncryptionCodec(parse_keys(f"k1={new_key()}")).decrypt(sealed)
    assert b"secret" not in sealed.data


def test_bad_keys_are_refused_naming_the_entry() -> None:
    short = base64.b64encode(b"x" * 16).decode()
    for text, message in (
        (f"k1={short}", "entry 1: the key is 16 bytes, an AES-256 key is 32"),
        ("k1=not base64!", "entry 1: the key is not valid base64"),
        (f"k1={new_key()},k1={new_key()}", "entry 2: its id is given twice"),
        (new_key(), "entry 1: expected id=base64key"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_keys(text)


def test_a_key_written_the_wrong_way_round_is_not_echoed() -> None:
    """`key=id` puts the key where the id goes: the message must not carry it to the logs."""
    key = next(k for k in iter(new_key, None) if "+" not in k and "/" not in k)
    with pytest.raises(ValueError, match="entry 2: the key is not valid base64") as refused:
        parse_keys(f"k1={new_key()},{key}=k2")
    assert key.rstrip("=") not in str(refused.value)
