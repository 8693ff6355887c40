"""Writing a recording with PyAV: fragmented MP4 while it runs, a faststart remux when it ends.

Everything here blocks (disk, the AAC encoder) and runs on a recorder's writer thread or in
an executor, never on the event loop.

- **Video is passed through**: the H264 access units the SFU received (Annex B, SPS/PPS in
  front of every IDR: media/frames.py) become MP4 samples; ffmpeg's mp4 muxer rewrites the
  start codes to length prefixes and nothing is decoded. The sample entry is ``avc3``
  (parameter sets in band): Chromium changes the resolution mid-lesson with a new SPS, and
  an ``avc1`` file would have to carry every parameter set in its header.
- **Fragmented** (``frag_keyframe+empty_moov+default_base_moof``): a fragment is written at
  each video keyframe, so a process killed mid-lesson leaves a file that plays up to its last
  complete fragment (the recorder asks for a keyframe every ~2 s).
- **Audio: Opus → AAC-LC** (media/aac.py, shared with the HLS packager), the one transcode.
"""

from __future__ import annotations

import contextlib
import fractions
import hashlib
from pathlib import Path
from typing import Any

import av

from media.aac import AUDIO_RATE, OpusToAac, configure_aac
from media.frames import H264_PPS, H264_SPS, START_CODE, h264_nal_units

VIDEO_CLOCK = 90_000
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
# Audio this far behind the video (a microphone that went away) is caught up with silence.
AUDIO_LAG_FILL_SECONDS = 1.0
HASH_CHUNK = 1 << 20


def parameter_sets(keyframe: bytes) -> bytes:
    """The SPS and PPS of an Annex-B keyframe, as Annex B (what the muxer's header needs)."""
    return b"".join(
        START_CODE + unit
        for unit in h264_nal_units(keyframe)
        if unit and unit[0] & 0x1F in (H264_SPS, H264_PPS)
    )


def add_passthrough_video(out: Any, first_keyframe: bytes, width: int, height: int) -> Any:
    """An H264 stream written as it arrives, never encoded: ``avc3`` (parameter sets in
    the stream, so a publisher's resolution change needs no new header), RTP clock time."""
    video: Any = out.add_stream("h264", rate=30)
    video.codec_context.extradata = parameter_sets(first_keyframe)
    video.codec_context.width, video.codec_context.height = width, height
    video.codec_tag = "avc3"
    video.time_base = fractions.Fraction(1, VIDEO_CLOCK)
    return video


def add_aac_audio(out: Any) -> Any:
    """The AAC stream the Opus audio is transcoded into."""
    aac: Any = out.add_stream("aac", rate=AUDIO_RATE)
    configure_aac(aac.codec_context)
    return aac


class FragmentedMp4Writer:
    """One part of a recording, fragment by fragment (not thread-safe: its writer thread's)."""

    def __init__(
        self, path: Path, first_keyframe: bytes, width: int, height: int, *, audio: bool = True
    ) -> None:
        """``audio=False``: a video-only file (a screen share: the teacher's voice is in the
        camera's part), no AAC track, no silence."""
        self.path = path
        self.with_audio = audio
        # flush_packets: each fragment reaches the file when it is complete, not when ffmpeg's
        # 32 KB I/O buffer happens to fill (measured: a kill lost 2.4 s instead of < 2 s)
        self._out: Any = av.open(
            str(path), "w", format="mp4", options={"movflags": FRAGMENTED, "flush_packets": "1"}
        )
        self._video: Any = add_passthrough_video(self._out, first_keyframe, width, height)
        self._audio: Any = None
        self._aac: OpusToAac | None = None
        if audio:
            self._audio = add_aac_audio(self._out)
            self._aac = OpusToAac(self._mux_audio, self._audio.codec_context)
        self._last_video_pts = -1
        self.video_frames = 0
        self.sizes: list[tuple[int, int]] = [(width, height)]

    @property
    def duration_seconds(self) -> float:
        return max(0, self._last_video_pts + VIDEO_CLOCK // 30) / VIDEO_CLOCK

    def video(self, data: bytes, pts: int, keyframe: bool) -> None:
        """An access unit at ``pts`` (90 kHz from the part's start)."""
        pts = max(pts, self._last_video_pts + 1)  # strictly increasing DTS (no B-frames)
        self._last_video_pts = pts
        packet = av.Packet(data)
        packet.stream = self._video
        packet.pts = packet.dts = pts
        packet.time_base = self._video.time_base
        packet.is_keyframe = keyframe
        self._out.mux(packet)
        self.video_frames += 1
        if self._aac is None:
            return
        behind = pts / VIDEO_CLOCK - self._aac.written / AUDIO_RATE
        if behind > AUDIO_LAG_FILL_SECONDS:
            self._aac.fill_to(int((pts / VIDEO_CLOCK - AUDIO_LAG_FILL_SECONDS / 2) * AUDIO_RATE))

    def _mux_audio(self, packet: Any) -> None:
        packet.stream = self._audio
        self._out.mux(packet)

    @property
    def audio_frames(self) -> int:
        return 0 if self._aac is None else self._aac.packets

    def audio(self, opus: bytes, position: int) -> None:
        """An Opus packet whose first sample is at ``position`` (48 kHz from the part's start)."""
        if self._aac is not None:
            self._aac.opus(opus, position)

    def close(self) -> None:
        """Audio as long as the video, the last fragment written."""
        if self._aac is not None:
            self._aac.fill_to(
                (self._last_video_pts + VIDEO_CLOCK // 30) * AUDIO_RATE // VIDEO_CLOCK
            )
            self._aac.flush()
        self._out.close()


def remux_faststart(fragmented: Path, target: Path, *, readable_only: bool = False) -> float:
    """The same packets in a plain MP4 with its index (moov) in front: seeking an hour of
    fragments without one reads the whole file. No packet is decoded. ``readable_only``: a
    part a crash cut short, whose last fragment ends the read instead of failing it. Returns
    the last packet's time in seconds."""
    last = 0.0
    with av.open(str(fragmented)) as source:
        out: Any = av.open(str(target), "w", format="mp4", options={"movflags": "faststart"})
        try:
            streams = {s.index: out.add_stream_from_template(s) for s in source.streams}
            for index, stream in streams.items():
                # the template drops the sample entry: avc3 must stay (parameter sets in band)
                stream.codec_tag = source.streams[index].codec_tag
            with contextlib.suppress(*((av.error.FFmpegError,) if readable_only else ())):
                for packet in source.demux():
                    if packet.dts is None:  # the demuxer's end-of-stream packets
                        continue
                    if packet.pts is not None and packet.time_base is not None:
                        last = max(last, float(packet.pts * packet.time_base))
                    packet.stream = streams[packet.stream.index]
                    out.mux(packet)
        finally:
            out.close()
    return last


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()
