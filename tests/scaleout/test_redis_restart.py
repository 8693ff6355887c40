"""Redis restarted mid-lesson, with its data (AOF) and empty, under real processes.

Two SFU nodes and two signaling processes on a redis-server of the test's own; a real aiortc
teacher publishes a clip through one signaling process, a classroom receives it through the
other. Redis stops for longer than a media node's heartbeat TTL and comes back. Media never
goes through Redis, so the classroom's frames keep coming; the room's participants and its
placement are back within 10 s (written back from the processes' memory when Redis came back
empty); a classroom joining afterwards reaches the node that hosts the lesson; and no request
the test makes gets a 5xx but ``/readyz``'s documented 503 while Redis is down.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.clips import Clip
from support.cluster import COORDINATOR, TOKENS, Cluster, lesson, running_cluster, wait_until
from support.redis_helpers import ThrowawayRedis, fresh_prefix
from support.rtc_client import RtcClient

from contracts.rooms import Role

pytestmark = [pytest.mark.redis, pytest.mark.slow]
ROOM = "restart"
# Longer than a media node's heartbeat TTL (3 s): the node keys expire even in an AOF.
DOWN_SECONDS = 4.0
RECONCILE_SECONDS = 10.0
# Frames arrive 30 a second; Redis is not on the media path, so a longer gap is a fault.
MAX_FRAME_GAP_SECONDS = 1.0


@dataclass
class Requests:
    """Every HTTP request the test makes: path, status, and whether Redis was down."""

    session: aiohttp.ClientSession
    made: list[tuple[str, int, bool]] = field(default_factory=list)
    redis_down: bool = False

    async def get(self, url: str, token: str | None = None) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.get(url, headers=headers) as reply:
            body = await reply.json()
            self.made.append((url.split("/", 3)[-1], reply.status, self.redis_down))
            return reply.status, body

    def server_errors(self) -> list[tuple[str, int, bool]]:
        """5xx answers but /readyz's 503 while Redis was down (its documented answer)."""
        return [
            (path, status, down)
            for path, status, down in self.made
            if status >= 500 and not (path == "readyz" and status == 503 and down)
        ]


async def listed(requests: Requests, cluster: Cluster, index: int) -> set[str]:
    """The participant ids signaling ``index`` lists in the room (none if it has no room)."""
    status, body = await requests.get(
        f"{cluster.signaling[index].base}/api/v1/rooms/{ROOM}", COORDINATOR
    )
    if status != 200:
        assert status == 404, body  # a room not written back yet: a 4xx, not a 5xx
        return set()
    return {p["id"] for p in body["participants"]}


def longest_gap(times: list[float], start: float, end: float) -> tuple[float, float]:
    """The longest time without a frame between ``start`` and ``end``, and when it began
    (seconds after ``start``)."""
    moments = [start, *(t for t in times if start < t < end), end]
    gap, began = max((b - a, a) for a, b in itertools.pairwise(moments))
    return gap, began - start


async def restart_mid_lesson(
    throwaway: ThrowawayRedis, logs: Path, clip: Clip, *, empty: bool
) -> None:
    with running_cluster(throwaway.url, fresh_prefix(), logs) as cluster:
        async with aiohttp.ClientSession() as session:
            requests = Requests(session)
            teacher, classroom = await lesson(session, cluster, ROOM, clip)
            present = {teacher.participant_id, classroom.participant_id}
            host = cluster.placement(ROOM)
            assert host in cluster.sfu
            other = next(node for node in cluster.sfu if node != host)
            assert await listed(requests, cluster, 0) == present
            # A second of steady media first: the gap measured is the fault's, not the start's.
            steady = classroom.frames + 30
            assert await wait_until(lambda: classroom.frames >= steady, 20)  # a busy machine

            # Off the event loop: it also runs the classroom's receiver, whose gaps we measure.
            stopped_at = time.monotonic()
            await asyncio.to_thread(throwaway.stop)
            if empty:
                throwaway.wipe()
            requests.redis_down = True
            ready_codes = []
            while time.monotonic() < stopped_at + DOWN_SECONDS:
                for process in cluster.signaling:
                    code, _ = await requests.get(process.base + "/readyz")
                    ready_codes.append(code)
                await asyncio.sleep(0.25)
            assert 503 in ready_codes, ready_codes
            await asyncio.to_thread(throwaway.start)
            back_at = time.monotonic()
            requests.redis_down = False

            # Each signaling process lists both participants again (the one that holds the
            # teacher's connection and the one that holds the classroom's wrote them back).
            for index in range(len(cluster.signaling)):
                while await listed(requests, cluster, index) != present:
                    assert time.monotonic() < back_at + RECONCILE_SECONDS, cluster.outputs()
                    await asyncio.sleep(0.2)
            reconciled = time.monotonic() - back_at
            assert await wait_until(
                lambda: cluster.placement(ROOM) == host,
                back_at + RECONCILE_SECONDS - time.monotonic(),
            ), (cluster.placement(ROOM), cluster.outputs())
            for process in cluster.signaling:
                assert (await requests.get(process.base + "/readyz"))[0] == 200

            # A classroom joining now reaches the node that hosts the lesson.
            newcomer = RtcClient(
                session,
                cluster.ws(0),
                TOKENS.mint(subject="c-late", role=Role.classroom, room=ROOM),
            )
            await newcomer.start()
            assert await wait_until(lambda: newcomer.frames > 5, 20), (
                newcomer.errors,
                newcomer.inbox[-5:],
                cluster.outputs(),
            )
            assert cluster.placement(ROOM) == host
            assert await wait_until(
                lambda: (info := cluster.node(host)) is not None and info.participants == 3, 5
            ), cluster.node(host)
            assert (info := cluster.node(other)) is not None and info.participants == 0, info

            gap, began = longest_gap(classroom.frame_times, stopped_at, time.monotonic())
            print(
                f"\nredis restarted {'empty' if empty else 'with its data'}: participants back "
                f"{reconciled:.2f} s after redis, longest frame gap {gap:.2f} s"
            )
            timeline = {"gap_began": began, "redis_back": back_at - stopped_at}
            assert gap < MAX_FRAME_GAP_SECONDS, (gap, timeline, classroom.inbox[-5:])
            # Nobody left, nobody was moved: the lesson went on where it was.
            for client in (teacher, classroom):
                kinds = {m["type"] for m in client.inbox}
                assert not kinds & {"participant_left", "rejoin", "error"}, client.inbox[-5:]
            assert not requests.server_errors(), requests.server_errors()
            for client in (teacher, classroom, newcomer):
                await client.close()
    # The whole logs, shutdown included: a loop that died of the outage shows up there.
    for process in [*cluster.signaling, *cluster.sfu.values()]:
        output = process.log_path.read_text(errors="replace")
        assert "Traceback" not in output, (process.log_path.name, output[-6000:])


async def test_redis_restarted_with_its_data_mid_lesson(
    throwaway: ThrowawayRedis, tmp_path: Path, clip: Clip
) -> None:
    await restart_mid_lesson(throwaway, tmp_path, clip, empty=False)


async def test_redis_restarted_empty_mid_lesson(
    throwaway: ThrowawayRedis, tmp_path: Path, clip: Clip
) -> None:
    await restart_mid_lesson(throwaway, tmp_path, clip, empty=True)
