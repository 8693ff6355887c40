"""Recording a lesson through the real SFU: an aiortc teacher publishes H264 + Opus, the
recorder writes fragmented MP4 from the encoded frames, and ffprobe judges the finished file."""

from __future__ import annotations

import asyncio
import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from media_peers import Clip, Peer, load_clip, wait_for
from recording_probe import (
    KeepEverything,
    decoded_sizes,
    largest_step,
    probe,
    strictly_increasing,
)

from contracts.recording import RecordingCheckpoint
from contracts.rooms import Role
from media.recorder import PARTIAL, RecorderSettings
from media.recording_recovery import STALE_SECONDS
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
    # aligned: both tracks start together and end together (audio is filled to the video's end)
    video_times, audio_times = found.dts_seconds("video"), found.dts_seconds("audio")
    print(
        f"video {video_times[0]:.3f}-{video_times[-1]:.3f} s, audio {audio_times[0]:.3f}-{audio_times[-1]:.3f} s"
    )
    assert abs(video_times[0] - audio_times[0]) < 0.25
    assert abs(video_times[-1] - audio_times[-1]) < 0.25
    # faststart: the index (moov) before the media (mdat)
    head = path.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


async def test_a_resolution_change_mid_lesson_stays_in_one_playable_part(tmp_path: Path) -> None:
    from support.clips import make_clip

    big = load_clip(make_clip(tmp_path, "big.ts", size="640x360", seconds=4), "video")
    small = load_clip(make_clip(tmp_path, "small.ts", size="320x180", seconds=4), "video")
    hooks = KeepEverything()
    worker = recording_worker(tmp_path / "recordings", hooks)
    try:
        await record_lesson(
            worker, hooks, one_after_another(big, small), load_clip(_opus(tmp_path), "audio"), 7
        )
    finally:
        await worker.close()
    assert len(hooks.parts) == 1, hooks.parts
    path = tmp_path / "recordings" / hooks.parts[0].file
    found = probe(path)
    assert found.errors == ""
    sizes = decoded_sizes(path)
    # the SPS in band: ffmpeg's decoder follows it from one size to the other
    assert sizes[0] == (640, 360) and (320, 180) in sizes, sorted(set(sizes))
    assert sizes.count((320, 180)) > 30
    assert strictly_increasing(found.dts_seconds("video"))


async def test_a_teacher_who_publishes_again_starts_a_new_part(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    hooks = KeepEverything()
    worker = recording_worker(tmp_path, hooks)
    video, audio = load_clip(clips["high"], "video"), load_clip(clips["opus"], "audio")
    classroom = Peer(worker, "class-1", Role.classroom)  # keeps the room open meanwhile
    try:
        await classroom.connect()
        for _ in range(2):
            teacher = Peer(worker, "teacher", Role.teacher)
            teacher.publish(audio, [(video, "video/H264")])
            await teacher.connect()
            assert await wait_for(lambda: len(classroom.video("teacher")) > 0, 20)
            await asyncio.sleep(4)
            await worker.leave("room-1", "teacher")
            await teacher.close()
        await worker.leave("room-1", "class-1")
        await worker.recordings_finished()
    finally:
        await classroom.close()
        await worker.close()
    assert [p.part for p in hooks.parts] == [1, 2], hooks.parts
    assert len({p.file for p in hooks.parts}) == 2
    for part in hooks.parts:
        found = probe(tmp_path / part.file)
        assert found.errors == "" and found.duration > 2.0, (part.file, found.duration)


async def test_the_recorder_asks_for_a_keyframe_when_the_last_is_two_seconds_old(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """A pre-encoded clip with a 20 s GOP ignores the requests: what counts is that they go
    upstream as PLIs at the cadence (Chromium answers them)."""
    hooks = KeepEverything()
    worker = recording_worker(tmp_path, hooks)
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(None, [(load_clip(clips["h264_long_gop"], "video"), "video/H264")])
    try:
        await teacher.connect()
        transport = worker.transport("room-1", "teacher")
        assert transport is not None
        assert await wait_for(lambda: transport.producer_group("video").get("high"), 20)
        producer = transport.producer_group("video")["high"]
        router = worker.routers["room-1"]
        assert router.recording is not None
        assert await wait_for(
            lambda: router.recording is not None and router.recording.recorder, 10
        )
        recorder = router.recording.recorder
        assert recorder is not None
        assert await wait_for(lambda: recorder.keyframes >= 1, 10)
        plis_before = producer.plis_sent
        await asyncio.sleep(1.5)
        assert recorder.keyframes_asked == 0  # the last keyframe is not 2 s old yet
        await asyncio.sleep(3.0)
        # asked from 2 s on, and again every 0.5 s while none comes
        assert 3 <= recorder.keyframes_asked <= 8, recorder.keyframes_asked
        assert producer.plis_sent - plis_before >= 3
    finally:
        await teacher.close()
        await worker.close()


def _opus(directory: Path) -> Path:
    import subprocess

    out = directory / "voice.ogg"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=48000", "-t", "8", "-c:a", "libopus", str(out)],
        check=True,
    )  # fmt: skip
    return out


async def test_a_killed_process_leaves_a_fragmented_file_readable_up_to_the_last_seconds(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    """kill -9 mid-lesson: no finishing, no remux; the `.partial` holds every complete
    fragment (a keyframe every 2 s starts one)."""
    import json
    import os
    import signal
    import subprocess
    import sys

    here = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(here.parent), str(here)])}
    child = subprocess.Popen(
        [sys.executable, str(here / "recording_child.py"), str(tmp_path), str(clips["high"]),
         str(clips["opus"])],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 60)
        started = json.loads(line)
        await asyncio.sleep(7)
        child.send_signal(signal.SIGKILL)
        killed_at = time.time()
        child.wait(10)
        checkpoints = [
            RecordingCheckpoint.model_validate_json(line) for line in child.stdout.readlines()
        ]
    finally:
        if child.poll() is None:
            child.kill()
    partial = Path(started["partial"])
    assert partial.name.endswith(PARTIAL) and partial.stat().st_size > 0
    recorded_for = killed_at - started["started_at"]
    found = probe(partial)
    video = found.stream("video")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    last = found.dts_seconds("video")[-1]
    print(f"recorded {recorded_for:.2f} s before the kill, readable {last:.2f} s")
    # lost: the fragment being written (≤ one 2 s GOP) and what was queued for the disk
    assert last >= recorded_for - 2.5, (last, recorded_for, found.errors)
    assert strictly_increasing(found.dts_seconds("video"))
    assert found.dts_seconds("audio")[-1] >= recorded_for - 3.0
    assert len(decoded_sizes(partial)) >= 25 * (recorded_for - 2.5)
    # The checkpoints (every 2 s here) hash the file as it grew: the newest one still holds
    # for what the crash left, and only the last seconds are not covered.
    assert len(checkpoints) >= 2, checkpoints
    newest = checkpoints[-1]
    assert [c.bytes for c in checkpoints] == sorted(c.bytes for c in checkpoints)
    assert newest.file + PARTIAL == str(partial.relative_to(tmp_path))
    assert hashlib.sha256(partial.read_bytes()[: newest.bytes]).hexdigest() == newest.sha256
    assert newest.bytes >= partial.stat().st_size * (recorded_for - 3.0) / recorded_for

    # The node starts again: a working file nobody writes any more is finished from what it
    # holds (a live part's file grows every ~2 s and is never touched).
    hooks = KeepEverything()
    worker = recording_worker(tmp_path, hooks)
    try:
        assert await worker.recover_recordings() == 0  # just written: it may still be live
        stale = time.time() - 2 * STALE_SECONDS
        os.utime(partial, (stale, stale))
        assert await worker.recover_recordings() == 1
    finally:
        await worker.close()
    (part,) = hooks.parts
    final = tmp_path / part.file
    assert part.recovered and part.part == 1 and part.participant_id == "teacher"
    assert final.name + PARTIAL == partial.name and not partial.exists()
    recovered = probe(final)
    assert recovered.errors == "" and abs(recovered.duration - last) < 0.5
    assert strictly_increasing(recovered.dts_seconds("video"))
    head = final.read_bytes()[:4096]
    assert head.find(b"moov") >= 0 and (
        b"mdat" not in head or head.find(b"moov") < head.find(b"mdat")
    )
