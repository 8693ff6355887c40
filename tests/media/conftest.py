"""Media test fixtures: encoded clips generated once per session with ffmpeg (never committed)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Helpers shared by the media tests (tests/ has no packages; pytest uses importlib mode).
sys.path.insert(0, str(Path(__file__).parent))


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required (apt-get install -y ffmpeg)")
    d = tmp_path_factory.mktemp("clips")
    src = ["-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30", "-t", "12"]
    h264 = [
        "-c:v",
        "libx264",
        "-profile:v",
        "baseline",
        "-bf",
        "0",
        "-pix_fmt",
        "yuv420p",
        "-tune",
        "zerolatency",
        "-g",
        "60",
    ]
    out = {
        "high": d / "high.ts",
        "low": d / "low.ts",
        "vp8": d / "vp8.webm",
        "opus": d / "opus.ogg",
        "h264_long_gop": d / "long_gop.ts",
    }
    _ffmpeg(*src, *h264, "-b:v", "800k", str(out["high"]))
    _ffmpeg(*src, "-vf", "scale=320:180", *h264, "-b:v", "120k", str(out["low"]))
    _ffmpeg(
        *src,
        "-c:v",
        "libvpx",
        "-b:v",
        "600k",
        "-g",
        "60",
        "-deadline",
        "realtime",
        "-cpu-used",
        "8",
        str(out["vp8"]),
    )
    _ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "12",
        "-c:a",
        "libopus",
        "-b:a",
        "48k",
        "-ac",
        "2",
        str(out["opus"]),
    )
    _ffmpeg(*src, *h264[:-2], "-g", "600", "-b:v", "600k", str(out["h264_long_gop"]))
    return out
