"""The Store core: all shared state of Sanke behind one small interface.

Two implementations: ``MemoryStore`` (embedded, one process) and ``RedisStore``
(distributed). Behaviour tests run against both. Keys are namespaced by a prefix
(``sanke:`` by default) so tests can use a fresh prefix each.

Values crossing this boundary are strings; each component's repository (rooms and
participants, lesson sessions, timetables, devices, media nodes) encodes its own pydantic
models and owns its keys, so the core knows no component.
"""

from __future__ import annotations

from contracts.store.base import Store, Subscription
from contracts.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store", "Subscription", "new_store", "open_store"]


def new_store(redis_url: str | None, prefix: str = "sanke:") -> Store:
    """The Redis store when a URL is given, else the in-memory one (not yet started)."""
    if redis_url:
        from contracts.store.redis import RedisStore

        return RedisStore(redis_url, prefix=prefix)
    return MemoryStore(prefix=prefix)


async def open_store(redis_url: str | None, prefix: str = "sanke:") -> Store:
    store = new_store(redis_url, prefix)
    await store.start()
    return store
