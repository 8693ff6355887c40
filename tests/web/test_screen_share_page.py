"""The teacher console shares a screen as its own source (a canvas ``captureStream()`` stands in
for the screen: headless Chromium cannot pick one). The classroom kiosk shows the screen in
the main area and the teacher's camera beside it; stopping puts the camera back; sharing
again works on the same connection."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import wait_js
from support.harness import running_app

from contracts.rooms import Role
from media.worker import Worker
from web.pages import Pages, browser, open_live_lesson, press, until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(170)]

ROOM = "screen-g3"

FAKE_SCREEN = """() => {
  navigator.mediaDevices.getDisplayMedia = async () => {
    const canvas = document.createElement("canvas");
    canvas.width = 1280; canvas.height = 720;
    const g = canvas.getContext("2d");
    let n = 0;
    setInterval(() => {
      g.fillStyle = `hsl(${(n * 7) % 360}, 60%, 50%)`; g.fillRect(0, 0, 1280, 720);
      g.fillStyle = "#fff"; g.font = "96px sans-serif"; g.fillText("slide " + n++, 100, 300);
    }, 66);
    return canvas.captureStream(15);
  };
}"""

# Video frames the kiosk decoded, by the source the SFU labelled each track with.
BY_SOURCE = """async () => {
  const client = window.sankeKiosk.client;
  const out = {};
  if (!client || !client.pc) return out;
  (await client.pc.getStats()).forEach((s) => {
    if (s.type !== "inbound-rtp" || s.kind !== "video") return;
    const source = client.sources.get(s.trackIdentifier) || "?";
    out[source] = (out[source] || 0) + (s.framesDecoded || 0);
  });
  return out;
}"""


async def test_teacher_shares_a_screen_as_its_own_source(tmp_path: Path) -> None:
    worker = Worker()
    async with running_app(media=worker) as h, browser() as chromium:
        pages = Pages(chromium, tmp_path)
        try:
            await run(h, worker, pages)
        finally:
            await pages.close()
            await worker.close()


async def run(h: Any, worker: Worker, pages: Pages) -> None:
    await open_live_lesson(h, ROOM, [("jd-1-g3", "jd-1")])

    def token(role: Role, subject: str, **kw: Any) -> str:
        return h.tokens.mint(subject=subject, role=role, room=ROOM, **kw)

    teacher = await pages.open(
        "teacher", h.url(f"/web/teacher.html?video=640x360&token={token(Role.teacher, 'zhang')}")
    )
    await teacher.evaluate(FAKE_SCREEN)
    await wait_js(teacher, "document.querySelectorAll('#camera option').length > 0")
    await press(teacher, "#start")
    await wait_js(teacher, "window.sanke.client && window.sanke.client.participantId")
    teacher_id = await teacher.evaluate("window.sanke.client.participantId")
    kiosk = await pages.open(
        "kiosk",
        h.url(
            "/web/kiosk.html?token="
            + token(Role.classroom, "jd-1-g3", classroom_id="jd-1-g3", name="jd-1")
        ),
    )
    await until(lambda: kiosk.evaluate(BY_SOURCE), lambda s: s.get("camera", 0) > 10, "camera")
    kiosk_id = await kiosk.evaluate("window.sankeKiosk.client.participantId")

    async def screen_producer() -> Any:
        stats = await worker.stats()
        return next(
            (
                p
                for r in stats.rooms
                for t in r.transports
                if t.participant_id == teacher_id
                for p in t.producers
                if p.id.endswith("/screen")
            ),
            None,
        )

    for round_ in range(2):  # share, stop, share again (the same m-line), stop
        await press(teacher, "#share")
        await teacher.wait_for_selector("#share[aria-pressed='true']")
        await wait_js(kiosk, "document.getElementById('teacher-video').dataset.source === 'screen'")
        start = await kiosk.evaluate(BY_SOURCE)
        both = await until(
            lambda: kiosk.evaluate(BY_SOURCE),
            lambda s, st=start: (
                s.get("screen", 0) > st.get("screen", 0) + 20
                and s.get("camera", 0) > st.get("camera", 0) + 20
            ),
            f"the kiosk decodes the screen and the camera (round {round_})",
        )
        assert both["screen"] > 20
        # the camera is beside the screen
        assert await kiosk.evaluate("document.querySelectorAll('#side video').length") >= 1
        producer = await screen_producer()
        assert producer is not None and producer.frames > 0 and producer.codec == "H264"

        await press(teacher, "#share")
        await teacher.wait_for_selector("#share[aria-pressed='false']")
        await wait_js(kiosk, "document.getElementById('teacher-video').dataset.source === 'camera'")
        transport = worker.transport(ROOM, teacher_id)
        assert transport is not None
        await until(
            lambda t=transport: _async(not t.producer_group("video", "screen")),
            bool,
            "the SFU no longer forwards the screen",
        )
        kiosk_side = worker.transport(ROOM, kiosk_id)
        assert kiosk_side is not None
        assert all(c.source != "screen" for c in kiosk_side.consumers.values())
        after = await kiosk.evaluate(BY_SOURCE)
        await until(
            lambda: kiosk.evaluate(BY_SOURCE),
            lambda s, a=after: s.get("camera", 0) > a.get("camera", 0) + 20,
            "the camera goes on",
        )
    pages.assert_no_console_errors()


async def _async(value: Any) -> Any:
    return value
