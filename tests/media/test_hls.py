"""Live HLS through the real SFU: an aiortc teacher publishes H264 high (640x360) and low
(320x180) layers and Opus; the packager writes CMAF segments and playlists from the encoded
frames, and ffprobe judges them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from hls_support import (
    PackageEverything,
    hls_worker,
    joined,
    layers,
    live_teacher,
    parse_master,
    parse_media,
    wait_for_segments,
)
from recording_probe import decoded_sizes, largest_step, probe, strictly_increasing

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(120)]


async def test_a_live_lesson_is_two_variants_of_cmaf_segments(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    hooks = PackageEverything()
    out = tmp_path / "hls"
    worker = hls_worker(out, hooks, window=3)
    lesson = layers(tmp_path, clips["low"])
    # a live window a previous process left behind (it stopped before its linger ended)
    left = out / "room-1" / "20200101T000000Z-1" / "high"
    left.mkdir(parents=True)
    (left / "seg000001.m4s").write_bytes(b"old")
    try:
        async with live_teacher(worker, lesson):
            master_path = out / "room-1" / "master.m3u8"
            started = time.monotonic()
            assert await wait_for_segments_of_master(master_path, 3, 25)
            print(f"first segments of both variants after {time.monotonic() - started:.1f} s")
            master = master_path.read_text()
            variants = parse_master(master)
            assert not left.exists()  # removed when the room's first stream started
            live = {uri: parse_media((master_path.parent / uri).read_text()) for _, uri in variants}
    finally:
        await worker.close()
    assert hooks.asked == ["room-1"]
    assert [a["RESOLUTION"] for a, _ in variants] == ["640x360", "320x180"], master
    high, low = (a for a, _ in variants)
    assert int(high["BANDWIDTH"]) > int(low["BANDWIDTH"]) > 20_000, master
    for attrs, uri in variants:
        assert attrs["CODECS"].startswith("avc3.42") and attrs["CODECS"].endswith(",mp4a.40.2")
        playlist = live[uri]
        # a sliding window, still live: no end, a target of 1-2 s
        assert not playlist.ended and len(playlist.segments) <= 3 and playlist.target <= 2
        assert playlist.dates, "EXT-X-PROGRAM-DATE-TIME lets players measure latency"
    for attrs, uri in variants:
        variant = (master_path.parent / uri).parent
        final = parse_media((variant / "index.m3u8").read_text())
        assert final.ended  # the teacher left: the playlist says the stream ended
        durations = [d for d, _ in final.segments]
        assert all(0.9 <= d <= 2.1 for d in durations[:-1]), durations
        found = probe(joined(variant, final, tmp_path / f"{attrs['RESOLUTION']}.mp4"))
        assert found.errors == "", found.errors
        video, audio = found.stream("video"), found.stream("audio")
        assert (video["codec_name"], video["codec_tag_string"]) == ("h264", "avc3")
        assert f"{video['width']}x{video['height']}" == attrs["RESOLUTION"]
        assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 48000
        for kind in ("video", "audio"):
            times = found.dts_seconds(kind)
            assert strictly_increasing(times), kind
            # continuous across segment boundaries
            assert largest_step(times) < 0.25, (kind, largest_step(times))
        span = found.dts_seconds("video")[-1] - found.dts_seconds("video")[0]
        # the playlist's EXTINFs add up to what the segments hold
        assert abs(sum(durations) - span) < 0.5, (sum(durations), span)


async def wait_for_segments_of_master(master: Path, count: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if master.exists() and len(parse_master(master.read_text())) == 2:
            break
        await asyncio.sleep(0.1)
    else:
        return False
    return all(
        [
            await wait_for_segments(
                master.parent / uri, count, max(0.1, deadline - time.monotonic())
            )
            for _, uri in parse_master(master.read_text())
        ]
    )


async def test_a_resolution_change_mid_lesson_stays_one_playable_stream(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    hooks = PackageEverything()
    out = tmp_path / "hls"
    worker = hls_worker(out, hooks, playlist_type="event")
    lesson = layers(tmp_path, clips["low"], resolution_change=True)
    try:
        async with live_teacher(worker, lesson):
            master = out / "room-1" / "master.m3u8"
            assert await wait_for_segments_of_master(master, 1, 20)
            high = master.parent / parse_master(master.read_text())[0][1]
            assert await wait_for_segments(high, 5, 25)  # past the change at 3 s
    finally:
        await worker.close()
    playlist = parse_media(high.read_text())
    assert playlist.ended and playlist.sequence == 0  # an event playlist keeps every segment
    found = probe(joined(high.parent, playlist, tmp_path / "high.mp4"))
    assert found.errors == ""
    sizes = decoded_sizes(tmp_path / "high.mp4")
    assert sizes[0] == (640, 360) and sizes.count((480, 270)) > 30, sorted(set(sizes))
    assert strictly_increasing(found.dts_seconds("video"))
    # the master playlist says the variant's resolution as it is now
    assert "RESOLUTION=480x270" in master.read_text(), master.read_text()
    await _chromium_follows_the_change(out, high.relative_to(out))


PAGE = """<!doctype html><html><body><video id="v" muted autoplay playsinline></video>
<script src="/web/vendor/hls.js/hls.min.js"></script>
<script>
  const v = document.getElementById("v");
  window.widths = [];
  window.failure = null;
  v.addEventListener("resize", () => window.widths.push(v.videoWidth));
  v.addEventListener("error", () => window.failure = String(v.error && v.error.message));
  const url = "/hls/{playlist}";
  if (location.hash === "#hlsjs") {
    const hls = new Hls({ enableWorker: false });
    hls.on(Hls.Events.ERROR, (e, d) => { if (d.fatal) window.failure = d.details; });
    hls.loadSource(url); hls.attachMedia(v);
  } else { v.src = url; }
  v.play().catch(() => {});
</script></body></html>"""


async def _chromium_follows_the_change(directory: Path, playlist: Path) -> None:
    """Chromium plays the variant through its new SPS (avc3: one init segment), natively and
    with hls.js, and its picture follows: 640 wide, then 480."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer
    from support.browser import chromium, wait_js

    async def page(request: web.Request) -> web.Response:
        return web.Response(
            text=PAGE.replace("{playlist}", str(playlist)), content_type="text/html"
        )

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_static("/hls", directory)
    app.router.add_static("/web", Path(__file__).resolve().parents[2] / "web")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with chromium() as browser:
            for how in ("native", "hlsjs"):
                tab = await browser.new_page()  # type: ignore[attr-defined]
                await tab.goto(str(server.make_url("/")) + f"#{how}")
                video = "document.getElementById('v')"
                assert await wait_js(tab, f"{video}.videoWidth === 640", 20_000), how
                assert await wait_js(tab, f"{video}.videoWidth === 480", 20_000), (
                    how,
                    await tab.evaluate("[window.widths, window.failure]"),
                )
                assert await tab.evaluate("window.failure") is None, how
                print(how, "widths Chromium showed:", await tab.evaluate("window.widths"))
                await tab.close()
    finally:
        await server.close()


async def test_the_packager_asks_each_layer_for_a_keyframe_every_second(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """A pre-encoded clip with a 20 s GOP ignores the requests: what counts is that they go
    upstream as PLIs at the cadence (Chromium answers them: docs/recording.md measured it)."""
    from media_peers import Peer, load_clip, wait_for

    from contracts.rooms import Role

    hooks = PackageEverything()
    worker = hls_worker(tmp_path / "hls", hooks)
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(None, [(load_clip(clips["h264_long_gop"], "video"), "video/H264")])
    try:
        await teacher.connect()
        router = worker.routers["room-1"]
        assert await wait_for(lambda: router.hls is not None and router.hls.packager, 20)
        assert router.hls is not None and router.hls.packager is not None
        packager = router.hls.packager
        producer = packager.layers["high"].producer
        assert await wait_for(lambda: bool(packager.variants), 10)  # its first keyframe came
        plis_before, asked_before = producer.plis_sent, packager.keyframes_asked
        await asyncio.sleep(3.0)
        # asked from 1 s on, and again every 0.25 s while none comes (throttled to 2/s)
        assert packager.keyframes_asked - asked_before >= 6, packager.keyframes_asked
        assert producer.plis_sent - plis_before >= 4, producer.plis_sent
    finally:
        await teacher.close()
        await worker.close()
