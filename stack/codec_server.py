"""The codec server: decodes (and encodes) payloads for the Temporal Web UI and CLI with the payload
keys, so people with access read cases in clear while Temporal itself only ever holds ciphertext.

POST /decode and /encode take and return `{"payloads": [...]}` (Temporal's JSON form of Payloads). With
`ABH_CODEC_TOKEN` set every request needs `Authorization: Bearer <token>`; without one it listens on
loopback only. Browsers may call it from the Web UI's origin (`ABH_CODEC_CORS_ORIGINS`).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

import aiohttp_cors
from aiohttp import web
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from stack.encryption import EncryptionCodec
from stack.settings import Settings

HEADERS = ("Content-Type", "Authorization", "X-Namespace")


def codec_app(codec: EncryptionCodec, *, token: str | None, origins: Sequence[str]) -> web.Application:
    def authorized(request: web.Request) -> bool:
        if token is None:
            return True
        given = request.headers.get("Authorization", "")
        return hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    async def transcode(request: web.Request, decode: bool) -> web.Response:
        if not authorized(request):
            raise web.HTTPUnauthorized(
                text="a bearer token is required", headers={"WWW-Authenticate": "Bearer"}
            )
        try:
            payloads = json_format.Parse(await request.text(), Payloads())
            coded = await (codec.decode if decode else codec.encode)(list(payloads.payloads))
        except (json_format.ParseError, ValueError) as err:
            raise web.HTTPBadRequest(text=str(err)) from None
        body = json_format.MessageToJson(Payloads(payloads=coded))
        return web.Response(text=body, content_type="application/json")

    async def decode(request: web.Request) -> web.Response:
        return await transcode(request, decode=True)

    async def encode(request: web.Request) -> web.Response:
        return await transcode(request, decode=False)

    app = web.Application()
    cors = aiohttp_cors.setup(
        app,
        defaults={
            origin: aiohttp_cors.ResourceOptions(  # type: ignore[no-untyped-call]
                allow_credentials=True, allow_headers=HEADERS, allow_methods=["POST"]
            )
            for origin in origins
        },
    )
    for path, handler in (("/decode", decode), ("/encode", encode)):
        cors.add(app.router.add_post(path, handler))
    return app


def codec_app_of(settings: Settings) -> web.Application:
    if not settings.payload_keys:
        raise ValueError("ABH_PAYLOAD_KEYS is not set: there is nothing to decode with")
    token = settings.codec_token.get_secret_value() if settings.codec_token else None
    return codec_app(EncryptionCodec(settings.payload_keys), token=token, origins=settings.cors_origins)
