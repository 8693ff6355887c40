"""The real Redis for tests: its URL, fresh key prefixes, and cleaning up after them."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_url_or_skip() -> str:
    """REDIS_URL (set by `make test`); unset and nothing on 6379 → the Redis tests skip."""
    url = os.environ.get("REDIS_URL")
    try:
        redis.Redis.from_url(url or DEFAULT_REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        if url:
            pytest.fail(f"REDIS_URL={url} does not answer")
        pytest.skip("no Redis: run through `make test` or set REDIS_URL")
    return url or DEFAULT_REDIS_URL


def fresh_prefix() -> str:
    return f"sanke-test-{uuid.uuid4().hex[:10]}:"


def purge_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    keys = list(client.scan_iter(match=prefix + "*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()
