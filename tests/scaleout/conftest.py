"""Fixtures of the scale-out tests: the teacher's clip, a Redis server of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.clips import Clip, load_clip, make_clip
from support.redis_helpers import ThrowawayRedis


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    return load_clip(make_clip(tmp_path_factory.mktemp("clip"), "teacher.ts"), "video")


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    """A redis-server with AOF (as docs/operations.md recommends) that a test may stop."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = ThrowawayRedis(directory, "--appendonly", "yes")
    server.start()
    yield server
    server.stop()
