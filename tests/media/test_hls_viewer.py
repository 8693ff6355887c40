"""Live HLS end to end: an aiortc teacher publishes through the real SFU, the app (create_app)
serves the signed playlists and segments, and headless Chromium's viewer page plays the
master playlist with the browser's own HLS and with the vendored hls.js; live latency is
measured and printed. The signed URLs: inner URIs validate, a wrong or expired auth_key is a
403 with a JSON error, the cache headers a CDN needs are there."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from hls_support import PackageEverything, hls_worker, layers, live_teacher, parse_master
from support.browser import chromium, wait_js
from support.harness import running_app

from contracts.rooms import Role, RoomKind
from lessons.hls_signing import UrlSigner

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(150)]

KEY = "hls-url-key-of-the-test-0123456789"


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, dict[str, str], bytes]:
    async with session.get(url) as reply:
        return reply.status, dict(reply.headers), await reply.read()


async def test_the_viewer_plays_live_hls_natively_and_with_hls_js(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    hooks = PackageEverything()
    worker = hls_worker(tmp_path / "hls", hooks)
    lesson = layers(tmp_path, clips["low"])
    async with running_app(media=worker, hls_url_key=KEY, hls_url_ttl_seconds=600) as h:
        await h.room("room-1", kind=RoomKind.broadcast)
        viewer = h.token(Role.viewer, subject="viewer-1")
        try:
            async with live_teacher(worker, lesson):
                link = await _link(h, viewer)
                assert link["url"].startswith("/hls/room-1/master.m3u8?auth_key=")
                await _check_signed_files(h, link["url"])
                await _check_refusals(h, link["url"])
                async with chromium() as browser:
                    for player in ("native", "hlsjs"):
                        await _play(h, browser, viewer, player, _started_at(worker))
                    await _full_room_falls_back_to_hls(h, browser, viewer)
        finally:
            await worker.close()


def _started_at(worker: Any) -> float:
    """The wall clock of the stream's time 0 (the first keyframe's arrival at the SFU)."""
    packager = worker.routers["room-1"].hls.packager
    assert packager is not None and packager.started_at is not None
    return float(packager.started_at)


async def _link(h: Any, token: str) -> dict[str, Any]:
    deadline = time.monotonic() + 25
    while True:
        async with h.session.get(
            h.url("/api/v1/rooms/room-1/hls"), headers={"Authorization": f"Bearer {token}"}
        ) as reply:
            assert reply.status == 200, await reply.text()
            link: dict[str, Any] = await reply.json()
        if link["live"] or time.monotonic() > deadline:
            assert link["live"]
            return link
        await _sleep(0.3)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)


async def _check_signed_files(h: Any, master_url: str) -> None:
    status, headers, body = await _get(h.session, h.url(master_url))
    assert status == 200
    assert headers["Content-Type"] == "application/vnd.apple.mpegurl"
    assert headers["Cache-Control"] == "public, max-age=1, s-maxage=1"
    variants = parse_master(body.decode())
    assert len(variants) == 2
    base = master_url.split("?")[0].rsplit("/", 1)[0]
    for _, uri in variants:
        assert "auth_key=" in uri  # every inner URI carries its own signature
        status, headers, body = await _get(h.session, h.url(f"{base}/{uri}"))
        assert status == 200, body
        text = body.decode()
        init = text.split('URI="')[1].split('"')[0]
        segment = [line for line in text.splitlines() if line and not line.startswith("#")][-1]
        variant_base = f"{base}/{uri.split('?')[0].rsplit('/', 1)[0]}"
        for name, kind in ((init, "video/mp4"), (segment, "video/iso.segment")):
            status, headers, body = await _get(h.session, h.url(f"{variant_base}/{name}"))
            assert status == 200 and body, name
            assert headers["Content-Type"] == kind
            assert headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert headers["Access-Control-Allow-Origin"] == "*"


async def _check_refusals(h: Any, master_url: str) -> None:
    path, query = master_url.split("?")
    timestamp, rand, uid, _ = query.removeprefix("auth_key=").split("-")
    wrong = f"{path}?auth_key={timestamp}-{rand}-{uid}-{'0' * 32}"
    other_room = f"/hls/room-2/master.m3u8?{query}"
    signer = UrlSigner(KEY, 600)
    old = signer.lesson_parts("room-1", now=time.time() - 3600)  # issued an hour ago
    expired = signer.sign(path, old)
    for url, code in (
        (wrong, "url_signature_invalid"),
        (other_room, "url_signature_invalid"),
        (path, "url_signature_invalid"),
        (expired, "url_signature_expired"),
    ):
        status, headers, body = await _get(h.session, h.url(url))
        assert status == 403, (url, status, body)
        assert headers["Content-Type"].startswith("application/json")
        import json

        assert json.loads(body)["error"]["code"] == code, (url, body)
    # the path is checked too: no way out of the HLS directory
    status, _, _ = await _get(h.session, h.url("/hls/room-1/../../etc/passwd?" + query))
    assert status in (403, 404)


async def _play(h: Any, browser: Any, viewer: str, player: str, started_at: float) -> None:
    page = await browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    query = "&player=hlsjs" if player == "hlsjs" else ""
    await page.goto(h.url(f"/web/viewer.html?token={viewer}&hls=1{query}"))
    video = "document.getElementById('teacher-video')"
    assert await wait_js(
        page, "window.sanke.player !== null && window.sanke.player !== undefined", 30_000
    )
    assert await page.evaluate("window.sanke.player.kind") == player
    assert await wait_js(page, f"{video}.currentTime > 1", 30_000), await page.evaluate(
        f"[{video}.currentTime, {video}.readyState, String({video}.error && {video}.error.message)]"
    )
    start = await page.evaluate(f"{video}.currentTime")
    await _sleep(2.0)
    assert await page.evaluate(f"{video}.currentTime") > start + 1.0  # it plays on, live
    width, height = await page.evaluate(f"[{video}.videoWidth, {video}.videoHeight]")
    assert (width, height) in {(640, 360), (320, 180)}, (width, height)
    if player == "hlsjs":
        # The picture is the variant hls.js plays. Its adaptive switch names the new level
        # before that level's first segment is on screen, so the two may differ for a
        # segment or two; they must agree soon.
        agreed = False
        for _ in range(30):
            width, height, level = await page.evaluate(
                f"(() => {{ const h = window.sanke.player.hls; const l = h.levels[h.currentLevel];"
                f" return [{video}.videoWidth, {video}.videoHeight, [l.width, l.height]]; }})()"
            )
            if [width, height] == level:
                agreed = True
                break
            await _sleep(0.2)
        assert agreed, ([width, height], level)
    # arrival at the SFU → on screen: the media time the player shows against the wall
    # clock (segments keep the stream's timestamps: time 0 is the first keyframe's arrival)
    shown = await page.evaluate(f"{video}.currentTime")
    latency = time.time() - started_at - shown
    page_says = await page.evaluate("window.sanke.player.latency()")
    print(f"{player}: {width}x{height}, live latency {latency:.2f} s (the page: {page_says})")
    # the target is ≤ 8 s (docs/hls.md: 4–6 s measured here); a loaded 2-core CI box stalls
    assert 0 < latency < 10, latency
    button = await page.evaluate("document.getElementById('mode').getAttribute('aria-pressed')")
    assert button == "true"
    assert not errors, errors
    await page.close()


async def _full_room_falls_back_to_hls(h: Any, browser: Any, viewer: str) -> None:
    """Its WebRTC seats taken (one, by a classroom), the viewer page plays HLS by itself."""
    room = await h.rooms.get("room-1")
    room.max_participants = 1
    await h.rooms.put(room)
    await h.joined(Role.classroom, subject="class-1")
    page = await browser.new_page()
    await page.goto(h.url(f"/web/viewer.html?token={viewer}"))
    video = "document.getElementById('teacher-video')"
    assert await wait_js(page, "window.sanke.mode === 'hls' && !!window.sanke.player", 20_000)
    assert await wait_js(page, f"{video}.currentTime > 1", 30_000)
    message = await page.evaluate("document.getElementById('message').textContent")
    assert "已满" in message, message
    await page.close()
