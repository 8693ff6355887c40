"""A Chromium teacher (its own H264 encoder, which sends an IDR only when asked) is recorded:
the recorder's requests give the file a keyframe about every 2 s. The same lesson recorded
without the cadence shows what it costs (printed: tests assert behaviour, not bitrates)."""

from __future__ import annotations

import asyncio
import itertools
import statistics
from pathlib import Path

import pytest
from recording_probe import KeepEverything, probe
from support.browser import CHROMIUM_ARGS, chromium
from support.harness import running_app
from test_recording import recording_worker

from contracts.rooms import Role

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

LESSON_SECONDS = 14


async def chromium_lesson(directory: Path, keyframe_interval: float) -> Path:
    hooks = KeepEverything()
    worker = recording_worker(directory, hooks, keyframe_interval=keyframe_interval)
    try:
        async with running_app(media=worker) as h, chromium() as browser:
            await h.room("room-1")
            page = await browser.new_page()  # type: ignore[attr-defined]
            token = h.token(Role.teacher, subject="teacher-1")
            await page.goto(h.url(f"/web/sfu-demo.html?publish=1&token={token}"))
            assert await page.evaluate("window.sfuReady") == "ok"
            await asyncio.sleep(LESSON_SECONDS)
            await worker.leave("room-1", next(iter(worker.routers["room-1"].transports)))
            await worker.recordings_finished()
    finally:
        await worker.close()
    assert len(hooks.parts) == 1, hooks.parts
    return directory / hooks.parts[0].file


def keyframe_times(path: Path) -> list[float]:
    found = probe(path)
    times = found.dts_seconds("video")
    return [t for t, p in zip(times, found.packets["video"], strict=True) if "K" in p["flags"]]


def video_kbps(path: Path) -> float:
    found = probe(path)
    return float(found.stream("video").get("bit_rate", 0)) / 1000


async def test_a_chromium_teacher_sends_a_keyframe_every_two_seconds_while_recorded(
    tmp_path: Path,
) -> None:
    assert "--use-fake-device-for-media-stream" in CHROMIUM_ARGS
    cadenced = await chromium_lesson(tmp_path / "cadence", 2.0)
    keys = keyframe_times(cadenced)
    gaps = [b - a for a, b in itertools.pairwise(keys)]
    print(f"keyframes at {[round(k, 2) for k in keys]}")
    assert len(keys) >= LESSON_SECONDS / 2.5, keys
    assert statistics.median(gaps) <= 2.5, gaps
    assert max(gaps[1:-1] or [0]) <= 3.5, gaps  # ~2 s plus a PLI round trip, under load

    # The same lesson with requests only every 60 s: the encoder's own keyframes.
    sparse = await chromium_lesson(tmp_path / "sparse", 60.0)
    print(
        f"video bitrate with a keyframe every ~2 s: {video_kbps(cadenced):.0f} kbps "
        f"({len(keys)} keyframes); without: {video_kbps(sparse):.0f} kbps "
        f"({len(keyframe_times(sparse))} keyframes)"
    )
