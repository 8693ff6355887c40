"""The Redis key layout stays what earlier releases wrote, so a province upgrades while its
lessons run: processes of the old and the new release read and write the same keys.

The names below are literal on purpose (not the repositories' constants): a repository that
renames a key fails here instead of silently forking the state in a rolling upgrade.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis
from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.nodes import NodeDirectory, NodeInfo
from contracts.rooms import Participant, Role, Room
from contracts.store.redis import RedisStore
from lessons.models import LessonSession
from lessons.repository import SessionRepository
from signaling.rights import Rights
from signaling.rooms import RoomRepository

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis_store(redis_url: str) -> AsyncIterator[RedisStore]:
    store = RedisStore(redis_url, prefix=fresh_prefix())
    await store.start()
    try:
        yield store
    finally:
        await store.close()
        purge_prefix(redis_url, store.prefix)


def key_types(url: str, prefix: str) -> dict[str, str]:
    client = redis.Redis.from_url(url, decode_responses=True)
    try:
        return {
            key[len(prefix) :]: str(client.type(key))
            for key in client.scan_iter(match=prefix + "*", count=1000)
        }
    finally:
        client.close()


async def test_rooms_participants_and_sessions_keep_their_keys(
    redis_store: RedisStore, redis_url: str
) -> None:
    rooms, sessions = RoomRepository(redis_store), SessionRepository(redis_store)
    await rooms.create(Room(id="r-1"))
    await rooms.put_participant(
        Participant(id="p-1", room_id="r-1", subject="s", role=Role.teacher, node_id="n")
    )
    await sessions.put(LessonSession(id="s-1", room_id="r-1", starts_at=1, ends_at=2))
    await sessions.put(
        LessonSession(id="s-2", room_id="r-2", starts_at=1, ends_at=2, date="2026-12-01")
    )
    assert key_types(redis_url, redis_store.prefix) == {
        "rooms": "hash",
        "room:r-1:participants": "hash",
        "sessions": "hash",
        "sessions:by_date": "zset",
        "sessions:open": "zset",
    }
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        assert client.zscore(redis_store.prefix + "sessions:by_date", "s-2") == 20261201
        assert client.hget(redis_store.prefix + "rooms", "r-1") is not None
    finally:
        client.close()


async def test_media_nodes_placements_and_revocations_keep_their_keys(
    redis_store: RedisStore, redis_url: str
) -> None:
    nodes = NodeDirectory(redis_store)
    await nodes.register(NodeInfo(id="sfu-a", capacity=4))
    assert await nodes.assign("r-1") == "sfu-a"
    await Rights(redis_store).revoke("device:d-1", "lost")
    assert key_types(redis_url, redis_store.prefix) == {
        "kv:node:sfu:sfu-a": "string",
        "h:media:placements": "hash",
        "h:media:placed_count": "hash",
        "h:revoked-subjects": "hash",
        "l:revocations": "list",
    }


def test_the_other_components_keep_their_key_names() -> None:
    """Keys written deep inside a flow (the lesson clock's lock, the records chain, the
    scheduler's documents) are pinned by name; their flows have their own tests."""
    from lessons import attendance, devices, records, service, sources, whip
    from scheduler import repository
    from signaling import presence

    assert (records.RECORDS_LIST, records.HEAD_KEY) == ("l:records", "kv:records:head")
    assert (service.TICK_LOCK, service.SCHOOLS) == ("kv:lock:lessons-tick", "h:lesson-schools")
    assert service.notices_list("c") == "l:notices:c"
    assert attendance.attendance_list("s") == "l:attendance:s"
    assert devices.DEVICES == "h:devices"
    assert (sources.SOURCES, sources.SOURCE_ERRORS) == ("h:sources", "h:source-errors")
    assert sources.live_key("s") == "kv:source-live:s"
    assert sources.RTMP_KEYS == "h:rtmp-keys"
    assert whip.WHIP_SESSIONS == "h:whip-sessions"
    assert presence.node_key("n") == "kv:node:signaling:n"
    assert (repository.DISTRICT_KEY, repository.DISTRICT_ID_KEY) == (
        "kv:schedule:district",
        "kv:schedule:district_id",
    )
    assert (repository.TIMETABLES, repository.PUBLISHED_KEY, repository.PUBLISH_LOG) == (
        "h:schedule:timetables",
        "kv:schedule:published",
        "l:schedule:publish_log",
    )
    # Solve jobs in the store (a release without them ignores them).
    assert (repository.TIMETABLE_INFO, repository.RUNNING_JOB_KEY) == (
        "h:schedule:timetable_info",
        "kv:schedule:running_job",
    )
    assert (repository.job_key("j"), repository.job_lease_key("j")) == (
        "kv:schedule:job:j",
        "kv:schedule:job:j:lease",
    )
    assert repository.job_cancel_key("j") == "kv:schedule:job:j:cancel"
