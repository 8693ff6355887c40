"""Recording a lesson through the real SFU: an aiortc teacher publishes H264 + Opus, the
recorder writes fragmented MP4 from the encoded frames, and ffprobe judges the finished file."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from media_peers import Clip, Peer, load_clip, wait_for
from recording_probe import (
    KeepEverything,
    largest_step,
    probe,
    strictly_increasing,
)

from contracts.rooms import Role
from media.recorder import PARTIAL, RecorderSettings
from media.worker import Worker, WorkerSettings

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]


def recording_worker(directory: Path, hooks: KeepEverything, **recorder: Any) -> Worker:
    settings = WorkerSettings(recordings_dir=directory, recorder=RecorderSettings(**recorder))
    return Worker(settings, recording=hooks)


def one_after_another(first: Clip, second: Clip) -> Clip:
    """A camera that changes its resolution once (a new SPS, as Chromium's encoder does)."""
    assert first.time_base == second.time_base
    moved = [type(p)(p.data, p.pts + first.duration, p.keyframe) for p in second.packets]
    return Clip([*first.packets, *moved], first.time_base, first.duration + second.duration)


async def record_lesson(
    worker: Worker, hooks: KeepEverything, video: Clip, audio: Clip, seconds: float
) -> float:
    """The teacher publishes for ``seconds`` and leaves; the lesson's length, as the SFU saw it."""
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(audio, [(video, "video/H264")])
    try:
        await teacher.connect()
        transport = worker.transport("room-1", "teacher")
        assert transport is not None
        assert await wait_for(
            lambda: any(p.frames for p in transport.producers.values() if p.kind == "video"), 20
        )
        started = time.monotonic()
        await asyncio.sleep(seconds)
        await worker.leave("room-1", "teacher")
        length = time.monotonic() - started
    finally:
        await teacher.close()
    await worker.recordings_finished()
    return length


async def test_a_lesson_is_recorded_as_a_seekable_h264_aac_mp4(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    hooks = KeepEverything()
    worker = recording_worker(tmp_path, hooks)
    try:
        length = await record_lesson(
            worker, hooks, load_clip(clips["high"], "video"), load_clip(clips["opus"], "audio"), 8
        )
    finally:
        await worker.close()
    assert hooks.asked == ["room-1"]
    assert len(hooks.parts) == 1, hooks.parts
    part = hooks.parts[0]
    path = tmp_path / part.file
    assert path.exists() and not list(tmp_path.rglob(f"*{PARTIAL}"))
    assert part.faststart and part.dropped_frames == 0
    assert (part.width, part.height) == (640, 360)

    found = probe(path)
    assert found.errors == ""
    video, audio = found.stream("video"), found.stream("audio")
    assert (video["codec_name"], video["codec_tag_string"]) == ("h264", "avc3")
    assert (video["width"], video["height"]) == (640, 360)
    assert audio["codec_name"] == "aac" and int(audio["sample_rate"]) == 48000
    assert abs(found.duration - length) < 2.0, (found.duration, length)
    for kind in ("video", "audio"):
        times = found.dts_seconds(kind)
        assert strictly_increasing(times), kind
        assert largest_step(times) < 0.25, (kind, largest_step(times))
        assert times[0] < 0.5 and times[-1] > length - 2.0, (kind, times[0], times[-1])
    # faststart: the index (moov) before the media (mdat)
    head = path.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head
