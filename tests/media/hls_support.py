"""Live HLS from the real SFU for tests: an aiortc teacher publishing H264 high + low layers
and Opus, a Worker that packages every room, and readers of what it wrote (playlists parsed
by hand, segments judged by ffprobe)."""

from __future__ import annotations

import contextlib
import re
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection
from media_peers import Clip, Peer, load_clip, wait_for
from support.clips import make_clip

from contracts.rooms import Role
from media.hls_packager import HlsSettings
from media.worker import Worker, WorkerSettings


class PackageEverything:
    def __init__(self) -> None:
        self.asked: list[str] = []

    async def should_package(self, room_id: str) -> bool:
        self.asked.append(room_id)
        return True


def hls_worker(directory: Path, hooks: PackageEverything, **settings: object) -> Worker:
    hls = HlsSettings(linger_seconds=600, **settings)  # type: ignore[arg-type]
    return Worker(WorkerSettings(hls_dir=directory, hls=hls), hls=hooks)


def one_after_another(first: Clip, second: Clip) -> Clip:
    """A camera that changes its resolution once (a new SPS, as Chromium's encoder does)."""
    moved = [type(p)(p.data, p.pts + first.duration, p.keyframe) for p in second.packets]
    return Clip([*first.packets, *moved], first.time_base, first.duration + second.duration)


def opus_clip(directory: Path, seconds: int = 20) -> Path:
    out = directory / "voice.ogg"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=48000", "-t", str(seconds), "-c:a", "libopus",
         str(out)],
        check=True,
    )  # fmt: skip
    return out


@dataclass
class Layers:
    high: Clip
    low: Clip
    audio: Clip


def layers(directory: Path, low: Path, *, resolution_change: bool = False) -> Layers:
    """``low``: the conftest's 320x180 clip at 120 kbit/s (a keyframe every 2 s)."""
    if resolution_change:
        big = load_clip(make_clip(directory, "big.ts", size="640x360", seconds=3), "video")
        small = load_clip(make_clip(directory, "small.ts", size="480x270", seconds=3), "video")
        high = one_after_another(big, small)
    else:
        high = load_clip(make_clip(directory, "high.ts", size="640x360", seconds=10), "video")
    return Layers(high, load_clip(low, "video"), load_clip(opus_clip(directory), "audio"))


@contextlib.asynccontextmanager
async def live_teacher(worker: Worker, clips: Layers, room: str = "room-1") -> AsyncIterator[Peer]:
    """The teacher publishes until the block ends, then leaves; the room's HLS is finished."""
    teacher = Peer(worker, "teacher", Role.teacher, room=room)
    # aiortc's default bundling leaves the second video m-line on a transport it discards;
    # browsers bundle everything on one (tests/media/test_screen_share.py)
    teacher.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    teacher.pc.on("track", teacher._on_track)
    teacher.publish(clips.audio, [(clips.high, "video/H264"), (clips.low, "video/H264")])
    try:
        await teacher.connect()
        yield teacher
    finally:
        with contextlib.suppress(Exception):
            await worker.leave(room, "teacher")
        await teacher.close()
        await worker.hls_finished()


@dataclass
class MediaPlaylist:
    target: int
    sequence: int
    init: str
    segments: list[tuple[float, str]]  # (EXTINF, URI)
    ended: bool
    dates: list[str]


def parse_master(text: str) -> list[tuple[dict[str, str], str]]:
    assert text.startswith("#EXTM3U"), text
    lines = [line for line in text.splitlines() if line]
    found = []
    for i, line in enumerate(lines):
        if line.startswith("#EXT-X-STREAM-INF:"):
            attrs = dict(re.findall(r'([A-Z-]+)=("[^"]*"|[^,]*)', line.split(":", 1)[1]))
            found.append(({k: v.strip('"') for k, v in attrs.items()}, lines[i + 1]))
    return found


def parse_media(text: str) -> MediaPlaylist:
    assert text.startswith("#EXTM3U"), text
    target = sequence = 0
    init = ""
    segments: list[tuple[float, str]] = []
    dates: list[str] = []
    duration: float | None = None
    for line in text.splitlines():
        if line.startswith("#EXT-X-TARGETDURATION:"):
            target = int(line.split(":")[1])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            sequence = int(line.split(":")[1])
        elif line.startswith("#EXT-X-MAP:"):
            init = re.findall(r'URI="([^"]+)"', line)[0]
        elif line.startswith("#EXTINF:"):
            duration = float(line.split(":")[1].split(",")[0])
        elif line.startswith("#EXT-X-PROGRAM-DATE-TIME:"):
            dates.append(line.split(":", 1)[1])
        elif line and not line.startswith("#"):
            assert duration is not None, text
            segments.append((duration, line))
            duration = None
    return MediaPlaylist(target, sequence, init, segments, "#EXT-X-ENDLIST" in text, dates)


async def wait_for_segments(playlist: Path, count: int, timeout: float) -> bool:
    def enough() -> bool:
        try:
            return len(parse_media(playlist.read_text()).segments) >= count
        except (OSError, AssertionError):
            return False

    return await wait_for(enough, timeout, interval=0.1)


def joined(variant: Path, playlist: MediaPlaylist, out: Path) -> Path:
    """The init segment and every listed segment, one after another (what a player reads)."""
    with out.open("wb") as f:
        f.write((variant / playlist.init).read_bytes())
        for _, uri in playlist.segments:
            f.write((variant / uri).read_bytes())
    return out


async def live_edge_age(playlist: Path) -> float:
    """Seconds since the newest segment appeared (its file's change time)."""
    newest = parse_media(playlist.read_text()).segments[-1][1]
    return time.time() - (playlist.parent / newest).stat().st_mtime
