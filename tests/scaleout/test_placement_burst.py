"""A period start: many signaling processes place rooms at the same moment (real Redis).

Three real processes each place their share of 200 new rooms concurrently over three SFU
nodes. Placement reserves a slot atomically against capacity, so the rooms spread evenly
and no node ever takes more than its capacity, however the calls interleave.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.nodes import PLACED_COUNT, PLACEMENTS, NodeDirectory, NodeInfo, node_key
from contracts.store.redis import RedisStore

pytestmark = [pytest.mark.redis]
PLACER = Path(__file__).parents[1] / "support" / "place_rooms.py"
NODES = ("sfu-a", "sfu-b", "sfu-c")


@pytest.fixture
async def prefixed(redis_url: str) -> AsyncIterator[tuple[RedisStore, str]]:
    prefix = fresh_prefix()
    store = RedisStore(redis_url, prefix=prefix)
    await store.start()
    try:
        yield store, prefix
    finally:
        await store.close()
        purge_prefix(redis_url, prefix)


async def register(store: RedisStore, capacity: int) -> None:
    # A long TTL stands in for the nodes' heartbeats for the few seconds of the burst.
    for node in NODES:
        info = NodeInfo(id=node, capacity=capacity)
        await store.set(node_key(node), info.model_dump_json(), ttl=60)


def burst(url: str, prefix: str, rooms: list[str], processes: int) -> dict[str, str | None]:
    """Every process starts placing at the same wall-clock moment; all their results."""
    start_at = time.time() + 1.5  # after every interpreter has started and connected
    shares = [rooms[k::processes] for k in range(processes)]
    procs = [
        subprocess.Popen(
            [sys.executable, str(PLACER), url, prefix, str(start_at), *share],
            stdout=subprocess.PIPE,
            text=True,
        )
        for share in shares
    ]
    placed: dict[str, str | None] = {}
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        placed.update(json.loads(out))
    return placed


async def test_200_rooms_from_3_processes_spread_over_3_nodes(
    prefixed: tuple[RedisStore, str], redis_url: str
) -> None:
    store, prefix = prefixed
    await register(store, capacity=100)
    rooms = [f"lesson-{k}" for k in range(200)]
    placed = await asyncio.to_thread(burst, redis_url, prefix, rooms, 3)
    per_node = Counter(placed.values())
    assert None not in per_node, "every room fits: 300 slots for 200 rooms"
    fair = len(rooms) / len(NODES)
    assert all(abs(per_node[n] - fair) <= 0.2 * fair for n in NODES), per_node
    # What every process was told is what the store holds, and the counts agree with it.
    assert dict(await store.hgetall(PLACEMENTS)) == placed
    directory = NodeDirectory(store)
    assert await directory.placed_count() == dict(per_node)


async def test_a_burst_beyond_capacity_fills_every_node_exactly_and_refuses_the_rest(
    prefixed: tuple[RedisStore, str], redis_url: str
) -> None:
    store, prefix = prefixed
    await register(store, capacity=50)
    rooms = [f"lesson-{k}" for k in range(200)]
    placed = await asyncio.to_thread(burst, redis_url, prefix, rooms, 3)
    per_node = Counter(node for node in placed.values() if node is not None)
    assert per_node == {n: 50 for n in NODES}, per_node
    refused = [room for room, node in placed.items() if node is None]
    assert len(refused) == 50
    stored = await store.hgetall(PLACEMENTS)
    assert len(stored) == 150 and not set(refused) & set(stored)
    assert await store.hgetall(PLACED_COUNT) == {n: "50" for n in NODES}
