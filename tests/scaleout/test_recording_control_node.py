"""Per-lesson recording control in a distributed deployment: a coordinator's HTTP request to a
`sanke signaling` process and the teacher's `set_recording` reach the `sanke sfu` node hosting
the room through Redis; the node finishes the part (stop) and opens a new one (start). A node
without a recordings directory refuses, and the room's switch stays as it was."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from support.clips import Clip
from support.cluster import COORDINATOR, TOKENS, running_cluster, wait_until
from support.redis_helpers import fresh_prefix, purge_prefix
from support.rtc_client import RtcClient

from contracts.rooms import Role
from contracts.store.redis import RedisStore
from lessons.records import RecordLog
from signaling.rooms import RoomRepository

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]
RECORDS_KEY = "r" * 40  # support.cluster's
AUTH = {"Authorization": f"Bearer {COORDINATOR}"}


async def _lesson(session: aiohttp.ClientSession, base: str) -> None:
    reply = await session.post(
        f"{base}/api/v1/rooms", json={"id": "famous-1", "kind": "broadcast"}, headers=AUTH
    )
    assert reply.status == 201, await reply.text()


async def test_recording_is_stopped_and_restarted_on_the_sfu_node_hosting_the_room(
    redis_url: str, tmp_path: Path, clip: Clip
) -> None:
    prefix = fresh_prefix()
    recordings = tmp_path / "recordings"

    def finished() -> list[Path]:
        return sorted(recordings.rglob("*.mp4"))

    def partials() -> list[Path]:
        return sorted(recordings.rglob("*.partial"))

    try:
        with running_cluster(
            redis_url,
            prefix,
            tmp_path,
            sfu_names=("sfu-a",),
            signaling_count=1,
            sfu_env={"SANKE_RECORDINGS_DIR": str(recordings)},
        ) as cluster:
            base = cluster.signaling[0].base
            async with aiohttp.ClientSession() as session:
                await _lesson(session, base)
                token = TOKENS.mint(subject="teacher-1", role=Role.teacher, room="famous-1")
                teacher = RtcClient(session, cluster.ws(0), token, clip)
                await teacher.start()
                try:
                    assert {"type": "recording", "on": True, "enabled": True} in teacher.inbox
                    assert await wait_until(partials, 30), cluster.outputs()["sfu-a"]
                    await asyncio.sleep(4)
                    reply = await session.put(
                        f"{base}/api/v1/rooms/famous-1/recording", json={"on": False}, headers=AUTH
                    )
                    assert reply.status == 200, await reply.text()
                    assert (await reply.json())["on"] is False
                    # the node finished part 1: its final name, no working file
                    assert await wait_until(lambda: finished() and not partials(), 30), (
                        cluster.outputs()["sfu-a"]
                    )
                    assert await wait_until(
                        lambda: (
                            {"type": "recording", "on": False, "enabled": True} in teacher.inbox
                        ),
                        10,
                    )
                    await teacher._send({"type": "set_recording", "on": True})
                    assert await wait_until(partials, 30), cluster.outputs()["sfu-a"]
                    await asyncio.sleep(3)
                    closed = await session.delete(f"{base}/api/v1/rooms/famous-1", headers=AUTH)
                    assert closed.status in (200, 204), await closed.text()
                    assert await wait_until(lambda: len(finished()) == 2 and not partials(), 30)
                finally:
                    await teacher.close()
            store = RedisStore(redis_url, prefix)
            await store.start()
            try:
                bodies: list[dict[str, object]] = []
                for _ in range(100):  # the record follows the rename
                    lines = await RecordLog(store, RECORDS_KEY).raw()
                    bodies = [json.loads(line)["body"] for line in lines]
                    if sum(b["kind"] == "recording" for b in bodies) == 2:
                        break
                    await asyncio.sleep(0.1)
            finally:
                await store.close()
        assert [b["part"] for b in bodies if b["kind"] == "recording"] == [1, 2]
        audits = [
            (b["action"], b["actor"])
            for b in bodies
            if b["kind"] == "audit" and str(b["action"]).startswith("recording.")
        ]
        assert audits == [("recording.stopped", "coord"), ("recording.started", "teacher-1")]
    finally:
        purge_prefix(redis_url, prefix)


async def test_a_node_without_a_recordings_directory_refuses_and_nothing_changes(
    redis_url: str, tmp_path: Path, clip: Clip
) -> None:
    prefix = fresh_prefix()
    try:
        with running_cluster(
            redis_url, prefix, tmp_path, sfu_names=("sfu-a",), signaling_count=1
        ) as cluster:
            base = cluster.signaling[0].base
            async with aiohttp.ClientSession() as session:
                await _lesson(session, base)
                token = TOKENS.mint(subject="teacher-1", role=Role.teacher, room="famous-1")
                teacher = RtcClient(session, cluster.ws(0), token, clip)
                await teacher.start()
                try:
                    assert await wait_until(lambda: cluster.placement("famous-1"), 30)
                    reply = await session.put(
                        f"{base}/api/v1/rooms/famous-1/recording", json={"on": False}, headers=AUTH
                    )
                    assert reply.status == 409, await reply.text()
                    assert (await reply.json())["error"]["code"] == "recording_unavailable"
                    await teacher._send({"type": "set_recording", "on": False, "rid": "r"})
                    assert await wait_until(
                        lambda: any(e.get("rid") == "r" for e in teacher.errors), 15
                    )
                    (error,) = [e for e in teacher.errors if e.get("rid") == "r"]
                    assert error["code"] == "recording_unavailable"
                finally:
                    await teacher.close()
            store = RedisStore(redis_url, prefix)
            await store.start()
            try:
                room = await RoomRepository(store).get("famous-1")
            finally:
                await store.close()
            assert room is not None and room.recording  # put back when the node refused
    finally:
        purge_prefix(redis_url, prefix)
