"""Headless Chromium plays a finished recording (an MP4 on a plain HTTP server, as the replay
library will serve it): time advances, the picture has the recorded size, it follows the
resolution change mid-lesson, and a seek lands."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from media_peers import load_clip
from recording_probe import KeepEverything
from support.browser import chromium, wait_js
from support.clips import make_clip
from test_recording import one_after_another, record_lesson, recording_worker

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(150)]

PAGE = """<!doctype html><html><body>
<video id="v" src="/files/{file}" muted autoplay playsinline></video>
<script>
  const v = document.getElementById("v");
  window.widths = [];
  window.failure = null;
  v.addEventListener("resize", () => window.widths.push([v.videoWidth, v.videoHeight]));
  v.addEventListener("error", () => window.failure = String(v.error && v.error.message));
</script></body></html>"""


async def test_chromium_plays_a_recording_through_its_resolution_change(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    big = load_clip(make_clip(tmp_path, "big.ts", size="640x360", seconds=4), "video")
    small = load_clip(make_clip(tmp_path, "small.ts", size="320x180", seconds=4), "video")
    recordings = tmp_path / "recordings"
    hooks = KeepEverything()
    worker = recording_worker(recordings, hooks)
    try:
        await record_lesson(
            worker, hooks, one_after_another(big, small), load_clip(clips["opus"], "audio"), 7.5
        )
    finally:
        await worker.close()
    (part,) = hooks.parts

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=PAGE.format(file=part.file), content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_static("/files", recordings)  # answers Range requests: seeking works
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with chromium() as browser:
            tab = await browser.new_page()  # type: ignore[attr-defined]
            await tab.goto(str(server.make_url("/")))
            assert await wait_js(tab, "document.getElementById('v').currentTime > 1", 20_000)
            assert await tab.evaluate("window.failure") is None
            assert await tab.evaluate("document.getElementById('v').videoWidth") == 640
            # through the new SPS: the picture follows it
            assert await wait_js(tab, "document.getElementById('v').videoWidth === 320", 20_000)
            assert await wait_js(tab, "document.getElementById('v').currentTime > 5", 20_000)
            duration = await tab.evaluate("document.getElementById('v').duration")
            assert abs(duration - part.duration_seconds) < 0.5, (duration, part.duration_seconds)
            # a seek back lands and plays on (the index is in front: no full read)
            await tab.evaluate("document.getElementById('v').currentTime = 1.0")
            assert await wait_js(
                tab,
                "(() => { const v = document.getElementById('v');"
                " return !v.seeking && v.currentTime > 1.3 && v.currentTime < 4; })()",
                20_000,
            )
            assert await tab.evaluate("document.getElementById('v').videoWidth") == 640
            assert await tab.evaluate("window.failure") is None
            print("sizes Chromium showed:", await tab.evaluate("window.widths"))
    finally:
        await server.close()
