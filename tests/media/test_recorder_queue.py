"""The recorder's bounded queue: a disk that does not keep up costs frames, never memory, and
what is written still decodes (video resumes at a keyframe after a drop)."""

from __future__ import annotations

import subprocess
from pathlib import Path

from prometheus_client import REGISTRY
from recording_probe import probe, strictly_increasing
from support.clips import load_clip, make_clip
from test_origin_and_sinks import ClipOrigin

from media.producer import Producer
from media.recorder import Recorder, RecorderSettings


async def test_a_burst_beyond_the_queue_drops_to_the_next_keyframe_and_the_file_decodes(
    tmp_path: Path,
) -> None:
    clip = load_clip(make_clip(tmp_path, "camera.ts", size="640x360", seconds=6), "video")
    origin = ClipOrigin()
    producer = Producer("teacher", "video", "high", origin, source="camera")
    recorder = Recorder(
        tmp_path, "room-1/part1.mp4", "room-1", "teacher", 1, producer, None,
        RecorderSettings(queue_frames=8),
    )  # fmt: skip
    assert origin.on_frame is not None
    metric = "sanke_recording_dropped_frames_total"
    dropped_before = REGISTRY.get_sample_value(metric, {"kind": "video"}) or 0.0
    # 180 frames at once, faster than any disk: the writer thread cannot keep up
    for packet in clip.packets:
        origin.on_frame("H264", packet.data, packet.pts)
    finished = await recorder.finish()
    assert finished is not None
    assert recorder.dropped > 0 and finished.dropped_frames == recorder.dropped
    assert finished.video_frames + recorder.dropped <= len(clip.packets)
    assert REGISTRY.get_sample_value(metric, {"kind": "video"}) == dropped_before + recorder.dropped
    path = tmp_path / finished.file
    found = probe(path)
    assert found.errors == "" and strictly_increasing(found.dts_seconds("video"))
    decoded = subprocess.run(
        ["ffmpeg", "-hide_banner", "-v", "error", "-i", str(path), "-f", "null", "-"],
        capture_output=True,
        text=True,
    )
    assert decoded.returncode == 0 and decoded.stderr == "", decoded.stderr  # no missing refs
    producer.close()
