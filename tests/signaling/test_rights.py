"""Rights that end, in one process: a token's ``exp`` and a device's revocation close live
connections, and a revoked device's already-issued join token no longer joins.

The same across two real signaling processes: tests/signaling/test_rights_two_processes.py.
"""

from __future__ import annotations

import time
from typing import Any

import aiohttp
from support.harness import Client, Harness, running_app

from contracts.rooms import Role
from lessons.models import LessonSession, RemoteClass
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository

CLOSE_TOKEN_EXPIRED = 4005
CLOSE_REVOKED = 4006


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


def open_lesson(sid: str = "eng.now") -> LessonSession:
    now = time.time()
    return LessonSession(
        id=sid,
        room_id=sid,
        teacher="张老师",
        subject="英语",
        master_school="xian-shiyan",
        date=time.strftime("%Y-%m-%d"),
        starts_at=now + 60,
        ends_at=now + 2460,
        opens_at=now - 540,
        closes_at=now + 3060,
        remotes=[RemoteClass(class_id="jd-1-g3", school="jd-1")],
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_viewer_is_closed_when_its_token_expires_and_the_room_is_told() -> None:
    async with running_app(token_leeway_seconds=0) as h:
        await h.room("r1")
        teacher = await h.joined(Role.teacher, "r1")
        viewer = await h.connect()
        await viewer.join(
            h.tokens.mint(subject="v", role=Role.viewer, room="r1", expires=int(time.time()) + 2)
        )
        await teacher.expect("participant_joined")
        error = await viewer.expect("error", timeout=5)
        assert error["code"] == "token_expired"
        await closed_with(viewer, CLOSE_TOKEN_EXPIRED)
        left = await teacher.expect("participant_left", participant_id=viewer.participant_id)
        assert left["reason"] == "expired"
        assert [p.role for p in await h.rooms.list_participants("r1")] == [Role.teacher]
        await teacher.send({"type": "ping"})
        assert await teacher.expect("pong")


async def registered_device(h: Harness) -> tuple[str, str]:
    """A device of class jd-1-g3 (its district uploaded); its id and credential."""
    await TimetableRepository(h.store).put_district(demo_district())
    coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
    reply = await h.session.post(
        h.url("/api/v1/devices"),
        json={"class_id": "jd-1-g3", "school": "jd-1", "name": "李庄 三年级"},
        headers=bearer(coordinator),
    )
    assert reply.status == 201, await reply.text()
    body: dict[str, Any] = await reply.json()
    return body["device"]["id"], body["credential"]


async def test_a_revoked_kiosk_is_disconnected_and_its_join_token_no_longer_joins() -> None:
    async with running_app() as h:
        session = open_lesson()
        await h.sessions.put(session)
        await h.room(session.room_id)
        device_id, credential = await registered_device(h)
        reply = await h.session.post(h.url("/api/v1/device/join"), headers=bearer(credential))
        assert reply.status == 200, await reply.text()
        join_token = (await reply.json())["token"]
        teacher = await h.joined(Role.teacher, session.room_id)
        kiosk = await h.connect()
        await kiosk.join(join_token)
        await teacher.expect("participant_joined")

        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        reply = await h.session.delete(
            h.url(f"/api/v1/devices/{device_id}"), headers=bearer(coordinator)
        )
        assert reply.status == 200
        assert (await kiosk.expect("error"))["code"] == "token_revoked"
        await closed_with(kiosk, CLOSE_REVOKED)
        left = await teacher.expect("participant_left", participant_id=kiosk.participant_id)
        assert left["reason"] == "revoked"

        again = await h.connect()
        await again.send({"type": "join", "token": join_token})
        assert (await again.expect("error"))["code"] == "token_revoked"
        assert [p.role for p in await h.rooms.list_participants(session.room_id)] == [Role.teacher]
        # The teacher's own token (another subject) is untouched.
        await teacher.send({"type": "ping"})
        assert await teacher.expect("pong")


async def test_a_revocation_lost_by_pub_sub_is_caught_up_by_the_sweep() -> None:
    from sanke.app import SERVICE_KEY
    from signaling.rights import REVOCATION_LOG, REVOKED, Revocation

    async with running_app() as h:
        await h.room("r1")
        kiosk = await h.connect()
        await kiosk.join(h.tokens.mint(subject="device:lost", role=Role.classroom, room="r1"))
        # Recorded and logged, but the message never arrived (a dropped pub/sub connection).
        raw = Revocation(subject="device:lost", at=time.time() + 1).model_dump_json()
        await h.store.hset(REVOKED, "device:lost", raw)
        await h.store.append(REVOCATION_LOG, raw)
        assert await kiosk.silent(0.3) == []
        await h.app[SERVICE_KEY].rights.sweep()
        assert (await kiosk.expect("error"))["code"] == "token_revoked"
        await closed_with(kiosk, CLOSE_REVOKED)


async def test_only_tokens_issued_up_to_the_revocation_are_refused() -> None:
    import jwt
    from support.harness import SECRET

    from signaling.rights import REVOKED, Revocation

    async with running_app() as h:
        await h.room("r1")
        now = int(time.time())
        revoked_at = now - 10
        raw = Revocation(subject="device:again", at=revoked_at).model_dump_json()
        await h.store.hset(REVOKED, "device:again", raw)

        def issued(at: int) -> str:
            claims = {"sub": "device:again", "role": "classroom", "room": "r1"}
            return jwt.encode({**claims, "iat": at, "nbf": at, "exp": now + 600}, SECRET, "HS256")

        before = await h.connect()
        await before.send({"type": "join", "token": issued(revoked_at)})
        assert (await before.expect("error"))["code"] == "token_revoked"
        after = await h.connect()
        await after.join(issued(revoked_at + 1))  # e.g. a device registered again
