"""Rights that end across two real ``sanke signaling`` processes on the real Redis.

A token's ``exp`` closes a connection held by the other process than the teacher's, and a
device revoked through the scheduler process (which serves the devices API) is disconnected
from the signaling process at once (pub/sub), its already-issued join token refused.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support.harness import SECRET, Client
from support.processes import ServerProcess, free_port
from support.redis_helpers import fresh_prefix, purge_prefix, redis_url_or_skip

from contracts.rooms import Role
from contracts.store.redis import RedisStore
from lessons.models import LessonSession, RemoteClass
from lessons.repository import SessionRepository
from scheduler.demo import demo_district
from signaling.tokens import TokenService

pytestmark = pytest.mark.redis
TOKENS = TokenService(SECRET)
CLOSE_TOKEN_EXPIRED = 4005
CLOSE_REVOKED = 4006


class Cluster:
    def __init__(
        self, a: ServerProcess, b: ServerProcess, s: ServerProcess, url: str, prefix: str
    ) -> None:
        self.a, self.b, self.s, self.url, self.prefix = a, b, s, url, prefix


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    url = redis_url_or_skip()
    prefix = fresh_prefix()
    logs = tmp_path_factory.mktemp("rights")
    env = {
        "REDIS_URL": url,
        "SANKE_KEY_PREFIX": prefix,
        "SANKE_TOKEN_SECRET": SECRET,
        "SANKE_RECORDS_KEY": "r" * 40,
        "SANKE_TOKEN_LEEWAY_SECONDS": "0",
        "SANKE_HOST": "127.0.0.1",
    }
    servers = [
        ServerProcess(
            ["signaling"], {**env, "SANKE_NODE_ID": f"sig-{n}"}, free_port(), Path(logs) / n
        )
        for n in ("a", "b")
    ]
    # The schedule and devices APIs are the scheduler's (sanke signaling answers 404).
    servers.append(
        ServerProcess(["scheduler"], {**env, "SANKE_NODE_ID": "sch"}, free_port(), Path(logs) / "s")
    )
    try:
        for server in servers:
            server.wait_ready()
        yield Cluster(servers[0], servers[1], servers[2], url, prefix)
    finally:
        for server in servers:
            server.stop()
        purge_prefix(url, prefix)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


COORDINATOR = bearer(TOKENS.mint(subject="coord", role=Role.coordinator))


async def connect(session: aiohttp.ClientSession, server: ServerProcess) -> Client:
    return Client(await session.ws_connect(f"ws://127.0.0.1:{server.port}/ws"))


async def closed_with(client: Client, code: int, timeout: float = 5.0) -> None:
    while True:
        msg = await client.ws.receive(timeout=timeout)
        if msg.type is aiohttp.WSMsgType.TEXT:
            continue
        # The CLOSE frame carries the server's code (close_code may say 1006 when the
        # server has already dropped the TCP connection by the time the client answers).
        got = msg.data if msg.type is aiohttp.WSMsgType.CLOSE else client.ws.close_code
        assert got == code, (msg, client.inbox)
        return


async def create_room(session: aiohttp.ClientSession, server: ServerProcess, room: str) -> None:
    reply = await session.post(
        f"{server.base}/api/v1/rooms", json={"id": room}, headers=COORDINATOR
    )
    assert reply.status == 201, await reply.text()


async def test_a_token_expiring_on_one_process_tells_the_teacher_on_the_other(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    await create_room(http, cluster.a, "expiring")
    teacher = await connect(http, cluster.a)
    await teacher.join(TOKENS.mint(subject="t", role=Role.teacher, room="expiring"))
    viewer = await connect(http, cluster.b)
    await viewer.join(
        TOKENS.mint(subject="v", role=Role.viewer, room="expiring", expires=int(time.time()) + 2)
    )
    await teacher.expect("participant_joined")
    assert (await viewer.expect("error"))["code"] == "token_expired"
    await closed_with(viewer, CLOSE_TOKEN_EXPIRED)
    left = await teacher.expect("participant_left", participant_id=viewer.participant_id)
    assert left["reason"] == "expired"
    await teacher.close()


async def put_open_session(cluster: Cluster, sid: str) -> None:
    now = time.time()
    store = RedisStore(cluster.url, prefix=cluster.prefix)
    await store.start()
    try:
        await SessionRepository(store).put(
            LessonSession(
                id=sid,
                room_id=sid,
                teacher="张老师",
                subject="英语",
                master_school="xian-shiyan",
                date=time.strftime("%Y-%m-%d"),
                starts_at=now + 300,
                ends_at=now + 2700,
                opens_at=now - 300,
                closes_at=now + 3300,
                remotes=[RemoteClass(class_id="jd-1-g3", school="jd-1")],
            )
        )
    finally:
        await store.close()


async def test_a_device_revoked_through_one_process_is_cut_off_on_the_other(
    cluster: Cluster, http: aiohttp.ClientSession
) -> None:
    a, b, s = cluster.a, cluster.b, cluster.s
    reply = await http.put(
        f"{s.base}/api/v1/schedule/district",
        data=demo_district().model_dump_json(),
        headers={**COORDINATOR, "Content-Type": "application/json"},
    )
    assert reply.status == 200, await reply.text()
    await put_open_session(cluster, "eng.revoke")
    await create_room(http, a, "eng.revoke")
    reply = await http.post(
        f"{s.base}/api/v1/devices",
        json={"class_id": "jd-1-g3", "school": "jd-1", "name": "李庄 三年级"},
        headers=COORDINATOR,
    )
    assert reply.status == 201, await reply.text()
    registered: dict[str, Any] = await reply.json()
    credential = bearer(registered["credential"])
    reply = await http.post(f"{s.base}/api/v1/device/join", headers=credential)
    assert reply.status == 200, await reply.text()
    join_token = (await reply.json())["token"]

    teacher = await connect(http, a)
    await teacher.join(TOKENS.mint(subject="t2", role=Role.teacher, room="eng.revoke"))
    kiosk = await connect(http, b)
    await kiosk.join(join_token)
    await teacher.expect("participant_joined")

    started = time.monotonic()
    reply = await http.delete(
        f"{s.base}/api/v1/devices/{registered['device']['id']}", headers=COORDINATOR
    )
    assert reply.status == 200
    assert (await kiosk.expect("error", timeout=3))["code"] == "token_revoked"
    await closed_with(kiosk, CLOSE_REVOKED)
    assert time.monotonic() - started < 3, "pub/sub, not the periodic sweep"
    left = await teacher.expect("participant_left", participant_id=kiosk.participant_id)
    assert left["reason"] == "revoked"

    for server in (a, b):
        again = await connect(http, server)
        await again.send({"type": "join", "token": join_token})
        assert (await again.expect("error"))["code"] == "token_revoked"
        await again.close()
    reply = await http.post(f"{s.base}/api/v1/device/join", headers=credential)
    assert reply.status == 403
    await teacher.close()
