"""Redis faults against real processes and a throwaway redis-server of the test's own.

Redis unreachable → ``/readyz`` and requests that need the store answer 503 with a JSON
error naming the cause (no traceback); when Redis is back the same processes are ready
again by themselves. Restarts mid-lesson: test_redis_restart.py.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import aiohttp
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


def server_env(redis: ThrowawayRedis, node_id: str) -> dict[str, str]:
    return {
        "REDIS_URL": redis.url,
        "SANKE_TOKEN_SECRET": SECRET,
        "SANKE_RECORDS_KEY": "r" * 40,
        "SANKE_HOST": "127.0.0.1",
        "SANKE_NODE_ID": node_id,
    }


def test_readyz_is_503_while_redis_is_down_and_recovers_by_itself(
    throwaway: ThrowawayRedis, tmp_path: Path
) -> None:
    env = server_env(throwaway, "sig-faults")
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


async def _receive(
    ws: aiohttp.ClientWebSocketResponse, kind: str, timeout: float
) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data)
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] == kind:
            return data


def test_a_connection_closed_while_redis_is_down_leaves_the_room_once_it_is_back(
    throwaway: ThrowawayRedis, tmp_path: Path
) -> None:
    env = server_env(throwaway, "serve-faults")
    server = ServerProcess(["serve"], env, free_port(), tmp_path / "serve.log")
    tokens = TokenService(SECRET)
    admin = {"Authorization": f"Bearer {tokens.mint(subject='a', role=Role.admin)}"}

    async def scenario() -> None:
        ws_url = server.base.replace("http", "ws", 1) + "/ws"
        async with aiohttp.ClientSession() as http:
            reply = await http.post(
                server.base + "/api/v1/rooms", json={"id": "r-out", "name": "r"}, headers=admin
            )
            assert reply.status == 201, await reply.text()

            async def join(who: str, role: Role) -> tuple[aiohttp.ClientWebSocketResponse, str]:
                ws = await http.ws_connect(ws_url)
                token = tokens.mint(subject=who, role=role, room="r-out")
                await ws.send_json({"type": "join", "token": token})
                return ws, str((await _receive(ws, "joined", 10))["participant_id"])

            async def listed() -> set[str]:
                async with http.get(server.base + "/api/v1/rooms/r-out", headers=admin) as r:
                    if r.status != 200:
                        return {"?"}
                    return {p["id"] for p in (await r.json())["participants"]}

            # the teacher is told about viewers (signaling/visibility.py)
            watcher, watcher_id = await join("teacher", Role.teacher)
            leaver, leaver_id = await join("viewer", Role.viewer)
            assert await listed() == {watcher_id, leaver_id}
            throwaway.stop()
            await asyncio.to_thread(wait_status, server.base, 503, 10)
            await leaver.close()  # its removal cannot reach the store now
            await asyncio.sleep(1.0)
            throwaway.start()
            await asyncio.to_thread(wait_status, server.base, 200, 10)
            for _ in range(50):
                if await listed() == {watcher_id}:
                    break
                await asyncio.sleep(0.2)
            assert await listed() == {watcher_id}
            left = await _receive(watcher, "participant_left", 10)
            assert left["participant_id"] == leaver_id
            await watcher.close()

    try:
        server.wait_ready()
        asyncio.run(scenario())
        assert "Traceback" not in server.output(), server.output()
    finally:
        server.stop()
