"""One HLS variant (a camera layer): CMAF/fMP4 segments and a sliding-window media playlist,
written by ffmpeg's hls muxer through PyAV from the encoded frames (no video decode/encode).

- **Video passthrough, ``avc3``**: the access units the SFU reassembled (Annex B, SPS/PPS in
  front of every IDR) become samples as they are; the sample entry is ``avc3`` (parameter
  sets in band), so Chromium's resolution changes mid-lesson need no new init segment.
- **Segments cut at keyframes**: ffmpeg starts a segment at the first keyframe at least
  ``segment_seconds`` after the last cut; the packager asks the publisher for a keyframe
  every ``keyframe_interval`` (Chromium sends one only when asked).
- **Bounded disk**: a live playlist keeps ``window`` segments and older ones are deleted
  (``delete_segments``); an ``event`` playlist keeps every segment of the lesson.

Blocking (disk): it runs on the packager's writer thread, never on the event loop.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Any, Literal

import av

from media.aac import AUDIO_RATE, AUDIO_TIME_BASE
from media.hls_playlist import MEDIA_PLAYLIST, VariantInfo, avc_codec
from media.recording_mux import VIDEO_CLOCK, add_aac_audio, add_passthrough_video

PlaylistType = Literal["live", "event"]
INIT = "init.mp4"
SEGMENT_PATTERN = "seg%06d.m4s"
MEASURED_SEGMENTS = 8  # BANDWIDTH: the peak over this many segments


class HlsVariant:
    def __init__(
        self,
        directory: Path,
        name: str,
        first_keyframe: bytes,
        width: int,
        height: int,
        *,
        audio: bool,
        segment_seconds: float,
        window: int,
        playlist_type: PlaylistType,
    ) -> None:
        self.name = name
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        options = {
            "hls_time": f"{segment_seconds:g}",
            "hls_segment_type": "fmp4",
            "hls_fmp4_init_filename": INIT,
            "hls_segment_filename": str(directory / SEGMENT_PATTERN),
            # temp_file: a segment or playlist is renamed into place when complete, so
            # nothing half-written is ever served; program_date_time: players measure latency
            "hls_flags": "independent_segments+temp_file+program_date_time"
            + ("+delete_segments" if playlist_type == "live" else ""),
            "hls_list_size": str(window if playlist_type == "live" else 0),
        }
        if playlist_type == "event":
            options["hls_playlist_type"] = "event"
        self._segment_ticks = round(segment_seconds * VIDEO_CLOCK)
        self._out: Any = av.open(
            str(directory / MEDIA_PLAYLIST), "w", format="hls", options=options
        )
        self._video: Any = add_passthrough_video(self._out, first_keyframe, width, height)
        self._audio: Any = add_aac_audio(self._out) if audio else None
        self.video_codec = avc_codec(first_keyframe) or "avc3.42e01f"
        self.width, self.height = width, height
        self._first_pts: int | None = None
        self._last_pts = -1
        self._segment_start: int | None = None
        self._segment_bytes = 0
        self._segments: deque[tuple[int, int]] = deque(maxlen=MEASURED_SEGMENTS)  # bytes, ticks
        self._total_bytes = 0
        self.video_frames = 0
        self.segments = 0  # complete segments (counted as ffmpeg cuts them)

    @property
    def started_pts(self) -> int | None:
        return self._first_pts

    def video(self, data: bytes, pts: int, keyframe: bool, size: tuple[int, int] | None) -> bool:
        """An access unit at ``pts`` (90 kHz on the stream's timeline); whether a segment was
        completed by it (it starts the next one)."""
        pts = max(pts, self._last_pts + 1)  # strictly increasing DTS (no B-frames)
        self._last_pts = pts
        if self._first_pts is None:
            self._first_pts = self._segment_start = pts
        cut = False
        assert self._segment_start is not None
        if keyframe and pts - self._segment_start >= self._segment_ticks:
            self._segments.append((self._segment_bytes, pts - self._segment_start))
            self._total_bytes += self._segment_bytes
            self._segment_start, self._segment_bytes = pts, 0
            self.segments += 1
            cut = True
        if keyframe and size is not None and size != (self.width, self.height):
            self.width, self.height = size  # a new SPS: in band (avc3), the player follows
        packet = av.Packet(data)
        packet.stream = self._video
        packet.pts = packet.dts = pts
        packet.time_base = self._video.time_base
        packet.is_keyframe = keyframe
        self._out.mux(packet)
        self._segment_bytes += len(data)
        self.video_frames += 1
        return cut

    def audio(self, data: bytes, pts: int) -> None:
        """An AAC packet at ``pts`` (48 kHz on the stream's timeline), encoded once for every
        variant: each gets its own copy (muxing takes the packet)."""
        if self._audio is None or self._first_pts is None:
            return
        if pts * VIDEO_CLOCK < self._first_pts * AUDIO_RATE:
            return  # before this variant's first picture
        packet = av.Packet(data)
        packet.stream = self._audio
        packet.pts = packet.dts = pts
        packet.time_base = AUDIO_TIME_BASE
        self._out.mux(packet)
        self._segment_bytes += len(data)

    def info(self, frame_rate: float | None) -> VariantInfo | None:
        """BANDWIDTH (the peak segment bitrate of the last few, as RFC 8216 4.3.4.2 asks) and
        AVERAGE-BANDWIDTH measured over the segments written; None before the first."""
        if not self._segments:
            return None
        peak = max(b * 8 * VIDEO_CLOCK / max(1, t) for b, t in self._segments)
        ticks = sum(t for _, t in self._segments)
        average = sum(b for b, _ in self._segments) * 8 * VIDEO_CLOCK / max(1, ticks)
        return VariantInfo(
            name=self.name,
            peak_bps=round(peak * 1.1),  # headroom: the next segments may be a bit larger
            average_bps=round(average),
            width=self.width,
            height=self.height,
            video_codec=self.video_codec,
            audio=self._audio is not None,
            frame_rate=frame_rate,
        )

    def close(self) -> None:
        """The last segment, and the playlist's EXT-X-ENDLIST (the lesson is over)."""
        self._out.close()
