"""A distributed deployment of real processes for tests: ``sanke sfu`` nodes and ``sanke
signaling`` processes on one Redis, and lessons of real aiortc clients through them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import redis

from contracts.nodes import NodeInfo, node_key
from contracts.rooms import Role
from signaling.tokens import TokenService
from support.clips import Clip
from support.harness import SECRET
from support.processes import ServerProcess, free_port
from support.rtc_client import RtcClient

TOKENS = TokenService(SECRET)
COORDINATOR = TOKENS.mint(subject="coord", role=Role.coordinator)


@dataclass
class Cluster:
    signaling: list[ServerProcess]
    sfu: dict[str, ServerProcess]
    redis_url: str
    prefix: str

    def _redis(self) -> redis.Redis:
        return redis.Redis.from_url(self.redis_url, socket_connect_timeout=1)

    def placement(self, room: str) -> str | None:
        with self._redis() as client:
            value = client.hget(f"{self.prefix}h:media:placements", room)
        return value.decode() if isinstance(value, bytes) else None

    def node(self, node_id: str) -> NodeInfo | None:
        """The SFU node as it registered itself (rooms and peer connections it hosts)."""
        with self._redis() as client:
            raw = client.get(self.prefix + node_key(node_id))
        return NodeInfo.model_validate_json(raw) if isinstance(raw, bytes) else None

    def ws(self, index: int) -> str:
        return f"ws://127.0.0.1:{self.signaling[index].port}/ws"

    def outputs(self) -> dict[str, str]:
        named = {f"sig{i}": p for i, p in enumerate(self.signaling)} | self.sfu
        return {name: process.output() for name, process in named.items()}


def cluster_env(redis_url: str, prefix: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis_url,
        "SANKE_KEY_PREFIX": prefix,
        "SANKE_TOKEN_SECRET": SECRET,
        "SANKE_RECORDS_KEY": "r" * 40,
        "SANKE_HOST": "127.0.0.1",
        "SANKE_SFU_CAPACITY": "2",
        "SANKE_DRAIN_GRACE_SECONDS": "60",
    }


@contextmanager
def running_cluster(
    redis_url: str,
    prefix: str,
    logs: Path,
    sfu_names: tuple[str, ...] = ("sfu-a", "sfu-b"),
    signaling_count: int = 2,
    sfu_env: dict[str, str] | None = None,
    node_env: dict[str, dict[str, str]] | None = None,
) -> Iterator[Cluster]:
    """SFU nodes ``sfu_names`` (with ``sfu_env``, and ``node_env`` of its name, added to
    their environment) and
    ``signaling_count`` signaling processes, ready; stopped afterwards (the caller owns the
    Redis keys under ``prefix``)."""
    env = cluster_env(redis_url, prefix)
    sfu = {
        name: ServerProcess(
            ["sfu"],
            {**env, **(sfu_env or {}), **(node_env or {}).get(name, {}), "SANKE_NODE_ID": name},
            free_port(),
            logs / f"{name}.log",
        )
        for name in sfu_names
    }
    signaling = [
        ServerProcess(
            ["signaling"], {**env, "SANKE_NODE_ID": f"sig-{i}"}, free_port(), logs / f"sig{i}.log"
        )
        for i in range(signaling_count)
    ]
    processes = [*sfu.values(), *signaling]
    try:
        for process in processes:
            # Four processes importing aiortc at once on a busy 2-core machine take a while.
            process.wait_ready(timeout=60)
        yield Cluster(signaling, sfu, redis_url, prefix)
    finally:
        for process in processes:
            process.stop()


async def create_room(session: aiohttp.ClientSession, cluster: Cluster, room: str) -> None:
    reply = await session.post(
        f"{cluster.signaling[0].base}/api/v1/rooms",
        json={"id": room},
        headers={"Authorization": f"Bearer {COORDINATOR}"},
    )
    assert reply.status == 201


async def wait_until(predicate: Callable[[], object], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return bool(predicate())


async def lesson(
    session: aiohttp.ClientSession, cluster: Cluster, room: str, clip: Clip
) -> tuple[RtcClient, RtcClient]:
    """A teacher publishing through signaling 0 and a classroom watching through signaling 1."""
    await create_room(session, cluster, room)
    teacher = RtcClient(
        session, cluster.ws(0), TOKENS.mint(subject=f"t-{room}", role=Role.teacher, room=room), clip
    )
    classroom = RtcClient(
        session, cluster.ws(1), TOKENS.mint(subject=f"c-{room}", role=Role.classroom, room=room)
    )
    await asyncio.gather(teacher.start(), classroom.start())
    assert await wait_until(lambda: classroom.frames > 5, 20), (classroom.inbox, classroom.errors)
    return teacher, classroom
