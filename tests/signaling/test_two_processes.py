"""Two real ``sanke signaling`` processes on the real Redis share one room."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from support.harness import SECRET, Client
from support.processes import ServerProcess, free_port
from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.rooms import Role
from signaling.tokens import TokenService

pytestmark = pytest.mark.redis


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    prefix = fresh_prefix()
    env = {
        "REDIS_URL": redis_url,
        "SANKE_KEY_PREFIX": prefix,
        "SANKE_TOKEN_SECRET": SECRET,
        "SANKE_RECORDS_KEY": "r" * 40,
        "SANKE_HEARTBEAT_SECONDS": "1.5",
        "SANKE_HOST": "127.0.0.1",
    }
    servers = [
        ServerProcess(
            ["signaling"],
            {**env, "SANKE_NODE_ID": f"sig-{name}"},
            free_port(),
            tmp_path / f"{name}.log",
        )
        for name in ("a", "b")
    ]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            server.stop()
        purge_prefix(redis_url, prefix)


async def _join(session: aiohttp.ClientSession, server: ServerProcess, token: str) -> Client:
    client = Client(await session.ws_connect(f"ws://127.0.0.1:{server.port}/ws"))
    await client.join(token)
    return client


async def test_participants_on_two_processes_see_each_other(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = cluster
    tokens = TokenService(SECRET)
    coordinator = tokens.mint(subject="coord", role=Role.coordinator)
    async with aiohttp.ClientSession() as session:
        reply = await session.post(
            f"{a.base}/api/v1/rooms",
            json={"id": "shared", "name": "跨进程"},
            headers={"Authorization": f"Bearer {coordinator}"},
        )
        assert reply.status == 201
        teacher = await _join(
            session, a, tokens.mint(subject="t", role=Role.teacher, room="shared")
        )
        classroom = await _join(
            session, b, tokens.mint(subject="c", role=Role.classroom, room="shared")
        )
        joined_event = await teacher.expect("participant_joined")
        assert joined_event["participant"]["id"] == classroom.participant_id
        assert [p["id"] for p in classroom.inbox[0]["participants"]] == [teacher.participant_id]

        await classroom.send({"type": "raise_hand"})
        assert await teacher.expect(
            "hand_raised", participant_id=classroom.participant_id, raised=True
        )
        await teacher.send(
            {"type": "set_stage", "participant_id": classroom.participant_id, "on_stage": True}
        )
        assert await classroom.expect("stage_changed", on_stage=True)

        observer = await _join(
            session, b, tokens.mint(subject="o", role=Role.observer, room="shared")
        )
        await classroom.send({"type": "leave"})
        assert await teacher.expect(
            "participant_left", participant_id=classroom.participant_id, reason="left"
        )
        # The observer on B was never announced to the teacher on A.
        assert all(observer.participant_id not in str(m) for m in teacher.inbox)

        # A teacher on A kicks a classroom on B: B closes that connection.
        late = await _join(
            session, b, tokens.mint(subject="c2", role=Role.classroom, room="shared")
        )
        await teacher.expect("participant_joined")
        await teacher.send({"type": "kick", "participant_id": late.participant_id})
        assert (await late.expect("error"))["code"] == "kicked"
        await teacher.expect(
            "participant_left", participant_id=late.participant_id, reason="kicked"
        )


async def test_participants_of_a_killed_process_are_removed(
    cluster: tuple[ServerProcess, ServerProcess],
) -> None:
    a, b = cluster
    tokens = TokenService(SECRET)
    coordinator = tokens.mint(subject="coord", role=Role.coordinator)
    async with aiohttp.ClientSession() as session:
        await session.post(
            f"{a.base}/api/v1/rooms",
            json={"id": "fragile"},
            headers={"Authorization": f"Bearer {coordinator}"},
        )
        teacher = await _join(
            session, a, tokens.mint(subject="t", role=Role.teacher, room="fragile")
        )
        classroom = await _join(
            session, b, tokens.mint(subject="c", role=Role.classroom, room="fragile")
        )
        await teacher.expect("participant_joined")
        b.kill()
        left = await teacher.expect(
            "participant_left", timeout=15, participant_id=classroom.participant_id
        )
        assert left["reason"] == "timeout"
