"""The real Redis for tests: its URL, fresh key prefixes, and cleaning up after them."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import redis

from support.processes import free_port

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


class ThrowawayRedis:
    """A redis-server of the test's own (its port, its data directory), to stop, restart
    with its data and restart empty."""

    def __init__(self, directory: Path, *args: str) -> None:
        self.port = free_port()
        self.dir = directory
        self.args = args
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", str(self.dir), *self.args],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping()
                return
            except redis.RedisError:
                time.sleep(0.05)
        raise TimeoutError("throwaway redis-server did not start")

    def stop(self) -> None:
        """SIGTERM: Redis writes its AOF out before it exits."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def wipe(self) -> None:
        """Remove its data (while stopped): the next start is an empty Redis."""
        assert self.proc is None, "stop it first"
        shutil.rmtree(self.dir)
        self.dir.mkdir()
