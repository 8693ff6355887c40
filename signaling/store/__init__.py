"""The Store: all shared state of Sanke behind one interface.

Two implementations: ``MemoryStore`` (embedded, one process) and ``RedisStore``
(distributed). Behaviour tests run against both. Keys are namespaced by a prefix
(``sanke:`` by default) so tests can use a fresh prefix each.

Values crossing this boundary are pydantic models (rooms, participants, lesson
sessions) or strings that the caller encodes from its own models.
"""

from __future__ import annotations

from signaling.store.base import Store, Subscription
from signaling.store.memory import MemoryStore

__all__ = ["MemoryStore", "Store", "Subscription", "new_store", "open_store"]


def new_store(redis_url: str | None, prefix: str = "sanke:") -> Store:
    """The Redis store when a URL is given, else the in-memory one (not yet started)."""
    if redis_url:
        from signaling.store.redis import RedisStore

        return RedisStore(redis_url, prefix=prefix)
    return MemoryStore(prefix=prefix)


async def open_store(redis_url: str | None, prefix: str = "sanke:") -> Store:
    store = new_store(redis_url, prefix)
    await store.start()
    return store
