"""Reading every room placement (what placing a room and a reaper round need), on Redis.

    .venv/bin/python benchmarks/placement.py [--rooms 3400] [--redis URL]

A province opens ~3,400 lesson rooms at a period start. The baseline is the layout before
the placements hash: one key per room, read with a key scan and one GET each; the new layout
is one hash read with HGETALL (``NodeDirectory.placements``). A fresh key prefix, removed
afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from signaling.nodes import PLACED_COUNT_SECONDS, PLACEMENTS, NodeDirectory
from signaling.store.redis import RedisStore


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rooms", type=int, default=3400)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    prefix = f"sanke-bench-{uuid.uuid4().hex[:8]}:"
    store = RedisStore(args.redis, prefix=prefix)
    await store.start()
    directory = NodeDirectory(store)
    try:
        for k in range(args.rooms):
            await store.set(f"room-node:lesson-{k}", f"sfu-{k % 8}")
            await store.hsetnx(PLACEMENTS, f"lesson-{k}", f"sfu-{k % 8}")
        scan, hashed = [], []
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            old = {}
            for key in await store.keys("room-node:*"):
                node = await store.get(key)
                if node is not None:
                    old[key.removeprefix("room-node:")] = node
            scan.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            new = dict(await directory.placements())
            hashed.append(time.perf_counter() - t0)
            assert old == new
    finally:
        keys = await store._redis.keys(prefix + "*")
        if keys:
            await store._redis.delete(*keys)
        await store.close()
    s, h = min(scan), min(hashed)
    print(f"{args.rooms} placed rooms on Redis, best of {args.rounds}")
    print(f"{'layout':<28}{'read all placements s':>22}")
    print(f"{'key per room (scan + GETs)':<28}{s:>22.4f}")
    print(f"{'one hash (HGETALL)':<28}{h:>22.4f}")
    print(
        f"placing {args.rooms} rooms at a period start: before, every placement read every "
        f"placement ({s * args.rooms:.0f} s of reads); now a process reads them at most every "
        f"{PLACED_COUNT_SECONDS} s ({h / PLACED_COUNT_SECONDS * 100:.0f} % of a core at most)"
    )
    print(f"RESULT placement rooms={args.rooms} scan_s={s:.4f} hash_s={h:.4f} speedup={s / h:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
