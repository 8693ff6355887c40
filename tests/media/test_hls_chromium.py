"""A Chromium teacher (its own H264 encoder, an IDR only when asked) is packaged as HLS: the
packager's keyframe requests give segments of 1–2 s; printed: their durations."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from hls_support import PackageEverything, hls_worker, parse_master, parse_media
from recording_probe import probe
from support.browser import chromium
from support.harness import running_app

from contracts.rooms import Role, RoomKind

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(120)]


async def test_a_chromium_teacher_gives_segments_of_one_to_two_seconds(tmp_path: Path) -> None:
    out = tmp_path / "hls"
    worker = hls_worker(out, PackageEverything(), playlist_type="event")
    try:
        async with running_app(media=worker) as h, chromium() as browser:
            await h.room("room-1", kind=RoomKind.broadcast)
            page = await browser.new_page()  # type: ignore[attr-defined]
            token = h.token(Role.teacher, subject="teacher-1")
            await page.goto(h.url(f"/web/sfu-demo.html?publish=1&token={token}"))
            assert await page.evaluate("window.sfuReady") == "ok"
            await asyncio.sleep(9)
            await worker.leave("room-1", next(iter(worker.routers["room-1"].transports)))
            await worker.hls_finished()
    finally:
        await worker.close()
    master = out / "room-1" / "master.m3u8"
    variants = parse_master(master.read_text())
    assert variants, master.read_text()
    for attrs, uri in variants:
        playlist = parse_media((master.parent / uri).read_text())
        durations = [round(d, 2) for d, _ in playlist.segments]
        print(f"{attrs['RESOLUTION']} {attrs['BANDWIDTH']} bit/s: segments {durations}")
        assert playlist.ended and len(durations) >= 4, durations
        # the first waits for the encoder's first answer; the last is cut by the leave
        assert all(0.9 <= d <= 2.2 for d in durations[1:-1]), durations
        variant = (master.parent / uri).parent
        joined = tmp_path / f"{attrs['RESOLUTION']}.mp4"
        with joined.open("wb") as f:
            f.write((variant / playlist.init).read_bytes())
            for _, name in playlist.segments:
                f.write((variant / name).read_bytes())
        found = probe(joined)
        assert found.errors == "" and found.stream("video")["codec_name"] == "h264"
        assert found.stream("audio")["codec_name"] == "aac"
