"""H264 B-frames are found in the bitstream (the slice header's type), without decoding: an
encoder's x264 default has them, and WebRTC receivers play them out of order."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from media.frames import FrameParser, h264_is_b_slice


def _clip(directory: Path, name: str, *args: str) -> Path:
    out = directory / name
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=320x180:rate=30", "-t", "2", "-c:v", "libx264",
         "-pix_fmt", "yuv420p", "-g", "30", *args, str(out)],
        check=True,
    )  # fmt: skip
    return out


def _b_frames(path: Path) -> tuple[int, int]:
    """(B-frames the parser counted, frames) over the clip in decode order."""
    parser = FrameParser()
    frames = 0
    with av.open(str(path)) as container:
        for packet in container.demux(container.streams.video[0]):
            if packet.size:
                parser.parse("H264", bytes(packet), 0)
                frames += 1
    return parser.b_frames, frames


@pytest.mark.parametrize(
    ("args", "has_b"),
    [
        (("-profile:v", "main", "-bf", "2"), True),  # x264's default GOP structure
        (("-profile:v", "baseline", "-bf", "0"), False),
        (("-profile:v", "main", "-tune", "zerolatency"), False),
    ],
)
def test_b_frames_are_counted_only_when_the_encoder_makes_them(
    tmp_path: Path, args: tuple[str, ...], has_b: bool
) -> None:
    b_frames, frames = _b_frames(_clip(tmp_path, "clip.ts", *args))
    assert frames == 60
    assert (b_frames > 10) if has_b else (b_frames == 0), (b_frames, frames)


def test_garbage_is_not_a_b_slice() -> None:
    assert not h264_is_b_slice(b"")
    assert not h264_is_b_slice(b"\x01")
    assert not h264_is_b_slice(b"\x01\x00\x00\x00")  # exhausted Exp-Golomb codes
    assert not h264_is_b_slice(b"\x65\x88")  # an IDR slice
    assert h264_is_b_slice(b"\x01\x9c")  # first_mb 0 (1), slice_type 1 (010): B
