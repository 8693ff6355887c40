"""Encoded test clips (made with ffmpeg in the test session) played as aiortc tracks."""

from __future__ import annotations

import asyncio
import fractions
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import pytest
from aiortc import RTCRtpSender
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

H264_ARGS = ["-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-pix_fmt", "yuv420p",
             "-tune", "zerolatency", "-g", "30"]  # fmt: skip


def make_clip(directory: Path, name: str, *, size: str = "320x180", seconds: int = 6) -> Path:
    """An H264 clip of ffmpeg's test pattern with a keyframe every second."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required (apt-get install -y ffmpeg)")
    out = directory / name
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", f"testsrc2=size={size}:rate=30", "-t", str(seconds), *H264_ARGS, "-b:v", "300k", str(out)],
        check=True,
    )  # fmt: skip
    return out


@dataclass
class ClipPacket:
    data: bytes
    pts: int
    keyframe: bool


@dataclass
class Clip:
    packets: list[ClipPacket]
    time_base: fractions.Fraction
    duration: int  # in time_base units


def load_clip(path: Path, kind: str) -> Clip:
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        packets = [
            ClipPacket(bytes(p), int(p.pts), bool(p.is_keyframe))
            for p in container.demux(stream)
            if p.size and p.pts is not None
        ]
        time_base = stream.time_base
    packets.sort(key=lambda p: p.pts)
    first = packets[0].pts
    for p in packets:
        p.pts -= first
    step = packets[1].pts - packets[0].pts if len(packets) > 1 else 1
    return Clip(packets, time_base, packets[-1].pts + step)


class ClipTrack(MediaStreamTrack):
    """Plays an encoded clip in real time as ``av.Packet``s (no encoder), looping."""

    def __init__(self, kind: str, clip: Clip) -> None:
        super().__init__()
        self.kind = kind
        self._clip = clip
        self._i = 0
        self._loop = 0
        self._start: float | None = None
        self.sent = 0

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        clip = self._clip
        if self._start is None:
            self._start = time.monotonic()
        p = clip.packets[self._i]
        pts = p.pts + self._loop * clip.duration
        delay = self._start + float(pts * clip.time_base) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        packet = av.Packet(p.data)
        packet.pts = pts
        packet.time_base = clip.time_base
        self._i += 1
        if self._i == len(clip.packets):
            self._i, self._loop = 0, self._loop + 1
        self.sent += 1
        return packet


def prefer(transceiver: Any, mime: str) -> None:
    kind = mime.split("/")[0]
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in caps if c.mimeType.lower() == mime.lower()]
    rtx = [c for c in caps if c.mimeType.lower() == f"{kind}/rtx"]
    transceiver.setCodecPreferences(chosen + rtx)
