"""Real browser interop: Chromium publishes camera+mic through the SFU, another Chromium receives."""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from support.browser import CHROMIUM
from support.browser import CHROMIUM_ARGS as ARGS

from media.worker import Worker
from signaling.models import Role

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


async def test_chromium_publishes_and_chromium_receives_through_the_sfu() -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.async_api import async_playwright
    from support.harness import running_app

    worker = Worker()
    async with running_app(media=worker) as h, async_playwright() as pw:
        await h.room("room-1")
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            teacher_page = await browser.new_page()
            class_page = await browser.new_page()
            for page in (teacher_page, class_page):
                page.on("console", lambda m: print("console:", m.text))
            teacher = h.token(Role.teacher, subject="teacher-1")
            classroom = h.token(Role.classroom, subject="class-1")
            await teacher_page.goto(h.url(f"/web/sfu-demo.html?publish=1&token={teacher}"))
            assert await teacher_page.evaluate("window.sfuReady") == "ok"
            await class_page.goto(h.url(f"/web/sfu-demo.html?token={classroom}"))
            assert await class_page.evaluate("window.sfuReady") == "ok"

            stats: dict[str, Any] = {}
            for _ in range(60):
                stats = await class_page.evaluate("window.sfu.stats()")
                decoded = sum(v["framesDecoded"] or 0 for v in stats["inboundVideo"])
                audio = sum(a["packets"] or 0 for a in stats["inboundAudio"])
                if decoded > 30 and audio > 50:
                    break
                await asyncio.sleep(0.5)
            assert sum(v["framesDecoded"] or 0 for v in stats["inboundVideo"]) > 30, stats
            assert sum(a["packets"] or 0 for a in stats["inboundAudio"]) > 50, stats
            owners = await class_page.evaluate("[...window.sfu.owners.values()]")
            assert len(owners) == 2 and len(set(owners)) == 1  # audio + video of the teacher
            sfu_stats = await worker.stats()
            producers = [p for r in sfu_stats.rooms for t in r.transports for p in t.producers]
            assert {p.kind for p in producers} == {"audio", "video"}
            video = next(p for p in producers if p.kind == "video")
            print("browser publisher codec:", video.codec)
            assert video.codec in ("H264", "VP8") and video.keyframes >= 1
        finally:
            await browser.close()
            await worker.close()
