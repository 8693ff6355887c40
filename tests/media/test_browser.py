"""Real browser interop: Chromium publishes camera+mic through the SFU, another Chromium receives.

The publishing page also reports its own view (``stats``): the SFU gets Chromium's send-side
estimate and what it captures and sends, and reads the same picture size from the bitstream;
the receiving Chromium's transport-cc feedback gives its downlink estimate. Both reach the
Prometheus scrape.
"""

from __future__ import annotations

import asyncio
import shutil
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from support.browser import CHROMIUM
from support.browser import CHROMIUM_ARGS as ARGS

from contracts.media import FrameSize
from contracts.rooms import Role
from media.metrics import StreamCollector
from media.quality import QualityMonitor
from media.stats import TransportStats
from media.worker import Worker

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def _agrees(t: TransportStats) -> bool:
    """The page says it sends the size the SFU reads from the bitstream (on the same m-line)."""
    if t.client is None:
        return False
    sent = {o.mid: (o.width, o.height) for o in t.client.stats.outbound}
    video = [p for p in t.producers if p.kind == "video" and p.height]
    return bool(video) and all(sent.get(p.mid or "") == (p.width, p.height) for p in video)


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

            # The publisher's page reports every 2 s; the SFU's own reading of the bitstream
            # must agree with what Chromium says it sends on that m-line.
            teacher_t = classroom_t = None
            for _ in range(60):
                sfu_stats = await worker.stats()
                by_role = {t.role: t for r in sfu_stats.rooms for t in r.transports}
                teacher_t, classroom_t = by_role.get("teacher"), by_role.get("classroom")
                if (
                    teacher_t
                    and classroom_t
                    and _agrees(teacher_t)
                    and classroom_t.downlink_estimate_bps
                ):
                    break
                await asyncio.sleep(0.5)
            assert teacher_t is not None and teacher_t.client is not None, teacher_t
            report = teacher_t.client.stats
            print(
                "teacher report:",
                report,
                "SFU sees:",
                [(p.mid, p.width, p.height) for p in teacher_t.producers],
            )
            assert report.available_outgoing_bitrate and report.available_outgoing_bitrate > 0
            assert report.capture == FrameSize(width=640, height=360)
            assert _agrees(teacher_t), (report, teacher_t.producers)
            high = next(p for p in teacher_t.producers if p.kind == "video")
            assert high.height is not None and 0 < high.height <= 360
            assert classroom_t is not None and classroom_t.downlink_estimate_bps, classroom_t

            monitor = QualityMonitor(worker)
            registry = CollectorRegistry()
            registry.register(StreamCollector(monitor))
            sample = await monitor.sample()
            quality = sample.participants[("room-1", teacher_t.participant_id)]
            # the sample's own stats: the picture may have changed since the loop above
            sampled = next(
                t for r in sample.stats.rooms for t in r.transports if t.role == "teacher"
            )
            high = next(p for p in sampled.producers if p.kind == "video")
            assert high.height and quality.resolution == (high.width, high.height)
            assert quality.capture == (640, 360)
            teacher_labels = {"lesson": "room-1", "school": "", "classroom": "", "role": "teacher"}
            estimate = registry.get_sample_value("sanke_publisher_estimate_bps", teacher_labels)
            assert estimate is not None and estimate > 0
            classroom_labels = {**teacher_labels, "role": "classroom"}
            assert registry.get_sample_value("sanke_subscriber_estimate_bps", classroom_labels)
            up_high = {**teacher_labels, "kind": "video", "direction": "up", "layer": "high"}
            assert registry.get_sample_value("sanke_stream_frame_height", up_high) == high.height
        finally:
            await browser.close()
            await worker.close()
