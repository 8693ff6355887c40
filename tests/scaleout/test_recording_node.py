"""A `sanke sfu` node of a distributed deployment records a 名校 (broadcast) lesson: the policy
reads the room's kind from Redis, the finished file's hash goes into the shared records chain,
and `sanke records verify --recording` checks the file against the chain in Redis."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import aiohttp
import pytest
from support.clips import Clip
from support.cluster import COORDINATOR, TOKENS, running_cluster, wait_until
from support.processes import SANKE
from support.redis_helpers import fresh_prefix, purge_prefix
from support.rtc_client import RtcClient

from contracts.rooms import Role
from contracts.store.redis import RedisStore
from lessons.records import RecordedFile, RecordLog

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(180)]
RECORDS_KEY = "r" * 40  # support.cluster's


async def test_an_sfu_node_records_a_broadcast_lesson_into_the_shared_chain(
    redis_url: str, tmp_path: Path, clip: Clip
) -> None:
    prefix = fresh_prefix()
    recordings = tmp_path / "recordings"
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
            auth = {"Authorization": f"Bearer {COORDINATOR}"}
            async with aiohttp.ClientSession() as session:
                reply = await session.post(
                    f"{base}/api/v1/rooms",
                    json={"id": "famous-1", "kind": "broadcast"},
                    headers=auth,
                )
                assert reply.status == 201, await reply.text()
                token = TOKENS.mint(subject="teacher-1", role=Role.teacher, room="famous-1")
                teacher = RtcClient(session, cluster.ws(0), token, clip)
                await teacher.start()
                try:
                    assert await wait_until(lambda: list(recordings.rglob("*.partial")), 30)
                    await asyncio.sleep(5)
                    closed = await session.delete(f"{base}/api/v1/rooms/famous-1", headers=auth)
                    assert closed.status in (200, 204), await closed.text()
                    assert await wait_until(lambda: list(recordings.rglob("*.mp4")), 30), (
                        cluster.outputs()["sfu-a"]
                    )
                finally:
                    await teacher.close()
            store = RedisStore(redis_url, prefix)
            await store.start()
            try:
                lines: list[str] = []
                for _ in range(100):  # the record follows the rename
                    lines = await RecordLog(store, RECORDS_KEY).raw()
                    if any('"kind":"recording"' in line for line in lines):
                        break
                    await asyncio.sleep(0.1)
            finally:
                await store.close()
        (line,) = [line for line in lines if '"kind":"recording"' in line]
        recorded = RecordedFile.model_validate(json.loads(line)["body"])
        assert recorded.room_id == "famous-1" and recorded.participant_id
        path = recordings / recorded.file
        assert path.is_file() and not list(recordings.rglob("*.partial"))
        env = {**os.environ, "REDIS_URL": redis_url, "SANKE_KEY_PREFIX": prefix}
        verified = subprocess.run(
            [SANKE, "records", "verify", "--key", RECORDS_KEY, "--recording", str(path)],
            capture_output=True,
            text=True,
            env=env,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert "is the recording of record" in verified.stdout
    finally:
        purge_prefix(redis_url, prefix)
