"""An RTSP camera in a distributed deployment: two ``sanke signaling`` processes run the RTSP
supervisor (a lease in Redis lets one pull the source), the pull is a node request to the
``sanke sfu`` node hosting the lesson's room, and a classroom on either signaling process
decodes the camera; the source's status, read over the node's reply, says connected."""

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
from support.rtsp_server import RtspCamera
from support.sessions import english_lesson

from contracts.rooms import Role
from contracts.store.redis import RedisStore
from lessons.repository import SessionRepository
from lessons.sources import RtspSettings, SourceKind, SourceRegistration, SourceRegistry
from signaling.rooms import RoomRepository

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]

ROOM = "eng.rtsp-cluster"


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    prefix = fresh_prefix()
    try:
        with running_cluster(redis_url, prefix, tmp_path, sfu_names=("sfu-a",)) as running:
            yield running
    finally:
        purge_prefix(redis_url, prefix)


@pytest.fixture
async def store(cluster: Cluster) -> AsyncIterator[RedisStore]:
    instance = RedisStore(cluster.redis_url, prefix=cluster.prefix)
    await instance.start()
    yield instance
    await instance.close()


async def test_an_rtsp_camera_is_pulled_by_the_node_hosting_its_lesson(
    cluster: Cluster, store: RedisStore, tmp_path: Path
) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    await SessionRepository(store).put(
        english_lesson(ROOM, time.time() + 60, master_classroom="3年级(1)班", date=today)
    )
    with RtspCamera(free_port(), tmp_path / "camera.log") as camera:
        registry = SourceRegistry(store)
        registered = await registry.register(
            SourceRegistration(
                kind=SourceKind.rtsp,
                name="教室摄像机",
                school="xian-shiyan",
                classroom="3年级(1)班",
                rtsp=RtspSettings(url=camera.url()),
            )
        )
        source_id = registered.source.id
        async with aiohttp.ClientSession() as session:
            await create_room(session, cluster, ROOM)  # the lesson clock's job in production
            classroom = RtcClient(
                session,
                cluster.ws(1),
                TOKENS.mint(subject="class:jd-1-g3", role=Role.classroom, room=ROOM),
            )
            await classroom.start()
            try:
                assert await wait_until(lambda: classroom.frames > 30, 40), (
                    classroom.inbox,
                    cluster.outputs(),
                )
                assert classroom.last_size == (1280, 720)
                assert cluster.placement(ROOM) == "sfu-a"

                async def connected() -> bool:
                    s = await registry.status(source_id)
                    return s.connected and s.width == 1280

                deadline = time.monotonic() + 20
                while not await connected() and time.monotonic() < deadline:
                    await asyncio.sleep(0.5)
                status = await registry.status(source_id)
                assert status.connected and (status.width, status.height) == (1280, 720), status
                assert status.room_id == ROOM
                # one teacher: the lease let one signaling process pull it
                participants = await RoomRepository(store).list_participants(ROOM)
                teachers = [p for p in participants if p.role == Role.teacher]
                assert [p.subject for p in teachers] == [f"source:{source_id}"]
            finally:
                await classroom.close()
