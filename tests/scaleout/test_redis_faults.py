"""Redis faults against real processes and a throwaway redis-server of the test's own.

Redis unreachable → ``/readyz`` and requests that need the store answer 503 with a JSON
error naming the cause (no traceback); when Redis is back the same processes are ready
again by themselves. Restarts mid-lesson: test_redis_restart.py.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from support.processes import ServerProcess, free_port
from support.redis_helpers import ThrowawayRedis

from contracts.rooms import Role
from signaling.tokens import TokenService

pytestmark = [pytest.mark.redis]
SECRET = "faults-secret-" + "f" * 32


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
        # A request that needs the store: the same 503 and JSON error, not a 500.
        coordinator = TokenService(SECRET).mint(subject="coord", role=Role.coordinator)
        request = urllib.request.Request(
            server.base + "/api/v1/rooms", headers={"Authorization": f"Bearer {coordinator}"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=5)
        assert refused.value.code == 503
        assert refused.value.headers["Retry-After"] == "2"
        assert json.loads(refused.value.read())["error"]["code"] == "internal"
        throwaway.start()  # same port, same AOF directory
        assert wait_status(server.base, 200, 10)["status"] == "ready"
        assert server.proc.poll() is None
        assert "Traceback" not in server.output(), server.output()
    finally:
        server.stop()
