"""The teacher's camera drops mid-lesson, with real parts: a real RTSP camera (GstRtspServer)
teaches a real classroom kiosk (headless Chromium, the product's page joined by its device
credential). The camera process is stopped (unplugged): within a few seconds the kiosk shows
"主讲画面重连中…" over the frozen picture, and the teacher console in the same room (the
product's teacher page, joined with the lesson's teacher token) says so too; the camera comes
back: the text goes away, the picture's frames advance again and the console says the picture
is back; the lesson's attendance states the outage's seconds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from support.browser import chromium, wait_js
from support.kiosk_video import MAIN_VIDEO, register_kiosk
from support.processes import free_port
from support.rtsp_server import RtspCamera
from support.whip_lesson import LESSON, register_source, whip_lesson

from contracts.rooms import Role
from media.worker import Worker
from sanke.app import RTSP_KEY

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

RECONNECTING = """() => {
  const el = document.getElementById('source-reconnecting');
  return el && !el.hidden && getComputedStyle(el).display !== 'none' ? el.textContent : '';
}"""


async def test_a_kiosk_shows_the_teachers_camera_reconnecting(tmp_path: Path) -> None:
    worker = Worker()
    port = free_port()
    camera = RtspCamera(port, tmp_path / "camera.log", sub_size=None)
    camera.start()
    try:
        async with whip_lesson(media=worker) as lesson, chromium() as browser:
            # the lesson started a minute ago: an outage counts against its scheduled time
            session = await lesson.h.sessions.get(LESSON)
            assert session is not None
            session.starts_at = time.time() - 60
            await lesson.h.sessions.put(session)
            registered = await register_source(
                lesson.h, lesson.coordinator, kind="rtsp", rtsp={"url": camera.url()}
            )
            assert registered["_status"] == 201, registered
            page: Any = await browser.new_page()  # type: ignore[attr-defined]
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            kiosk = await register_kiosk(lesson)
            await page.goto(lesson.h.url(f"/web/kiosk.html?credential={kiosk}"))
            supervisor = lesson.h.app[RTSP_KEY]
            await supervisor.look()
            await wait_js(page, f"({MAIN_VIDEO})().then(s => s && s.frames > 10)", timeout=30_000)
            await supervisor.look()  # sees it connected
            assert await page.evaluate(f"({RECONNECTING})()") == ""
            console: Any = await browser.new_page()  # type: ignore[attr-defined]
            console.on("pageerror", lambda e: errors.append(f"console: {e}"))
            teacher = lesson.h.tokens.mint(subject="teacher:张老师", role=Role.teacher, room=LESSON)
            await console.goto(lesson.h.url(f"/web/teacher.html?video=320x180&token={teacher}"))
            await wait_js(console, "document.querySelectorAll('#camera option').length > 0")
            await console.click("#start")
            await wait_js(console, "document.getElementById('status').textContent === '直播中'")

            camera.stop()  # unplugged
            unplugged = time.monotonic()
            text = await _looking(supervisor, page, RECONNECTING, timeout=10)
            shown_after = time.monotonic() - unplugged
            print(f"reconnecting shown {shown_after:.1f} s after the camera went away")
            assert text == "主讲画面重连中…"
            told = await wait_js(
                console,
                "(document.getElementById('message').textContent.includes('主讲画面重连中'))",
                timeout=5_000,
            )
            assert told
            await page.click("#lang")  # English available
            assert await page.evaluate(f"({RECONNECTING})()") == (
                "Reconnecting to the teacher's camera…"
            )
            await page.click("#lang")
            await asyncio.sleep(2)  # an outage of a few seconds

            camera.start()  # plugged in again, same address
            back = await _looking(
                supervisor, page, f"() => !({RECONNECTING})() && 'gone'", timeout=40
            )
            assert back == "gone"
            await wait_js(
                console,
                "document.getElementById('message').textContent === '主讲画面已恢复'",
                timeout=5_000,
            )
            cleared = time.monotonic()
            before = await page.evaluate(f"({MAIN_VIDEO})()")
            after = await wait_js(
                page,
                f"({MAIN_VIDEO})().then(s => s && s.frames > {before['frames'] + 15} && s)",
                timeout=15_000,
            )
            print(
                f"kiosk frames advance again {time.monotonic() - cleared:.1f} s after the text "
                f"went away: {before} -> {after}"
            )

            async with lesson.h.session.get(
                lesson.h.url(f"/api/v1/lessons/{LESSON}"),
                headers={"Authorization": f"Bearer {lesson.coordinator}"},
            ) as reply:
                assert reply.status == 200, await reply.text()
                detail = await reply.json()
            outage = detail["teacher_source_outage_seconds"]
            print("teacher_source_outage_seconds:", outage)
            assert 2.0 <= outage <= time.monotonic() - unplugged + 1, outage
            assert errors == []
    finally:
        camera.stop()
        await worker.close()


async def _looking(supervisor: Any, page: Any, expression: str, timeout: float) -> Any:
    """Evaluate ``expression`` in the page until truthy; the supervisor looks meanwhile
    (at its own pace too: every 2 s)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await page.evaluate(f"({expression})()")
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not {expression}")
        await supervisor.look()
        await asyncio.sleep(0.5)
