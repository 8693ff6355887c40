"""An RTSP camera as a lesson's teacher, end to end with real parts: a coordinator registers
the camera (a real GstRtspServer asking for a password) for the master classroom; while
that classroom's lesson is open the app pulls it into the lesson's room, where a real aiortc
classroom decodes it at the camera's 1280x720; the source's status says so; when the lesson
ends the pull stops."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support.processes import free_port
from support.rtc_client import RtcClient
from support.rtsp_server import RtspCamera
from support.whip_lesson import LESSON, WhipLesson, register_source, whip_lesson

from contracts.rooms import Role
from media.worker import Worker
from sanke.app import RTSP_KEY, SERVICE_KEY

pytestmark = pytest.mark.timeout(120)
PASSWORD = "s3cret:/@pw"  # a password with URL delimiters in it


async def until(predicate: Callable[[], Any], timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not {what or predicate}")
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


async def test_a_camera_is_the_teacher_of_its_classrooms_open_lesson(tmp_path: Path) -> None:
    worker = Worker()
    camera = RtspCamera(free_port(), tmp_path / "camera.log", user="admin", password=PASSWORD)
    camera.start()
    try:
        async with whip_lesson(media=worker) as lesson:
            rtsp = {"url": camera.url(), "username": "admin", "password": PASSWORD}
            # credentials go in their own fields, not in the URL
            bad = {**rtsp, "url": camera.url(user="admin", password="x")}
            refused = await register_source(lesson.h, lesson.coordinator, kind="rtsp", rtsp=bad)
            assert refused["_status"] == 422, refused
            registered = await register_source(
                lesson.h, lesson.coordinator, kind="rtsp", name="教室摄像机", rtsp=rtsp
            )
            assert registered["_status"] == 201, registered
            assert registered["token"] is None
            source_id = registered["source"]["id"]
            assert registered["source"]["rtsp"]["has_password"] is True
            views = [
                await get(lesson, f"/api/v1/sources/{source_id}"),
                await get(lesson, "/api/v1/sources"),
            ]
            assert all(
                PASSWORD not in json.dumps(v) and "s3cret" not in json.dumps(v) for v in views
            )

            room = await classroom(lesson)
            try:
                await lesson.h.app[RTSP_KEY].look()  # the supervisor's next look, now
                await until(lambda: room.frames >= 30, what="the camera's picture decoded")
                assert room.last_size == (1280, 720)

                async def connected() -> bool:
                    s = await get(lesson, f"/api/v1/sources/{source_id}/status")
                    return bool(s["connected"] and s["width"] == 1280 and s["height"] == 720)

                await until(connected, what="the source's status connected at 1280x720")
                status = await get(lesson, f"/api/v1/sources/{source_id}/status")
                assert status["room_id"] == LESSON and status["last_error"] is None
                participants = await lesson.h.app[SERVICE_KEY].repo.list_participants(LESSON)
                (teacher,) = [p for p in participants if p.role == Role.teacher]
                assert teacher.subject == f"source:{source_id}" and teacher.publish_only

                # the lesson ends: the pull stops
                await lesson.h.app[SERVICE_KEY].close_room(LESSON)
                await until(lambda: LESSON not in worker.routers, what="the room's media freed")
                await lesson.h.app[RTSP_KEY].look()
                assert source_id not in lesson.h.app[RTSP_KEY].peers
                await until(
                    lambda: _not_connected(lesson, source_id), what="the source disconnected"
                )
            finally:
                await room.close()
    finally:
        camera.stop()
        await worker.close()


async def _not_connected(lesson: WhipLesson, source_id: str) -> bool:
    status = await get(lesson, f"/api/v1/sources/{source_id}/status")
    return status["connected"] is False


async def test_a_wrong_password_is_the_sources_last_error(tmp_path: Path) -> None:
    worker = Worker()
    camera = RtspCamera(free_port(), tmp_path / "camera.log", user="admin", password="right")
    camera.start()
    try:
        async with whip_lesson(media=worker) as lesson:
            rtsp = {"url": camera.url(), "username": "admin", "password": "wrong"}
            registered = await register_source(lesson.h, lesson.coordinator, kind="rtsp", rtsp=rtsp)
            source_id = registered["source"]["id"]
            supervisor = lesson.h.app[RTSP_KEY]

            async def unauthorized() -> bool:
                await supervisor.look()
                s = await get(lesson, f"/api/v1/sources/{source_id}/status")
                error = s["last_error"]
                return error is not None and "unauthorized" in error["message"]

            await until(unauthorized, what="the source's error says unauthorized")
            status = await get(lesson, f"/api/v1/sources/{source_id}/status")
            assert status["connected"] is False
            assert "password" in status["last_error"]["message"]
            assert "wrong" not in status["last_error"]["message"]
    finally:
        camera.stop()
        await worker.close()


async def test_deleting_the_source_stops_its_pull(tmp_path: Path) -> None:
    worker = Worker()
    camera = RtspCamera(free_port(), tmp_path / "camera.log")
    camera.start()
    try:
        async with whip_lesson(media=worker) as lesson:
            registered = await register_source(
                lesson.h, lesson.coordinator, kind="rtsp", rtsp={"url": camera.url()}
            )
            source_id = registered["source"]["id"]
            supervisor = lesson.h.app[RTSP_KEY]
            publishing = {"kind": "rtsp", "school": "xian-shiyan"}
            before = REGISTRY.get_sample_value("sanke_ingest_publishing", publishing) or 0.0
            await supervisor.look()
            assert REGISTRY.get_sample_value("sanke_ingest_publishing", publishing) == before + 1

            def pulling() -> bool:
                router = worker.routers.get(LESSON)
                return router is not None and any(
                    t.pulls and t.participant.subject == f"source:{source_id}"
                    for t in router.transports.values()
                )

            await until(pulling, what="the camera pulled")
            async with lesson.h.session.delete(
                lesson.h.url(f"/api/v1/sources/{source_id}"),
                headers={"Authorization": f"Bearer {lesson.coordinator}"},
            ) as reply:
                assert reply.status == 200
            await until(lambda: not pulling(), what="the pull stopped")
            await supervisor.look()
            assert source_id not in supervisor.peers
            assert REGISTRY.get_sample_value("sanke_ingest_publishing", publishing) == before
    finally:
        camera.stop()
        await worker.close()
