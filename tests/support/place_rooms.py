"""One signaling process's share of a period start: place rooms all at once.

    python place_rooms.py REDIS_URL PREFIX START_AT ROOM...

Waits until the wall clock reaches START_AT (so several processes start together), places
every room concurrently through ``NodeDirectory.assign`` on the real Redis, and prints one
JSON line: room -> node, or null where placement was refused.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from contracts.errors import SankeError
from contracts.nodes import NodeDirectory
from contracts.store.redis import RedisStore


async def place(directory: NodeDirectory, room: str) -> str | None:
    try:
        return await directory.assign(room)
    except SankeError:
        return None


async def main(url: str, prefix: str, start_at: float, rooms: list[str]) -> None:
    store = RedisStore(url, prefix=prefix)
    await store.start()
    directory = NodeDirectory(store)
    await store.ping()  # connect before the start, as a running process already is
    await asyncio.sleep(max(0.0, start_at - time.time()))
    placed = await asyncio.gather(*(place(directory, room) for room in rooms))
    await store.close()
    print(json.dumps(dict(zip(rooms, placed, strict=True))))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]))
