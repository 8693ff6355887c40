"""TLS in the app: `sanke serve --tls-cert --tls-key` answers HTTPS and WSS on IPv4 and IPv6
with HSTS, refuses plain HTTP on that port, and picks up a renewed certificate by itself."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import os
import ssl
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from support.harness import Client
from support.processes import SANKE, ServerProcess, free_port

from contracts.rooms import Role
from sanke.settings import DEFAULT_TOKEN_SECRET
from signaling.tokens import TokenService

HOSTS = ("127.0.0.1", "[::1]")


def self_signed(directory: Path, name: str) -> tuple[Path, Path, int]:
    """A self-signed certificate for localhost, 127.0.0.1 and ::1 (and its serial)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    serial = x509.random_serial_number()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{name}.crt", directory / f"{name}.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path, serial


def trusting(*certs: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    for cert in certs:
        ctx.load_verify_locations(cafile=str(cert))
    return ctx


def served_serial(host: str, port: int, ctx: ssl.SSLContext) -> int:
    import socket

    raw = socket.create_connection((host.strip("[]"), port), timeout=5)
    with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def wait_ready(
    session: aiohttp.ClientSession, base: str, ctx: ssl.SSLContext, server: ServerProcess
) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(server.output())
        try:
            async with session.get(base + "/readyz", ssl=ctx) as reply:
                if reply.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise TimeoutError(server.output())


@pytest.mark.timeout(90)
async def test_https_and_wss_on_ipv4_and_ipv6_with_hsts_and_certificate_renewal(
    tmp_path: Path,
) -> None:
    first_cert, first_key, first_serial = self_signed(tmp_path, "first")
    cert, key = tmp_path / "tls.crt", tmp_path / "tls.key"
    cert.write_bytes(first_cert.read_bytes())
    key.write_bytes(first_key.read_bytes())
    port = free_port("::1")
    server = ServerProcess(
        [
            "serve",
            "--dev",
            "--host",
            "127.0.0.1",
            "--host",
            "::1",
            "--tls-cert",
            str(cert),
            "--tls-key",
            str(key),
        ],
        {
            "SANKE_MEDIA": "false",
            "REDIS_URL": "",
            "SANKE_REDIS_URL": "",
            "SANKE_TLS_RELOAD_SECONDS": "0.3",
        },
        port,
        tmp_path / "serve.log",
    )
    tokens = TokenService(DEFAULT_TOKEN_SECRET)
    coordinator = tokens.mint(subject="c", role=Role.admin)
    second_cert, second_key, second_serial = self_signed(tmp_path, "second")
    ctx = trusting(first_cert, second_cert)
    try:
        async with aiohttp.ClientSession() as session:
            await wait_ready(session, f"https://127.0.0.1:{port}", ctx, server)
            created = await session.post(
                f"https://[::1]:{port}/api/v1/rooms",
                json={"id": "tls-room"},
                headers={"Authorization": f"Bearer {coordinator}"},
                ssl=ctx,
            )
            assert created.status == 201, await created.text()
            for host in HOSTS:
                base = f"https://{host}:{port}"
                for path in ("/healthz", "/web/teacher.html"):
                    reply = await session.get(base + path, ssl=ctx)
                    assert reply.status == 200, (host, path)
                    assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
                    assert reply.headers["X-Frame-Options"] == "DENY"
                # plain HTTP on the TLS port gets no answer a browser would use
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(f"http://{host}:{port}/healthz") as plain:
                        assert plain.status != 200
                        raise aiohttp.ClientError("answered plain HTTP with an error")
            teacher = Client(await session.ws_connect(f"wss://[::1]:{port}/ws", ssl=ctx))
            await teacher.join(tokens.mint(subject="t", role=Role.teacher, room="tls-room"))
            viewer = Client(await session.ws_connect(f"wss://127.0.0.1:{port}/ws", ssl=ctx))
            await viewer.join(tokens.mint(subject="v", role=Role.viewer, room="tls-room"))
            await teacher.expect("participant_joined")
            # renewal (an ACME client, cert-manager): files replaced, no restart
            assert served_serial("127.0.0.1", port, ctx) == first_serial
            for source, target in ((second_key, key), (second_cert, cert)):
                partial = target.with_suffix(".new")
                partial.write_bytes(source.read_bytes())
                os.replace(partial, target)
            deadline = time.monotonic() + 10
            while served_serial("[::1]", port, ctx) != second_serial:
                assert time.monotonic() < deadline, server.output()
                await asyncio.sleep(0.2)
            assert served_serial("127.0.0.1", port, ctx) == second_serial
            await teacher.send({"type": "ping", "ts": 1})  # live connections carry on
            await teacher.expect("pong")
    finally:
        server.stop()


def test_a_missing_or_half_tls_setting_stops_with_a_clear_message(tmp_path: Path) -> None:
    cert, _, _ = self_signed(tmp_path, "only")
    for args, says in (
        (["--tls-cert", str(cert)], "needs both"),
        (
            ["--tls-cert", str(tmp_path / "nope.crt"), "--tls-key", str(tmp_path / "nope.key")],
            "does not exist",
        ),
        (["--tls-cert", str(cert), "--tls-key", str(cert)], "belong together"),  # not a key
    ):
        result = subprocess.run(
            [SANKE, "serve", "--dev", "--port", "0", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "SANKE_MEDIA": "false", "REDIS_URL": ""},
        )
        assert result.returncode != 0, args
        assert says in result.stderr and "Traceback" not in result.stderr, result.stderr
