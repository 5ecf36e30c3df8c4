"""Payload encryption: every payload a case puts in Temporal (input, results, signals, updates, queries,
memo, summary and details, failure messages) is AES-256-GCM encrypted before it leaves the process.

Keys come from `ABH_PAYLOAD_KEYS` as `id=base64key,id=base64key`: the first encrypts, all decrypt, and
each encrypted payload names its key id, so a new first key leaves older cases readable. Payloads that
were never encrypted (cases from before the keys were set) are read as they are. Search attributes are
not payloads and stay plaintext: they carry no personal data (README, Production).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import BaseModel, ConfigDict, SecretBytes
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = 32
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class PayloadKey(BaseModel):
    """One AES-256 key and the id payloads name it by; the key never shows in a repr or a log."""

    model_config = ConfigDict(frozen=True)

    id: str
    key: SecretBytes


def parse_keys(text: str) -> tuple[PayloadKey, ...]:
    """`id=base64,id=base64` into keys, first one first; ValueError saying which entry is wrong."""
    keys: list[PayloadKey] = []
    for n, item in enumerate((part.strip() for part in text.split(",")), start=1):
        key_id, sep, encoded = item.partition("=")
        key_id = key_id.strip()
        if not sep or not encoded.strip() or not KEY_ID_PATTERN.fullmatch(key_id):
            raise ValueError(f"entry {n}: expected id=base64key, the id 1-64 of A-Za-z0-9._-")
        # Entries are named by their place, never by their id: written key=id, the id is the key.
        try:
            raw = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"entry {n}: the key is not valid base64") from None
        if len(raw) != KEY_BYTES:
            raise ValueError(f"entry {n}: the key is {len(raw)} bytes, an AES-256 key is {KEY_BYTES}")
        if any(k.id == key_id for k in keys):
            raise ValueError(f"entry {n}: its id is given twice")
        keys.append(PayloadKey(id=key_id, key=SecretBytes(raw)))
    return tuple(keys)


def new_key() -> str:
    """A fresh random key, base64, for `ABH_PAYLOAD_KEYS`."""
    return base64.b64encode(os.urandom(KEY_BYTES)).decode()


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[PayloadKey]) -> None:
        if not keys:
            raise ValueError("at least one payload key is needed")
        self._current = keys[0].id
        self._ciphers = {k.id: AESGCM(k.key.get_secret_value()) for k in keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._current.encode()
        sealed = self._ciphers[self._current].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise ValueError(f"payload encrypted with key {key_id!r}, which is not in ABH_PAYLOAD_KEYS")
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise ValueError(f"payload does not decrypt with key {key_id!r}") from None
        return Payload.FromString(plain)


def data_converter(keys: Sequence[PayloadKey] = ()) -> DataConverter:
    """The pydantic data converter; with keys, every payload and failure message encrypted."""
    if not keys:
        return pydantic_data_converter
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
