"""The codec server on its own: a bearer token guards it, the Web UI's origin may call it from a
browser (CORS), and it decodes what the codec encrypted."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from stack.codec_server import codec_app
from stack.encryption import ENCODING, EncryptionCodec, new_key, parse_keys
from stack.serving import serving
from stack.settings import Settings
from tests.cases import free_port

UI = "http://localhost:8233"
TOKEN = "s3cret-token"
CODEC = EncryptionCodec(parse_keys(f"k1={new_key()}"))


@pytest_asyncio.fixture
async def codec_server() -> AsyncIterator[str]:
    port = free_port()
    async with serving(codec_app(CODEC, token=TOKEN, origins=[UI]), "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}"


def body(*payloads: Payload) -> str:
    return json_format.MessageToJson(Payloads(payloads=payloads))


async def test_decode_needs_the_bearer_token(codec_server: str) -> None:
    sealed = body(CODEC.encrypt(Payload(metadata={"encoding": b"json/plain"}, data=b'"Acme"')))
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}):
            refused = await http.post(f"{codec_server}/decode", content=sealed, headers=headers)
            assert refused.status_code == 401
        answer = await http.post(
            f"{codec_server}/decode", content=sealed, headers={"Authorization": f"Bearer {TOKEN}"}
        )
    assert answer.status_code == 200
    decoded = json_format.Parse(answer.text, Payloads()).payloads
    assert [(p.metadata["encoding"], p.data) for p in decoded] == [(b"json/plain", b'"Acme"')]


async def test_encode_then_decode_round_trips(codec_server: str) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    plain = body(Payload(metadata={"encoding": b"json/plain"}, data=b'{"subject": "down"}'))
    async with httpx.AsyncClient() as http:
        encoded = await http.post(f"{codec_server}/encode", content=plain, headers=auth)
        assert json_format.Parse(encoded.text, Payloads()).payloads[0].metadata["encoding"] == ENCODING
        decoded = await http.post(f"{codec_server}/decode", content=encoded.text, headers=auth)
    assert json_format.Parse(decoded.text, Payloads()) == json_format.Parse(plain, Payloads())


async def test_the_web_ui_origin_may_call_it_from_a_browser_and_others_may_not(codec_server: str) -> None:
    wanted = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-namespace,authorization",
    }
    async with httpx.AsyncClient() as http:
        allowed = await http.options(f"{codec_server}/decode", headers=wanted | {"Origin": UI})
        other = await http.options(
            f"{codec_server}/decode", headers=wanted | {"Origin": "http://evil.example"}
        )
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == UI
    assert "x-namespace" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert "Access-Control-Allow-Origin" not in other.headers


def test_keys_and_origins_are_read_from_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABH_PAYLOAD_KEYS", f"new={new_key()}, old={new_key()}")
    monkeypatch.setenv("ABH_CODEC_CORS_ORIGINS", "https://temporal.example/, http://localhost:8233")
    settings = Settings.from_env()
    assert [k.id for k in settings.payload_keys] == ["new", "old"]
    assert settings.cors_origins == ("https://temporal.example", "http://localhost:8233")


def test_a_codec_server_off_loopback_needs_a_token() -> None:
    keys = f"k1={new_key()}"
    with pytest.raises(ValueError, match="ABH_CODEC_TOKEN is required when ABH_CODEC_HOST"):
        Settings.from_env({"ABH_PAYLOAD_KEYS": keys, "ABH_CODEC_HOST": "0.0.0.0"})
    settings = Settings.from_env(
        {"ABH_PAYLOAD_KEYS": keys, "ABH_CODEC_HOST": "0.0.0.0", "ABH_CODEC_TOKEN": "t"}
    )
    assert settings.codec_token is not None and settings.cors_origins == (UI,)
