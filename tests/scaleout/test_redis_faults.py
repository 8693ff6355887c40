"""Redis faults against real processes and a throwaway redis-server of the test's own.

Redis unreachable → ``/readyz`` answers 503 with a JSON error naming the cause; when Redis
is back the same processes are ready again by themselves.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from support.processes import ServerProcess, free_port

pytestmark = [pytest.mark.redis]
SECRET = "faults-secret-" + "f" * 32


class ThrowawayRedis:
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None


@pytest.fixture
def throwaway(tmp_path: Path) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis(tmp_path, "--appendonly", "yes")
    server.start()
    yield server
    server.stop()


def readyz(base: str) -> tuple[int, dict[str, object]]:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def wait_status(base: str, status: int, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while True:
        code, body = readyz(base)
        if code == status:
            return body
        assert time.monotonic() < deadline, (code, body)
        time.sleep(0.2)


def test_readyz_is_503_while_redis_is_down_and_recovers_by_itself(
    throwaway: ThrowawayRedis, tmp_path: Path
) -> None:
    env = {
        "REDIS_URL": throwaway.url,
        "SANKE_TOKEN_SECRET": SECRET,
        "SANKE_RECORDS_KEY": "r" * 40,
        "SANKE_HOST": "127.0.0.1",
        "SANKE_NODE_ID": "sig-faults",
    }
    server = ServerProcess(["signaling"], env, free_port(), tmp_path / "sig.log")
    try:
        server.wait_ready()
        throwaway.stop()
        body = wait_status(server.base, 503, 10)
        error = body["error"]
        assert isinstance(error, dict) and error["code"] == "internal", body
        assert "store" in error["message"], body
        throwaway.start()  # same port, same AOF directory
        assert wait_status(server.base, 200, 10)["status"] == "ready"
        assert server.proc.poll() is None
        assert "Traceback" not in server.output(), server.output()
    finally:
        server.stop()
