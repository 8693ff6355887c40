"""WHIP in a distributed deployment: the encoder POSTs to one ``sanke signaling`` process, its
offer goes to the ``sanke sfu`` node hosting the room, a classroom on the other signaling
process decodes it, and a DELETE sent to that other process ends the publish."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support.clips import Clip
from support.cluster import TOKENS, Cluster, create_room, running_cluster, wait_until
from support.redis_helpers import fresh_prefix, purge_prefix
from support.rtc_client import RtcClient
from support.sessions import english_lesson
from support.whip_client import WhipClient

from contracts.rooms import Role
from contracts.store.redis import RedisStore
from lessons.repository import SessionRepository
from lessons.sources import SourceKind, SourceRegistration, SourceRegistry

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]

ROOM = "eng.cluster"


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


async def test_a_whip_publish_crosses_processes(
    cluster: Cluster, store: RedisStore, clip: Clip
) -> None:
    today = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600))
    await SessionRepository(store).put(
        english_lesson(ROOM, time.time() + 60, master_classroom="3年级(1)班", date=today)
    )
    registered = await SourceRegistry(store).register(
        SourceRegistration(
            kind=SourceKind.whip, name="录播", school="xian-shiyan", classroom="3年级(1)班"
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
        encoder = WhipClient(
            session, f"{cluster.signaling[0].base}/whip/v1/{source_id}", registered.token, clip
        )
        try:
            reply = await encoder.publish()
            assert reply.status == 201, (reply.body, cluster.outputs())
            assert await wait_until(lambda: classroom.frames > 10, 30), (
                classroom.inbox,
                cluster.outputs(),
            )
            assert cluster.placement(ROOM) == "sfu-a"
            status = await SourceRegistry(store).status(source_id)
            assert status.connected and status.room_id == ROOM

            # The Location, on the other signaling process: the publish still ends.
            assert encoder.location is not None
            other = f"{cluster.signaling[1].base}{encoder.location}"
            async with session.delete(
                other, headers={"Authorization": f"Bearer {registered.token}"}
            ) as gone:
                assert gone.status == 200, await gone.text()
            assert await wait_until(
                lambda: any(m["type"] == "participant_left" for m in classroom.inbox), 15
            ), classroom.inbox
            assert not (await SourceRegistry(store).status(source_id)).connected
        finally:
            await encoder.close()
            await classroom.close()
