"""`kill -9` of the SFU node recording a lesson: the room moves to the other node, which
records the rest as a second part; the first part, left as a working file in the directory
both nodes share, is finished by the survivor once the dead node's heartbeat expired
(media/recording_adoption.py); the replay library shows one lesson with both parts in order.
Real processes: two `sanke sfu` nodes, `sanke signaling`, `sanke scheduler` (the library),
real Redis, an aiortc teacher."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.clips import Clip
from support.cluster import COORDINATOR, TOKENS, cluster_env, running_cluster, wait_until
from support.processes import ServerProcess, free_port
from support.redis_helpers import fresh_prefix, purge_prefix
from support.rtc_client import RtcClient

from contracts.rooms import Role

pytestmark = [pytest.mark.redis, pytest.mark.slow, pytest.mark.timeout(240)]
AUTH = {"Authorization": f"Bearer {COORDINATOR}"}
ROOM = "famous-1"


def _probe(path: Path) -> dict[str, Any]:
    shown = subprocess.run(
        ["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of", "json", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    probed: dict[str, Any] = json.loads(shown.stdout)
    return probed


async def test_a_killed_node_leaves_a_playable_first_part_and_the_survivor_the_second(
    redis_url: str, tmp_path: Path, clip: Clip
) -> None:
    prefix = fresh_prefix()
    recordings = tmp_path / "recordings"  # shared by both nodes, as a ReadWriteMany volume
    library = ServerProcess(
        ["scheduler"],
        {**cluster_env(redis_url, prefix), "SANKE_NODE_ID": "sch"},
        free_port(),
        tmp_path / "scheduler.log",
    )

    def partials() -> list[Path]:
        return sorted(recordings.rglob("*.mp4.partial"))

    def finished() -> list[Path]:
        return sorted(recordings.rglob("*.mp4"))

    try:
        with running_cluster(
            redis_url,
            prefix,
            tmp_path,
            signaling_count=1,
            sfu_env={"SANKE_RECORDINGS_DIR": str(recordings)},
        ) as cluster:
            library.wait_ready(timeout=60)
            base = cluster.signaling[0].base
            async with aiohttp.ClientSession() as session:
                reply = await session.post(
                    f"{base}/api/v1/rooms", json={"id": ROOM, "kind": "broadcast"}, headers=AUTH
                )
                assert reply.status == 201, await reply.text()
                token = TOKENS.mint(subject="teacher-1", role=Role.teacher, room=ROOM)
                teacher = RtcClient(session, cluster.ws(0), token, clip)
                await teacher.start()
                try:
                    assert await wait_until(partials, 30), cluster.outputs()
                    started = time.monotonic()
                    (first,) = partials()
                    host = cluster.placement(ROOM)
                    assert host in cluster.sfu
                    (survivor,) = set(cluster.sfu) - {host}
                    await asyncio.sleep(6)
                    cluster.sfu[host].kill()
                    lived = time.monotonic() - started
                    # the teacher is told to rejoin; the survivor records part 2
                    assert await wait_until(lambda: teacher.rejoins, 15), teacher.inbox
                    assert await wait_until(lambda: len(partials()) == 2, 30), cluster.outputs()[
                        survivor
                    ]
                    assert cluster.placement(ROOM) == survivor
                    await asyncio.sleep(4)
                    closed = await session.delete(f"{base}/api/v1/rooms/{ROOM}", headers=AUTH)
                    assert closed.status in (200, 204), await closed.text()
                    # part 2 finished by its node, part 1 adopted once the dead one expired
                    assert await wait_until(lambda: len(finished()) == 2 and not partials(), 40), (
                        cluster.outputs()[survivor]
                    )
                finally:
                    await teacher.close()

                async def lesson() -> dict[str, Any] | None:
                    got = await session.get(f"{library.base}/api/v1/replays", headers=AUTH)
                    assert got.status == 200, await got.text()
                    replays = (await got.json())["replays"]
                    return replays[0] if replays and len(replays[0]["parts"]) == 2 else None

                replay = None
                for _ in range(100):  # catalogued right after the records
                    if replay := await lesson():
                        break
                    await asyncio.sleep(0.1)
                got = await session.get(f"{library.base}/api/v1/replays", headers=AUTH)
                every = (await got.json())["replays"]
    finally:
        library.stop()
        purge_prefix(redis_url, prefix)

    assert replay is not None and len(every) == 1, every
    one, two = replay["parts"]
    assert (one["n"], two["n"]) == (1, 2) and one["started_at"] < two["started_at"]
    assert one["file"] == str(first.relative_to(recordings)).removesuffix(".partial")
    assert one["recovered"] is True and two["recovered"] is False
    assert "-part1.mp4" in one["file"] and "-part2.mp4" in two["file"]
    probed = _probe(recordings / one["file"])
    codecs = sorted(s["codec_name"] for s in probed["streams"])
    assert codecs == ["aac", "h264"], codecs
    duration = float(probed["format"]["duration"])
    print(f"\npart 1: {duration:.2f} s of {lived:.2f} s before kill -9")
    assert abs(duration - lived) <= 2.0, (duration, lived)
    second = _probe(recordings / two["file"])
    assert sorted(s["codec_name"] for s in second["streams"]) == ["aac", "h264"]
    assert float(second["format"]["duration"]) > 2.0
