"""Shared fixtures: the real Redis, both stores, a running signaling app."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator

import pytest
from support.redis_helpers import fresh_prefix, purge_prefix, redis_url_or_skip

# A test's server keeps its files (recordings, HLS, keys) under a data directory of the
# test run's own, never in the user's ~/.local/share/sanke (servers started as subprocesses
# inherit it). A test that needs one of its own sets XDG_DATA_HOME itself.
os.environ.setdefault("XDG_DATA_HOME", tempfile.mkdtemp(prefix="sanke-test-data-"))


@pytest.fixture
def redis_url() -> str:
    return redis_url_or_skip()


@pytest.fixture(params=["memory", "redis"])
async def store(request: pytest.FixtureRequest) -> AsyncIterator[object]:
    """Each store implementation; the Redis one under a fresh prefix, purged afterwards."""
    from contracts.store import MemoryStore, Store
    from contracts.store.redis import RedisStore

    instance: Store
    if request.param == "memory":
        instance = MemoryStore(prefix=fresh_prefix())
        await instance.start()
        yield instance
        await instance.close()
        return
    url = redis_url_or_skip()
    prefix = fresh_prefix()
    instance = RedisStore(url, prefix=prefix)
    await instance.start()
    try:
        yield instance
    finally:
        await instance.close()
        purge_prefix(url, prefix)
