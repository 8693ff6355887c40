"""What ffprobe (Debian's ffmpeg) says of a recording: streams, packets, decoded frame sizes."""

from __future__ import annotations

import itertools
import json
import subprocess
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from contracts.recording import RecordingCheckpoint, RecordingFinished


@dataclass
class Probe:
    streams: list[dict[str, Any]]
    duration: float
    packets: dict[str, list[dict[str, Any]]]  # by codec type
    errors: str

    def stream(self, kind: str) -> dict[str, Any]:
        return next(s for s in self.streams if s["codec_type"] == kind)

    def dts_seconds(self, kind: str) -> list[float]:
        base = Fraction(self.stream(kind)["time_base"])
        return [float(int(p["dts"]) * base) for p in self.packets[kind]]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ffprobe", "-hide_banner", *args], capture_output=True, text=True)


def probe(path: Path) -> Probe:
    shown = _run(
        "-v", "error", "-show_streams", "-show_format", "-show_packets",
        "-show_entries", "packet=stream_index,pts,dts,flags", "-of", "json", str(path),
    )  # fmt: skip
    data = json.loads(shown.stdout)
    streams = data["streams"]
    kinds = {s["index"]: s["codec_type"] for s in streams}
    packets: dict[str, list[dict[str, Any]]] = {"video": [], "audio": []}
    for p in data.get("packets", []):
        packets[kinds[p["stream_index"]]].append(p)
    return Probe(streams, float(data["format"]["duration"]), packets, shown.stderr)


def decoded_sizes(path: Path) -> list[tuple[int, int]]:
    """Every video frame's size as ffmpeg's decoder outputs it (the SPS in band counts)."""
    shown = _run(
        "-v", "error", "-select_streams", "v", "-show_entries", "frame=width,height",
        "-of", "csv=p=0", str(path),
    )  # fmt: skip
    sizes = []
    for line in shown.stdout.splitlines():
        fields = [f for f in line.split(",") if f.strip()]
        if len(fields) >= 2:
            sizes.append((int(fields[0]), int(fields[1])))
    return sizes


def largest_step(times: list[float]) -> float:
    return max((b - a for a, b in itertools.pairwise(times)), default=0.0)


def strictly_increasing(times: list[float]) -> bool:
    return all(b > a for a, b in itertools.pairwise(times))


class KeepEverything:
    """Recording hooks of a policy that keeps every room; the finished parts, in order."""

    def __init__(self) -> None:
        self.parts: list[RecordingFinished] = []
        self.checkpoints: list[RecordingCheckpoint] = []
        self.asked: list[str] = []

    async def should_record(self, room_id: str) -> bool:
        self.asked.append(room_id)
        return True

    async def checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        self.checkpoints.append(checkpoint)

    async def finished(self, recording: RecordingFinished) -> None:
        self.parts.append(recording)
