"""An RTMP push as a lesson's teacher, end to end with real parts: a coordinator registers an
RTMP source for the master classroom and is shown its stream key once; real FFmpeg (as OBS
or a 录播 host) pushes to the app's own RTMP listener; while the classroom's lesson is open a
real aiortc classroom decodes it at 1280x720 and the source's status says so; outside an
open lesson the push is refused and the status tells why; ending the lesson or deleting the
source closes the push."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support.processes import free_port
from support.rtc_client import RtcClient
from support.rtmp_push import FfmpegPush
from support.whip_lesson import LESSON, WhipLesson, register_source, whip_lesson

from contracts.rooms import Role
from media.worker import Worker
from sanke.app import RTMP_KEY, RTMP_LISTENER_KEY, SERVICE_KEY

pytestmark = pytest.mark.timeout(120)


async def until(
    predicate: Callable[[], Any], timeout: float = 30, what: str | Callable[[], str] = ""
) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not {what() if callable(what) else what or predicate}")
        await asyncio.sleep(0.2)


async def get(lesson: WhipLesson, path: str) -> Any:
    async with lesson.h.session.get(
        lesson.h.url(path), headers={"Authorization": f"Bearer {lesson.coordinator}"}
    ) as reply:
        assert reply.status == 200, await reply.text()
        return await reply.json()


async def classroom(lesson: WhipLesson) -> RtcClient:
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


def rtmp_settings() -> dict[str, Any]:
    port = free_port()
    return {"rtmp_port": port, "rtmp_public_url": f"rtmp://127.0.0.1:{port}/live"}


async def register_rtmp(lesson: WhipLesson) -> dict[str, Any]:
    registered = await register_source(lesson.h, lesson.coordinator, kind="rtmp", name="OBS")
    assert registered["_status"] == 201, registered
    return registered


async def test_a_push_is_the_teacher_of_its_classrooms_open_lesson(tmp_path: Path) -> None:
    worker = Worker()
    settings = rtmp_settings()
    try:
        async with whip_lesson(media=worker, **settings) as lesson:
            registered = await register_rtmp(lesson)
            source_id, key = registered["source"]["id"], registered["stream_key"]
            server = settings["rtmp_public_url"]
            assert registered["source"]["rtmp_server"] == server
            assert registered["rtmp_url"] == f"{server}/{key}" and registered["token"] is None
            views = [
                await get(lesson, f"/api/v1/sources/{source_id}"),
                await get(lesson, "/api/v1/sources"),
            ]
            digest = hashlib.sha256(key.encode()).hexdigest()
            assert all(key not in json.dumps(v) and digest not in json.dumps(v) for v in views)

            room = await classroom(lesson)
            try:
                await lesson.h.app[RTMP_KEY].look()  # the supervisor's next look, now
                with FfmpegPush(registered["rtmp_url"], tmp_path / "ffmpeg.log") as push:
                    await until(
                        lambda: room.frames >= 30,
                        what=lambda: f"the picture decoded ({room.errors}, {push.output()})",
                    )
                    assert room.last_size == (1280, 720)

                    async def connected() -> bool:
                        await lesson.h.app[RTMP_KEY].look()
                        s = await get(lesson, f"/api/v1/sources/{source_id}/status")
                        size = (s["width"], s["height"])
                        return bool(s["connected"] and size == (1280, 720) and s["fps"])

                    await until(
                        connected,
                        what=lambda: f"connected at 1280x720 ({worker.pushes}, {push.output()})",
                    )
                    status = await get(lesson, f"/api/v1/sources/{source_id}/status")
                    assert status["room_id"] == LESSON and status["last_error"] is None
                    # FFmpeg sends 25 fps at ~1.5 Mbps; a loaded machine encodes fewer
                    assert status["fps"] > 5 and status["bitrate_bps"] > 100_000
                    participants = await lesson.h.app[SERVICE_KEY].repo.list_participants(LESSON)
                    (teacher,) = [p for p in participants if p.role == Role.teacher]
                    assert teacher.subject == f"source:{source_id}" and teacher.publish_only

                    # the lesson ends: the push's connection is closed
                    await lesson.h.app[SERVICE_KEY].close_room(LESSON)
                    await until(push.exited, 15, "FFmpeg's connection closed")
                    await lesson.h.app[RTMP_KEY].look()
                    assert source_id not in lesson.h.app[RTMP_KEY].peers
                    assert len(worker.pushes) == 0
            finally:
                await room.close()
    finally:
        await worker.close()


async def test_a_push_without_an_open_lesson_is_refused_and_told(tmp_path: Path) -> None:
    worker = Worker()
    try:
        async with whip_lesson(media=worker, open_now=False, **rtmp_settings()) as lesson:
            registered = await register_rtmp(lesson)
            source_id = registered["source"]["id"]
            await lesson.h.app[RTMP_KEY].look()
            with FfmpegPush(registered["rtmp_url"], tmp_path / "ffmpeg.log", audio=False) as push:
                await until(push.exited, 15, "the push refused")
                assert "no lesson is open for this stream key" in push.output()

            async def told() -> bool:
                s = await get(lesson, f"/api/v1/sources/{source_id}/status")
                return s["last_error"] is not None

            await until(told, 10, "the refusal in the source's status")
            status = await get(lesson, f"/api/v1/sources/{source_id}/status")
            assert status["connected"] is False
            assert status["last_error"]["code"] == "lesson_not_open"
            assert not worker.routers  # nothing joined anywhere
            assert lesson.h.app[RTMP_LISTENER_KEY].server.sessions == set()
    finally:
        await worker.close()


async def test_deleting_the_source_ends_its_live_push(tmp_path: Path) -> None:
    worker = Worker()
    try:
        async with whip_lesson(media=worker, **rtmp_settings()) as lesson:
            registered = await register_rtmp(lesson)
            source_id = registered["source"]["id"]
            supervisor = lesson.h.app[RTMP_KEY]
            await supervisor.look()
            with FfmpegPush(registered["rtmp_url"], tmp_path / "ffmpeg.log", audio=False) as push:

                def pushing() -> bool:
                    transport = next(iter(worker.routers[LESSON].transports.values()), None)
                    return transport is not None and transport.pulls["high"].state == "connected"

                await until(pushing, what="the push accepted")
                async with lesson.h.session.delete(
                    lesson.h.url(f"/api/v1/sources/{source_id}"),
                    headers={"Authorization": f"Bearer {lesson.coordinator}"},
                ) as reply:
                    assert reply.status == 200
                await until(push.exited, 15, "FFmpeg's connection closed")
                await supervisor.look()
                assert source_id not in supervisor.peers
                assert len(worker.pushes) == 0
    finally:
        await worker.close()
