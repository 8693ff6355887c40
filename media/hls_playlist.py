"""HLS playlists the packager writes itself: the master playlist (one variant per camera layer,
measured from the stream) and the RFC 6381 codec strings it declares.

The media playlists of each variant are ffmpeg's hls muxer's (media/hls_variant.py); the
master is ours because only the packager knows both layers: their bitrates as measured over
the segments written, their current resolution (Chromium changes it mid-lesson) and their
profile/level from the SPS.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from media.frames import H264_SPS, h264_nal_units

AAC_LC = "mp4a.40.2"
MASTER = "master.m3u8"
MEDIA_PLAYLIST = "index.m3u8"


def avc_codec(keyframe: bytes, sample_entry: str = "avc3") -> str | None:
    """``avc3.PPCCLL`` (RFC 6381 3.3: profile_idc, the constraint flags, level_idc, in hex)
    from the SPS of an Annex-B keyframe; None without one."""
    for unit in h264_nal_units(keyframe):
        if len(unit) >= 4 and unit[0] & 0x1F == H264_SPS:
            return f"{sample_entry}.{unit[1]:02x}{unit[2]:02x}{unit[3]:02x}"
    return None


@dataclass(slots=True)
class VariantInfo:
    """What the master playlist says of one variant (a camera layer)."""

    name: str  # its directory under the stream's: "high" | "low"
    peak_bps: int
    average_bps: int
    width: int
    height: int
    video_codec: str
    audio: bool
    frame_rate: float | None = None


def master_playlist(stream: str, variants: list[VariantInfo]) -> str:
    """The master playlist: the best variant first (players that ignore BANDWIDTH start with
    the first); URIs relative to the master's directory, so a signed prefix covers them."""
    lines = ["#EXTM3U", "#EXT-X-VERSION:7", "#EXT-X-INDEPENDENT-SEGMENTS"]
    for v in sorted(variants, key=lambda v: (v.width * v.height, v.peak_bps), reverse=True):
        codecs = v.video_codec + (f",{AAC_LC}" if v.audio else "")
        attributes = [
            f"BANDWIDTH={max(1, v.peak_bps)}",
            f"AVERAGE-BANDWIDTH={max(1, v.average_bps)}",
            f"RESOLUTION={v.width}x{v.height}",
            f'CODECS="{codecs}"',
        ]
        if v.frame_rate:
            attributes.append(f"FRAME-RATE={v.frame_rate:.3f}")
        lines.append("#EXT-X-STREAM-INF:" + ",".join(attributes))
        lines.append(f"{stream}/{v.name}/{MEDIA_PLAYLIST}")
    return "\n".join(lines) + "\n"


def write_atomically(path: Path, text: str) -> None:
    """A reader (the app, a CDN's fetch) sees the old playlist or the new one, never half."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
