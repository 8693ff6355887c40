"""An RTMP encoder's connection lost mid-lesson, with real parts: real FFmpeg pushes to the
app's RTMP listener, a real aiortc classroom decodes it; the push is killed (the cable
pulled: no deleteStream): the classroom gets ``source_state reconnecting`` for the source's
participant; a new push: ``connected`` and frames again; the lesson states the outage."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from support.processes import free_port
from support.rtc_client import RtcClient
from support.rtmp_push import FfmpegPush
from support.whip_lesson import LESSON, register_source, whip_lesson

from contracts.rooms import Role
from media.worker import Worker
from sanke.app import RTMP_KEY

pytestmark = pytest.mark.timeout(120)


async def until(predicate: Any, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not {what}")
        await asyncio.sleep(0.2)


async def get(lesson: Any, path: str) -> Any:
    async with lesson.h.session.get(
        lesson.h.url(path), headers={"Authorization": f"Bearer {lesson.coordinator}"}
    ) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def classroom(lesson: Any) -> RtcClient:
    token = lesson.h.tokens.mint(
        subject="class:jd-1-g3",
        role=Role.classroom,
        room=LESSON,
        classroom_id="jd-1-g3",
        school_id="jd-1",
    )
    client = RtcClient(lesson.h.session, lesson.h.url("/ws").replace("http", "ws", 1), token)
    await client.start()
    return client


def states(room: Any, participant: str) -> list[str]:
    return [
        m["state"]
        for m in room.inbox
        if m["type"] == "source_state" and m["participant_id"] == participant
    ]


async def test_a_lost_push_is_reconnecting_for_the_classrooms(tmp_path: Path) -> None:
    worker = Worker()
    port = free_port()
    settings = {"rtmp_port": port, "rtmp_public_url": f"rtmp://127.0.0.1:{port}/live"}
    async with whip_lesson(media=worker, **settings) as lesson:
        session = await lesson.h.sessions.get(LESSON)
        assert session is not None
        session.starts_at = time.time() - 60  # started: the outage counts
        await lesson.h.sessions.put(session)
        registered = await register_source(lesson.h, lesson.coordinator, kind="rtmp")
        source_id = registered["source"]["id"]
        supervisor = lesson.h.app[RTMP_KEY]
        room = await classroom(lesson)
        try:
            await supervisor.look()
            pid = supervisor.peers[source_id].participant.id

            async def looking(predicate: Any, what: str) -> None:
                async def check() -> bool:
                    await supervisor.look()
                    return bool(predicate())

                await until(check, timeout=30, what=what)

            with FfmpegPush(registered["rtmp_url"], tmp_path / "push1.log", audio=False) as push:
                await until(lambda: room.frames >= 20, what="the push decoded")
                await supervisor.look()  # connected
                push.kill()
                lost = time.monotonic()
                await looking(lambda: "reconnecting" in states(room, pid), "reconnecting")
                print(f"reconnecting told {time.monotonic() - lost:.1f} s after the push died")
            await asyncio.sleep(1)
            with FfmpegPush(registered["rtmp_url"], tmp_path / "push2.log", audio=False):
                await looking(lambda: states(room, pid)[-1:] == ["connected"], "connected")
                frames = room.frames
                await until(lambda: room.frames >= frames + 20, what="frames again")
            detail = await get(lesson, f"/api/v1/lessons/{LESSON}")
            print("outage:", detail["teacher_source_outage_seconds"], states(room, pid))
            assert detail["teacher_source_outage_seconds"] >= 1.0
        finally:
            await room.close()
    await worker.close()
