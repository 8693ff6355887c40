"""A period start on Redis: many signaling processes place thousands of rooms at once.

    .venv/bin/python benchmarks/placement.py [--rooms 3400] [--placers 30] [--nodes 8]

A province opens ~3,400 lesson rooms within a minute of a period start, from many
signaling processes. ``--placers`` directories (each its own Redis connection, as separate
processes have) place their share concurrently over ``--nodes`` SFU nodes whose capacity
is 10 % short of the rooms, so placement must refuse the excess and fill every node
exactly. Side by side in one run:

- **stale counts** (the previous release): each process chose the node with the most free
  slots from placement counts it had read up to 0.5 s before, then ``HSETNX``;
- **atomic slots** (now): one Lua script checks capacity and claims the slot.

Prints per method: wall time, placements/s, the busiest node's rooms over its capacity
(overfill), and the spread (largest deviation from an even share among the placed rooms).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter

from contracts.nodes import PLACEMENTS, NodeDirectory, NodeInfo, node_key
from contracts.store.redis import RedisStore

STALE_SECONDS = 0.5


class StaleCountPlacer:
    """The previous release's placement, kept here as the baseline."""

    def __init__(self, store: RedisStore) -> None:
        self.store = store
        self.directory = NodeDirectory(store)
        self._placed: tuple[float, Counter[str]] | None = None

    async def assign(self, room: str) -> str | None:
        current = await self.store.hget(PLACEMENTS, room)
        if current is not None:
            return current
        now = time.monotonic()
        if self._placed is None or now - self._placed[0] > STALE_SECONDS:
            self._placed = (now, Counter(n for _, n in await self.directory.placements()))
        placed = self._placed[1]
        free = {n.id: n.capacity - placed[n.id] for n in await self.directory.live_nodes()}
        candidates = [(f, n) for n, f in free.items() if f > 0]
        if not candidates:
            return None
        best = max(candidates)[1]
        if await self.store.hsetnx(PLACEMENTS, room, best):
            placed[best] += 1
            return best
        return await self.store.hget(PLACEMENTS, room)


class AtomicPlacer:
    def __init__(self, store: RedisStore) -> None:
        self.directory = NodeDirectory(store)

    async def assign(self, room: str) -> str | None:
        try:
            return await self.directory.assign(room)
        except Exception:
            return None


async def run(method: str, args: argparse.Namespace) -> dict[str, float]:
    prefix = f"sanke-bench-{uuid.uuid4().hex[:8]}:"
    stores = [RedisStore(args.redis, prefix=prefix) for _ in range(args.placers)]
    capacity = int(args.rooms * 0.9) // args.nodes
    try:
        for store in stores:
            await store.start()
            await store.ping()
        for k in range(args.nodes):
            info = NodeInfo(id=f"sfu-{k}", capacity=capacity)
            await stores[0].set(node_key(info.id), info.model_dump_json(), ttl=120)
        placers = [
            StaleCountPlacer(s) if method == "stale counts" else AtomicPlacer(s) for s in stores
        ]
        rooms = [f"lesson-{k}" for k in range(args.rooms)]
        t0 = time.perf_counter()

        async def share(index: int) -> list[str | None]:
            return [await placers[index].assign(room) for room in rooms[index :: args.placers]]

        results = await asyncio.gather(*(share(i) for i in range(args.placers)))
        wall = time.perf_counter() - t0
    finally:
        keys = await stores[0]._redis.keys(prefix + "*")
        if keys:
            await stores[0]._redis.delete(*keys)
        for store in stores:
            await store.close()
    per_node = Counter(node for result in results for node in result if node is not None)
    placed = sum(per_node.values())
    even = placed / args.nodes
    return {
        "wall_s": wall,
        "per_s": args.rooms / wall,
        "placed": placed,
        "overfill": max(per_node.values()) - capacity,
        "spread_pct": max(abs(n - even) for n in per_node.values()) / even * 100,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=3400)
    parser.add_argument("--placers", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    rows = {method: await run(method, args) for method in ("stale counts", "atomic slots")}
    capacity = int(args.rooms * 0.9) // args.nodes
    print(
        f"{args.rooms} rooms from {args.placers} placers over {args.nodes} nodes "
        f"of capacity {capacity} ({capacity * args.nodes} slots)"
    )
    print(
        f"{'method':<14}{'wall s':>9}{'rooms/s':>10}{'placed':>8}{'overfill':>10}{'spread %':>10}"
    )
    for method, r in rows.items():
        print(
            f"{method:<14}{r['wall_s']:>9.2f}{r['per_s']:>10.0f}{r['placed']:>8.0f}"
            f"{r['overfill']:>10.0f}{r['spread_pct']:>10.1f}"
        )
    old, new = rows["stale counts"], rows["atomic slots"]
    print(
        f"RESULT placement rooms={args.rooms} placers={args.placers} nodes={args.nodes} "
        f"overfill={new['overfill']:.0f} spread_pct={new['spread_pct']:.1f} "
        f"stale_overfill={old['overfill']:.0f} stale_spread_pct={old['spread_pct']:.1f} "
        f"rate_ratio={new['per_s'] / old['per_s']:.2f}"
    )


if __name__ == "__main__":
    asyncio.run(main())
