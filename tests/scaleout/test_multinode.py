"""Two signaling processes and two SFU nodes on the real Redis, with real aiortc clients."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from support.clips import Clip
from support.cluster import (
    TOKENS,
    Cluster,
    create_room,
    lesson,
    running_cluster,
    wait_until,
)
from support.harness import SECRET
from support.processes import ServerProcess, free_port
from support.redis_helpers import fresh_prefix, purge_prefix
from support.rtc_client import RtcClient

from contracts.rooms import Role

pytestmark = [pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def cluster(redis_url: str, tmp_path: Path) -> Iterator[Cluster]:
    prefix = fresh_prefix()
    try:
        with running_cluster(redis_url, prefix, tmp_path) as running:
            yield running
    finally:
        purge_prefix(redis_url, prefix)


async def test_rooms_spread_over_nodes_and_concurrent_first_joins_agree(
    cluster: Cluster, clip: Clip
) -> None:
    async with aiohttp.ClientSession() as session:
        # Both signaling processes place the same new room at the same moment.
        await create_room(session, cluster, "race")
        a = RtcClient(
            session, cluster.ws(0), TOKENS.mint(subject="a", role=Role.teacher, room="race"), clip
        )
        b = RtcClient(
            session, cluster.ws(1), TOKENS.mint(subject="b", role=Role.classroom, room="race")
        )
        await asyncio.gather(a.start(), b.start())
        assert await wait_until(lambda: b.frames > 5, 20), (b.inbox, b.errors)
        first = cluster.placement("race")
        assert first in cluster.sfu

        t2, c2 = await lesson(session, cluster, "second", clip)
        assert cluster.placement("second") not in (None, first), (
            "the second room goes to the idle node"
        )

        # Both nodes are at capacity 2 once two more rooms are placed; a fifth is refused.
        t3, c3 = await lesson(session, cluster, "third", clip)
        t4, c4 = await lesson(session, cluster, "fourth", clip)
        placements = [cluster.placement(r) for r in ("race", "second", "third", "fourth")]
        assert sorted(placements) == ["sfu-a", "sfu-a", "sfu-b", "sfu-b"]
        await create_room(session, cluster, "fifth")
        extra = RtcClient(
            session, cluster.ws(0), TOKENS.mint(subject="x", role=Role.teacher, room="fifth"), clip
        )
        await extra.start()
        assert await wait_until(
            lambda: any(e.get("code") == "media_unavailable" for e in extra.errors), 10
        )
        for client in (a, b, t2, c2, t3, c3, t4, c4, extra):
            await client.close()


async def test_killed_node_rooms_move_and_media_flows_again(cluster: Cluster, clip: Clip) -> None:
    async with aiohttp.ClientSession() as session:
        teacher, classroom = await lesson(session, cluster, "fragile", clip)
        node = cluster.placement("fragile")
        assert node is not None
        survivor = next(n for n in cluster.sfu if n != node)
        killed_at = time.monotonic()
        cluster.sfu[node].kill()
        assert await wait_until(lambda: classroom.rejoins and teacher.rejoins, 10), classroom.inbox[
            -5:
        ]
        assert await wait_until(lambda: classroom.frames_after(killed_at + 0.2) > 0, 15), (
            classroom.errors
        )
        first_frame = min(t for t in classroom.frame_times if t > killed_at + 0.2)
        gap = first_frame - killed_at
        print(f"\nfailover: media back {gap:.2f} s after kill -9")
        assert cluster.placement("fragile") == survivor
        assert await wait_until(lambda: classroom.frames_after(first_frame) > 20, 10)
        # Signaling kept the participants: nobody left the room.
        assert not any(m["type"] == "participant_left" for m in teacher.inbox)
        await teacher.close()
        await classroom.close()


async def test_draining_node_takes_no_new_rooms_and_exits_when_lessons_end(
    cluster: Cluster, clip: Clip
) -> None:
    async with aiohttp.ClientSession() as session:
        teacher, classroom = await lesson(session, cluster, "live", clip)
        node = cluster.placement("live")
        assert node is not None
        draining = cluster.sfu[node]
        os.kill(draining.proc.pid, signal.SIGTERM)

        def readyz() -> int:
            try:
                with urllib.request.urlopen(f"{draining.base}/readyz", timeout=1) as r:
                    return int(r.status)
            except urllib.error.HTTPError as exc:
                return int(exc.code)

        assert await wait_until(lambda: readyz() == 503, 5)
        await asyncio.sleep(1.2)  # one heartbeat carries the draining flag
        t2, c2 = await lesson(session, cluster, "new", clip)
        assert cluster.placement("new") != node
        # The live lesson goes on while the node drains.
        before = classroom.frames
        assert await wait_until(lambda: classroom.frames > before + 10, 10)
        assert draining.proc.poll() is None
        await teacher.close()
        await classroom.close()
        assert await wait_until(lambda: draining.proc.poll() is not None, 20), (
            "node exits once its lessons end"
        )
        assert draining.proc.returncode == 0
        await t2.close()
        await c2.close()


async def test_two_all_in_one_servers_on_redis_form_one_cluster(
    redis_url: str, tmp_path: Path, clip: Clip
) -> None:
    """`sanke serve` with REDIS_URL is signaling and an SFU node at once: media crosses them."""
    prefix = fresh_prefix()
    env = {
        "REDIS_URL": redis_url,
        "SANKE_KEY_PREFIX": prefix,
        "SANKE_TOKEN_SECRET": SECRET,
        "SANKE_RECORDS_KEY": "r" * 40,
        "SANKE_HOST": "127.0.0.1",
    }
    servers = [
        ServerProcess(
            ["serve"], {**env, "SANKE_NODE_ID": f"aio-{i}"}, free_port(), tmp_path / f"aio{i}.log"
        )
        for i in range(2)
    ]
    try:
        for server in servers:
            server.wait_ready()
        cluster = Cluster(servers, {}, redis_url, prefix)
        async with aiohttp.ClientSession() as session:
            teacher, classroom = await lesson(session, cluster, "aio", clip)
            assert cluster.placement("aio") in {"aio-0-sfu", "aio-1-sfu"}
            await teacher.close()
            await classroom.close()
    finally:
        for server in servers:
            server.stop()
        purge_prefix(redis_url, prefix)
