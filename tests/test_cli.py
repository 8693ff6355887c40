"""The ``sanke`` command: protocol document, token minting, refusing the dev secret."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from support.processes import SANKE

from contracts.rooms import Role
from sanke.cli import PROTOCOL_DOC, main, protocol_document
from sanke.settings import DEFAULT_TOKEN_SECRET
from signaling.tokens import TokenService

REPO = Path(__file__).resolve().parent.parent
SECRET = "cli-secret-" + "k" * 32


def test_protocol_document_is_up_to_date() -> None:
    committed = (REPO / PROTOCOL_DOC).read_text(encoding="utf-8")
    assert committed == protocol_document(), (
        "run `sanke protocol export` and commit docs/protocol.json"
    )


def test_protocol_document_covers_every_message_type() -> None:
    doc = json.loads(protocol_document())
    client = json.dumps(doc["client_to_server"])
    server = json.dumps(doc["server_to_client"])
    for kind in [
        "join",
        "leave",
        "offer",
        "answer",
        "candidate",
        "raise_hand",
        "lower_hand",
        "set_stage",
        "mute",
        "kick",
        "ping",
    ]:
        assert f'"const": "{kind}"' in client, kind
    for kind in [
        "joined",
        "participant_joined",
        "participant_left",
        "hand_raised",
        "stage_changed",
        "muted",
        "error",
        "pong",
        "source_state",
    ]:
        assert f'"const": "{kind}"' in server, kind


def test_protocol_export_check_detects_a_stale_file(tmp_path: Path) -> None:
    stale = tmp_path / "protocol.json"
    stale.write_text("{}\n")
    assert main(["protocol", "export", "-o", str(stale), "--check"]) == 1
    assert main(["protocol", "export", "-o", str(stale)]) == 0
    assert main(["protocol", "export", "-o", str(stale), "--check"]) == 0


def test_token_mint_prints_a_verifiable_token() -> None:
    out = subprocess.run(
        [
            SANKE,
            "token",
            "mint",
            "--role",
            "classroom",
            "--subject",
            "kiosk-1",
            "--room",
            "r1",
            "--classroom",
            "jd-1-g3",
            "--school",
            "jd-1",
            "--ttl",
            "600",
            "--token-secret",
            SECRET,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    claims = TokenService(SECRET).verify(out)
    assert (
        claims.role is Role.classroom and claims.room == "r1" and claims.classroom_id == "jd-1-g3"
    )
    assert claims.exp - claims.nbf == 600


def test_serve_refuses_the_default_secret() -> None:
    result = subprocess.run(
        [SANKE, "serve", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0
    assert "SANKE_TOKEN_SECRET" in result.stderr


def test_token_mint_refuses_the_default_secret_outside_dev() -> None:
    result = subprocess.run(
        [SANKE, "token", "mint", "--role", "teacher", "--subject", "t", "--room", "r"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "SANKE_TOKEN_SECRET" in result.stderr


def test_signaling_requires_redis() -> None:
    result = subprocess.run(
        [SANKE, "signaling", "--dev"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode != 0 and "REDIS_URL" in result.stderr


async def test_serve_answers_on_ipv4_and_ipv6(tmp_path: Path) -> None:
    import aiohttp
    from support.harness import Client
    from support.processes import ServerProcess, free_port

    port = free_port("::1")
    server = ServerProcess(
        ["serve", "--demo", "--host", "127.0.0.1", "--host", "::1"],
        # Embedded mode: no REDIS_URL, whatever the environment running the tests has.
        {"SANKE_MEDIA": "false", "REDIS_URL": "", "SANKE_REDIS_URL": ""},
        port,
        tmp_path / "serve.log",
    )
    try:
        server.wait_ready()
        tokens = TokenService(DEFAULT_TOKEN_SECRET)
        async with aiohttp.ClientSession() as session:
            for host in ("127.0.0.1", "[::1]"):
                reply = await session.get(f"http://{host}:{port}/healthz")
                assert reply.status == 200
            teacher = Client(await session.ws_connect(f"ws://[::1]:{port}/ws"))
            await teacher.join(tokens.mint(subject="t", role=Role.teacher, room="demo-english-3"))
            classroom = Client(await session.ws_connect(f"ws://127.0.0.1:{port}/ws"))
            await classroom.join(
                tokens.mint(subject="c", role=Role.classroom, room="demo-english-3")
            )
            assert await teacher.expect("participant_joined")
    finally:
        server.stop()


def test_logs_keep_the_classrooms_ip_addresses_out_unless_debugging() -> None:
    import logging

    from sanke.cli import _configure_logging
    from sanke.settings import Settings

    aioice = logging.getLogger("aioice")
    before = aioice.level
    try:
        _configure_logging(Settings(dev=True))
        assert not aioice.isEnabledFor(logging.INFO)  # every candidate, every check
        aioice.setLevel(logging.NOTSET)
        _configure_logging(Settings(dev=True, log_level="DEBUG"))
        assert aioice.level == logging.NOTSET
    finally:
        aioice.setLevel(before)
