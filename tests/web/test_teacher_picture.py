"""The teacher console's picture setting: 720p by default, 1080p for a blackboard or small
print, chosen by keyboard, kept on the machine, and the layer caps follow the camera (the
high layer may send 4.5 Mbps at 1080p, 2.5 Mbps at 720p; the low layer stays 320x180)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.harness import running_app

from contracts.rooms import Role
from media.worker import Worker
from web.pages import Pages, browser, open_live_lesson, press, until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]
ROOM = "picture-live"

CAMERA = "window.sanke.stream && window.sanke.stream.getVideoTracks()[0].getSettings().height"
CAPS = """(() => {
  const s = window.sanke.client && window.sanke.client.senders;
  if (!s || !s.high) return null;
  const enc = (t) => t.sender.getParameters().encodings[0];
  return [enc(s.high).maxBitrate, enc(s.low).maxBitrate, enc(s.low).scaleResolutionDownBy];
})()"""


async def test_the_teacher_chooses_1080p_and_the_layers_follow(tmp_path: Path) -> None:
    worker = Worker()
    async with running_app(media=worker) as h, browser() as chromium:
        pages = Pages(chromium, tmp_path)
        try:
            await open_live_lesson(h, ROOM, [("jd-1-g3", "jd-1")])
            token = h.tokens.mint(subject="zhang", role=Role.teacher, room=ROOM, name="张老师")
            url = h.url(f"/web/teacher.html?token={token}")
            teacher = await pages.open("teacher", url)
            assert await until(lambda: teacher.evaluate(CAMERA), lambda v: v == 720, "720p")
            await press(teacher, "#start")
            await until(lambda: teacher.evaluate(CAPS), bool, "the lesson publishes")
            assert await teacher.evaluate(CAPS) == [2_500_000, 150_000, 4]

            await teacher.focus("#picture")  # by keyboard, as a projector's remote would
            await teacher.keyboard.press("ArrowDown")
            assert await teacher.input_value("#picture") == "1920x1080"
            await until(lambda: teacher.evaluate(CAMERA), lambda v: v == 1080, "1080p camera")
            caps: Any = await until(
                lambda: teacher.evaluate(CAPS), lambda v: v and v[0] == 4_500_000, "1080p caps"
            )
            assert caps == [4_500_000, 150_000, 6]  # the low layer is still 320x180

            # the choice is kept: the next lesson on this machine opens the camera at 1080p
            await teacher.reload()
            assert await teacher.input_value("#picture") == "1920x1080"
            await until(lambda: teacher.evaluate(CAMERA), lambda v: v == 1080, "kept 1080p")
            assert pages.errors["teacher"] == [], pages.errors
        finally:
            await pages.close()
            await worker.close()
