"""The recording indicator in real headless Chromium through the real SFU worker: the teacher
console and a classroom kiosk show "● 录制中" while a 名校 lesson is recorded; the teacher stops
it with the keyboard (the badge goes on both pages, the part is finished), and starts it again
(the badge comes back, a new part is written). English locale: "● Recording"."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import wait_js
from support.harness import running_app

from contracts.rooms import Role, RoomKind
from contracts.store import MemoryStore
from lessons.recordings import LessonRecordings
from lessons.records import RecordLog
from lessons.repository import SessionRepository
from media.recorder import PARTIAL
from media.worker import Worker, WorkerSettings
from signaling.rooms import RoomRepository
from web.pages import Pages, browser, press

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

ROOM = "famous-1"
BADGE = "(() => { const b = document.getElementById('rec'); return b && !b.hidden && b.textContent; })()"
GONE = "document.getElementById('rec').hidden"


async def _badge(page: Any) -> str:
    text: str = await wait_js(page, BADGE, timeout=20_000)
    return text


async def test_the_badge_follows_the_teachers_recording_switch(tmp_path: Path) -> None:
    store = MemoryStore()
    recordings = tmp_path / "recordings"
    hooks = LessonRecordings(
        RoomRepository(store), SessionRepository(store), RecordLog(store, "k" * 40)
    )
    worker = Worker(WorkerSettings(recordings_dir=recordings), recording=hooks)
    async with running_app(store=store, media=worker) as h, browser() as chromium:
        pages = Pages(chromium, tmp_path)
        try:
            await h.room(ROOM, kind=RoomKind.broadcast)

            def token(role: Role, subject: str, **kw: Any) -> str:
                return h.tokens.mint(subject=subject, role=role, room=ROOM, **kw)

            teacher = await pages.open(
                "teacher",
                h.url(f"/web/teacher.html?video=640x360&token={token(Role.teacher, 'zhang')}"),
            )
            await wait_js(teacher, "document.querySelectorAll('#camera option').length > 0")
            assert await teacher.evaluate(GONE)  # not before the lesson starts
            await press(teacher, "#start")
            assert await _badge(teacher) == "● 录制中"
            await wait_js(teacher, "!document.getElementById('rectoggle').hidden")
            assert await teacher.text_content("#rectoggle") == "停止录制"

            tok = token(Role.classroom, "jd-1-g3", classroom_id="jd-1-g3")
            kiosk = await pages.open("kiosk", h.url(f"/web/kiosk.html?token={tok}"))
            await wait_js(kiosk, "document.body.classList.contains('live')")
            assert await _badge(kiosk) == "● 录制中"
            for _ in range(100):
                if list(recordings.rglob(f"*{PARTIAL}")):
                    break
                await teacher.wait_for_timeout(200)
            assert list(recordings.rglob(f"*{PARTIAL}")), "the teacher's camera is not recorded"
            await teacher.wait_for_timeout(2500)

            # the teacher stops it with the keyboard: the badge goes on both pages
            await press(teacher, "#rectoggle")
            await wait_js(teacher, GONE)
            await wait_js(kiosk, GONE)
            await wait_js(
                teacher, "document.getElementById('rectoggle').textContent === '开始录制'"
            )
            assert await teacher.get_attribute("#rectoggle", "aria-pressed") == "false"
            for _ in range(100):  # the part is finished: remuxed into its final name
                if list(recordings.rglob("*.mp4")) and not list(recordings.rglob(f"*{PARTIAL}")):
                    break
                await teacher.wait_for_timeout(200)
            assert len(list(recordings.rglob("*.mp4"))) == 1
            assert not list(recordings.rglob(f"*{PARTIAL}"))

            # and starts it again (Space): the badge comes back, a new part is written
            await press(teacher, "#rectoggle", " ")
            assert await _badge(teacher) == "● 录制中"
            assert await _badge(kiosk) == "● 录制中"
            assert await teacher.text_content("#rectoggle") == "停止录制"
            for _ in range(100):
                if list(recordings.rglob(f"*{PARTIAL}")):
                    break
                await teacher.wait_for_timeout(200)
            assert list(recordings.rglob(f"*{PARTIAL}")), "no second part"

            # English
            await press(teacher, "#lang")
            await press(kiosk, "#lang")
            await wait_js(teacher, "document.getElementById('rec').textContent === '● Recording'")
            await wait_js(kiosk, "document.getElementById('rec').textContent === '● Recording'")
            assert await teacher.text_content("#rectoggle") == "Stop recording"
            await pages.screenshot(teacher, "teacher-recording")
            pages.assert_no_console_errors()
        finally:
            await pages.close()
            await worker.close()
