"""A task cancelled while its store command is in flight ends (contracts/store/redis_cancel.py).

redis-py swallowed about four in ten such cancellations here: the loop went on. Real Redis;
each trial cancels a loop of store commands at a random moment and waits for it to end.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.store.base import HSet
from contracts.store.redis import RedisStore

pytestmark = pytest.mark.redis
TRIALS = 150


async def test_a_cancelled_loop_of_store_commands_ends(redis_url: str) -> None:
    prefix = fresh_prefix()
    store = RedisStore(redis_url, prefix=prefix)
    went_on = 0
    try:
        for _ in range(TRIALS):

            async def beat() -> None:
                while True:
                    await store.set("lease", "node", ttl=5)
                    await store.get("lease")
                    await store.atomically([HSet("h", "f", "v")])

            task = asyncio.create_task(beat())
            await asyncio.sleep(random.uniform(0, 0.01))
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=2)
            if not done:
                went_on += 1
                task.cancel()
                await asyncio.wait({task}, timeout=2)
            else:
                assert task.cancelled()
        assert went_on == 0, f"{went_on} of {TRIALS} cancelled loops went on"
        # and the connections are still sound for the next caller
        await store.set("after", "ok")
        assert await store.get("after") == "ok"
    finally:
        await store.close()
        purge_prefix(redis_url, prefix)


async def test_cleanup_after_a_cancellation_can_still_use_the_store(redis_url: str) -> None:
    """A cancellation already delivered (cleanup in ``except CancelledError``) is not raised
    again by the next command."""
    prefix = fresh_prefix()
    store = RedisStore(redis_url, prefix=prefix)
    cleaned: list[str | None] = []

    async def worker() -> None:
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            await store.set("cleanup", "done")
            cleaned.append(await store.get("cleanup"))
            raise

    try:
        task = asyncio.create_task(worker())
        await asyncio.sleep(0.05)
        task.cancel()
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled() and cleaned == ["done"]
    finally:
        await store.close()
        purge_prefix(redis_url, prefix)
