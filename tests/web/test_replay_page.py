"""The replay library page in real headless Chromium, operated by keyboard: a coordinator
searches by school, opens a lesson, plays it — the camera (H264 + AAC) and, from 5 s in, the
screen share side by side — seeks forward (both tracks jump together) and back, publishes it;
English on request. The MP4s are real (ffmpeg), served by the app with range requests and
catalogued through the recording hooks."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest
from support.browser import wait_js
from support.harness import running_app
from support.replays import KEY, lesson, part

from contracts.rooms import Role, RoomKind
from web.pages import Pages, browser, press

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

LESSON = "famous-a.2026-11-02"
OTHER = "master-b.2026-11-03"


def mp4(path: Path, size: str, seconds: int, audio: bool) -> bytes:
    """An H264 (+ AAC) MP4 with its index first and a keyframe every second, as a finished
    part is."""
    sound = ["-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}"] if audio else []
    codecs = ["-c:a", "aac", "-b:a", "64k"] if audio else []
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25:duration={seconds}", *sound,
         "-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p",
         *codecs, "-movflags", "+faststart", str(path)],
        check=True,
    )  # fmt: skip
    return path.read_bytes()


CAMERA_T = "document.getElementById('camera').currentTime"
SCREEN_T = "document.getElementById('screen').currentTime"


async def test_search_play_both_tracks_seek_and_publish(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    camera = mp4(tmp_path / "camera.mp4", "640x360", 20, audio=True)
    screen = mp4(tmp_path / "screen.mp4", "960x540", 10, audio=False)
    async with running_app(records_key=KEY, recordings_dir=str(recordings)) as h:
        await lesson(h.store, LESSON, kind=RoomKind.broadcast, school="sch-a", teacher="wang")
        await lesson(h.store, OTHER, kind=RoomKind.master, school="sch-b", teacher="li")
        start = time.time() - 3600
        await part(h.store, recordings, LESSON, data=camera, started_at=start, seconds=20)
        await part(
            h.store, recordings, LESSON, data=screen, track="screen", started_at=start + 5,
            seconds=10,
        )  # fmt: skip
        await part(h.store, recordings, OTHER, data=camera, started_at=start - 86400, seconds=20)
        token = h.tokens.mint(subject="coord-d", role=Role.coordinator)
        async with browser() as chromium:
            pages = Pages(chromium, tmp_path)
            page = await pages.open("replay", h.url(f"/web/replay.html?token={token}"))
            # the district's lessons, newest first
            await wait_js(page, "document.querySelectorAll('#results button').length === 2")
            assert await page.text_content("h1") == "录播回放"
            ids = await page.evaluate(
                "[...document.querySelectorAll('#results button')].map(b => b.dataset.id)"
            )
            assert ids == [LESSON, OTHER]

            # search by school, with the keyboard
            await page.focus("#f-school")
            await page.keyboard.type("sch-a")
            await press(page, "#go")
            await wait_js(page, "document.querySelectorAll('#results button').length === 1")
            assert "共 1 节课" in (await page.text_content("#count") or "")
            await press(page, f"#results button[data-id='{LESSON}']")
            await wait_js(page, "!document.getElementById('player').hidden")
            assert "名校网络课堂" in (await page.text_content("#meta") or "")

            # play: the camera's picture and time advance; no screen share before 5 s
            await press(page, "#play")
            await wait_js(page, f"{CAMERA_T} > 1.0 && document.getElementById('camera').videoWidth")
            assert await page.evaluate("document.getElementById('camera').videoWidth") == 640
            assert await page.evaluate("document.getElementById('screen').hidden")
            before = await page.evaluate(CAMERA_T)
            await page.wait_for_timeout(700)
            assert await page.evaluate(CAMERA_T) > before

            # forward 10 s: both tracks jump, the screen share at the lesson's same moment
            await press(page, "#fwd")
            await wait_js(page, f"{CAMERA_T} >= 10.5")
            await wait_js(
                page,
                f"!document.getElementById('screen').hidden && {SCREEN_T} > 5.5"
                " && document.getElementById('screen').videoWidth === 960",
            )
            await page.wait_for_timeout(800)
            offset = await page.evaluate(f"{CAMERA_T} - {SCREEN_T}")
            assert abs(offset - 5.0) < 0.8, offset  # in step: the share started 5 s in
            assert await page.evaluate(f"{SCREEN_T}") > 6.0  # and it plays on
            await page.evaluate("window.scrollTo(0, 0)")  # the docs' screenshot: from the top
            await pages.screenshot(page, "replay-library")

            # the slider by keyboard: Home is the lesson's start
            await page.focus("#seek")
            await page.keyboard.press("Home")
            await wait_js(page, f"{CAMERA_T} < 2.0")
            await wait_js(page, "document.getElementById('screen').hidden")

            # publish for viewers
            await press(page, "#publish")
            await wait_js(page, "document.getElementById('publish').textContent === '取消发布'")
            reply = await h.session.get(
                h.url(f"/api/v1/replays/{LESSON}"),
                headers={"Authorization": f"Bearer {token}"},
            )
            assert (await reply.json())["published"] is True

            # English
            await press(page, "#lang")
            assert await page.text_content("h1") == "Replay library"
            assert await page.text_content("#publish") == "Withdraw"

            # the coordinator page links to it, with the same token
            coordinator = await pages.open(
                "coordinator", h.url(f"/web/coordinator.html?token={token}")
            )
            await coordinator.focus("#replay-link")
            assert await coordinator.text_content("#replay-link") == "录播回放"
            async with coordinator.expect_navigation():
                await coordinator.keyboard.press("Enter")
            await coordinator.wait_for_load_state()
            await wait_js(coordinator, "document.querySelectorAll('#results button').length === 2")
            assert token not in coordinator.url and coordinator.url.endswith("/web/replay.html")
            pages.assert_no_console_errors()
            await pages.close()
