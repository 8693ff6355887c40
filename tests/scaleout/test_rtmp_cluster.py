"""An RTMP push in a distributed deployment: each ``sanke sfu`` node listens for RTMP and
accepts a stream key only for a room it hosts (the signaling processes' supervisor asks the
hosting node, over a node request, to expect the push). A push to the other node is
refused with the RTMP error status; the push to the hosting node reaches a classroom on a
signaling process, decoded at 1280x720, and the source's status says connected."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support.cluster import TOKENS, Cluster, create_room, running_cluster, wait_until
from support.processes import free_port
from support.redis_helpers import fresh_prefix, purge_prefix
from support.rtc_client import RtcClient
from support.rtmp_push import FfmpegPush
from support.sessions import english_lesson

from contracts.rooms import Role
from contracts.store.redis import RedisStore
from lessons.repository import SessionRepository
from lessons.sources import SourceKind, SourceRegistration, SourceRegistry
from signaling.rooms import RoomRepository

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]

ROOM = "eng.rtmp-cluster"
PORTS = {"sfu-a": free_port(), "sfu-b": free_port()}


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    prefix = fresh_prefix()
    # its own RTMP port each; no drain at the end (the test's room would hold it 10 s)
    env = {
        name: {"SANKE_RTMP_PORT": str(port), "SANKE_DRAIN_GRACE_SECONDS": "0"}
        for name, port in PORTS.items()
    }
    try:
        with running_cluster(
            redis_url, prefix, tmp_path, signaling_count=1, node_env=env
        ) as running:
            yield running
    finally:
        purge_prefix(redis_url, prefix)


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[RedisStore]:
    instance = RedisStore(cluster.redis_url, prefix=cluster.prefix)
    await instance.start()
    yield instance
    await instance.close()


async def test_the_node_hosting_the_lesson_takes_its_push_and_only_it(
    cluster: Cluster, store: RedisStore, tmp_path: Path
) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    await SessionRepository(store).put(
        english_lesson(ROOM, time.time() + 60, master_classroom="3年级(1)班", date=today)
    )
    registry = SourceRegistry(store)
    registered = await registry.register(
        SourceRegistration(
            kind=SourceKind.rtmp, name="OBS", school="xian-shiyan", classroom="3年级(1)班"
        )
    )
    key = registered.stream_key
    assert key is not None
    async with aiohttp.ClientSession() as session:
        await create_room(session, cluster, ROOM)  # the lesson clock's job in production
        classroom = RtcClient(
            session,
            cluster.ws(0),
            TOKENS.mint(subject="class:jd-1-g3", role=Role.classroom, room=ROOM),
        )
        await classroom.start()
        try:
            assert await wait_until(lambda: cluster.placement(ROOM) in PORTS, 20)
            host = cluster.placement(ROOM)
            (other,) = [name for name in PORTS if name != host]
            # the supervisor joins the source as the teacher, then has the node expect it
            subject = f"source:{registered.source.id}"
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                participants = await RoomRepository(store).list_participants(ROOM)
                if any(p.subject == subject for p in participants):
                    break
                await asyncio.sleep(0.3)
            await asyncio.sleep(1.0)  # its pull: the node request right after the join
            elsewhere = f"rtmp://127.0.0.1:{PORTS[other]}/live/{key}"
            with FfmpegPush(elsewhere, tmp_path / "other.log", audio=False) as push:
                assert await wait_until(push.exited, 15)
                assert "no lesson is open for this stream key" in push.output()
            hosting = f"rtmp://127.0.0.1:{PORTS[host]}/live/{key}"
            with FfmpegPush(hosting, tmp_path / "host.log"):
                assert await wait_until(lambda: classroom.frames > 30, 40), (
                    classroom.inbox,
                    cluster.outputs(),
                )
                assert classroom.last_size == (1280, 720)

                async def connected() -> bool:
                    s = await registry.status(registered.source.id)
                    return s.connected and s.width == 1280

                deadline = time.monotonic() + 20
                while not await connected() and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                status = await registry.status(registered.source.id)
                assert status.connected and (status.width, status.height) == (1280, 720)
        finally:
            await classroom.close()
