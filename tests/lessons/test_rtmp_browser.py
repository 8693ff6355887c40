"""An RTMP push teaches a real classroom kiosk: real FFmpeg (as OBS or a 录播 host) pushes
1280x720 H.264 + AAC to the app's RTMP listener; headless Chromium (the product's kiosk page,
joined by its device credential) decodes the teacher's picture at 1280x720 with frames that
keep arriving, and receives its audio; the lesson ending closes the push."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from support.browser import chromium, wait_js
from support.kiosk_video import MAIN_VIDEO, register_kiosk
from support.processes import free_port
from support.rtmp_push import FfmpegPush
from support.whip_lesson import LESSON, register_source, whip_lesson

from media.worker import Worker
from sanke.app import RTMP_KEY, SERVICE_KEY

pytestmark = [pytest.mark.browser, pytest.mark.timeout(180)]

AUDIO = """async () => {
  const report = await window.sankeKiosk.client.pc.getStats();
  let bytes = 0, codec = null;
  const codecs = {};
  report.forEach((r) => { if (r.type === 'codec') codecs[r.id] = r.mimeType; });
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'audio') {
      bytes += r.bytesReceived || 0; codec = codecs[r.codecId] || codec;
    }
  });
  return { bytes, codec };
}"""


async def test_a_kiosk_shows_the_rtmp_push_as_the_teacher(tmp_path: Path) -> None:
    worker = Worker()
    port = free_port()
    settings = {"rtmp_port": port, "rtmp_public_url": f"rtmp://127.0.0.1:{port}/live"}
    async with whip_lesson(media=worker, **settings) as lesson, chromium() as browser:
        registered = await register_source(lesson.h, lesson.coordinator, kind="rtmp")
        assert registered["_status"] == 201, registered
        page: Any = await browser.new_page()  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(lesson.h.url(f"/web/kiosk.html?credential={await register_kiosk(lesson)}"))
        await lesson.h.app[RTMP_KEY].look()
        with FfmpegPush(registered["rtmp_url"], tmp_path / "ffmpeg.log") as push:
            first = await wait_js(
                page, f"({MAIN_VIDEO})().then(s => s && s.frames > 10 && s)", timeout=30_000
            )
            samples = [first]
            for _ in range(3):
                await page.wait_for_timeout(1000)
                samples.append(await page.evaluate(f"({MAIN_VIDEO})()"))
            print("kiosk main video:", samples)
            assert all(s is not None for s in samples), samples
            assert all(b["frames"] > a["frames"] for a, b in pairwise(samples)), samples
            later = samples[-1]
            assert (later["width"], later["height"]) == (1280, 720), later
            assert (later["shownWidth"], later["shownHeight"]) == (1280, 720), later
            audio = await wait_js(page, f"({AUDIO})().then(a => a.bytes > 2000 && a)")
            assert audio["codec"] == "audio/opus", audio

            await lesson.h.app[SERVICE_KEY].close_room(LESSON)
            for _ in range(50):
                if push.exited():
                    break
                await page.wait_for_timeout(200)
            assert push.exited(), "the push outlived its lesson"
        assert errors == []
    await worker.close()
