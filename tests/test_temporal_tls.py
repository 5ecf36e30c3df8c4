"""The worker's Temporal connection over mTLS, configured only by Temporal's standard environment
variables (TEMPORAL_TLS_*, TEMPORAL_API_KEY), through a TLS-terminating loopback proxy in front of the dev
server that requires a client certificate, as a production frontend or Temporal Cloud does."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.testing import WorkflowEnvironment

from stack.client import connect
from stack.settings import Settings

WORKER_NAME = "abh-worker"


def issue(
    subject: str, issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None, *, ca: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    signer_cert, signer_key = issuer or (None, key)
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(signer_cert.subject if signer_cert else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if subject == "localhost":
        names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(signer_key, hashes.SHA256()), key


def write(folder: Path, name: str, pair: tuple[x509.Certificate, ec.EllipticCurvePrivateKey]) -> None:
    cert, key = pair
    (folder / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / f"{name}.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )


@dataclass
class Frontend:
    """A TLS frontend: checks the client certificate, then passes the bytes to the dev server."""

    port: int = 0
    clients: list[str] = field(default_factory=list)


@pytest_asyncio.fixture
async def frontend(dev_env: WorkflowEnvironment, tmp_path: Path) -> AsyncIterator[tuple[Frontend, Path]]:
    ca = issue("ABH test CA", None, ca=True)
    for name, pair in (("ca", ca), ("server", issue("localhost", ca)), ("client", issue(WORKER_NAME, ca))):
        write(tmp_path, name, pair)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.pem")
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    context.set_alpn_protocols(["h2"])
    upstream_host, upstream_port = dev_env.client.service_client.config.target_host.rsplit(":", 1)
    found = Frontend()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peercert") or {}
        found.clients.extend(v for rdn in peer.get("subject", ()) for k, v in rdn if k == "commonName")
        up_reader, up_writer = await asyncio.open_connection(upstream_host, int(upstream_port))
        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    server = await asyncio.start_server(accept, "127.0.0.1", 0, ssl=context)
    found.port = server.sockets[0].getsockname()[1]
    async with server:
        yield found, tmp_path
        server.close()


async def test_the_worker_connects_with_mtls_and_an_api_key_from_temporal_variables(
    frontend: tuple[Frontend, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    proxy, certs = frontend
    monkeypatch.setenv("TEMPORAL_ADDRESS", f"localhost:{proxy.port}")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "default")
    monkeypatch.setenv("TEMPORAL_API_KEY", "key-for-the-frontend")
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_CA_CERT_PATH", str(certs / "ca.pem"))
    monkeypatch.setenv("TEMPORAL_TLS_SERVER_NAME", "localhost")
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_CERT_PATH", str(certs / "client.pem"))
    monkeypatch.setenv("TEMPORAL_TLS_CLIENT_KEY_PATH", str(certs / "client.key"))

    client = await connect(Settings.from_env())
    assert client.api_key == "key-for-the-frontend"
    assert (await client.count_workflows()).count >= 0  # a real call, answered through the frontend
    assert WORKER_NAME in proxy.clients

    # Without its certificate the same worker is refused by the frontend.
    monkeypatch.delenv("TEMPORAL_TLS_CLIENT_CERT_PATH")
    monkeypatch.delenv("TEMPORAL_TLS_CLIENT_KEY_PATH")
    with pytest.raises(RuntimeError, match="Failed client connect"):
        await asyncio.wait_for(connect(Settings.from_env()), 30)
