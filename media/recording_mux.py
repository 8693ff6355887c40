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
- **Audio: Opus → AAC-LC**, the one transcode (Opus in MP4 does not play in WeChat's browser,
  older iOS or Windows' players). Samples are placed by their RTP timestamps; what DTX or loss
  left out is filled with silence, so the AAC track has no holes and stays aligned.
"""

from __future__ import annotations

import contextlib
import fractions
import hashlib
from pathlib import Path
from typing import Any

import av

from media.frames import H264_PPS, H264_SPS, START_CODE, h264_nal_units

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000  # Opus's RTP clock is 48 kHz whatever it encodes; AAC at the same rate
AAC_BITRATE = 96_000
FRAGMENTED = "frag_keyframe+empty_moov+default_base_moof"
# An audio packet more than this after the audio written so far is a hole (DTX, loss): silence.
AUDIO_HOLE_SAMPLES = AUDIO_RATE // 100
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


def _silence(samples: int) -> Any:
    frame = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = AUDIO_RATE
    return frame


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
        video: Any = self._out.add_stream("h264", rate=30)
        video.codec_context.extradata = parameter_sets(first_keyframe)
        video.codec_context.width, video.codec_context.height = width, height
        video.codec_tag = "avc3"
        video.time_base = fractions.Fraction(1, VIDEO_CLOCK)
        self._video = video
        self._audio: Any = None
        if audio:
            aac: Any = self._out.add_stream("aac", rate=AUDIO_RATE)
            aac.codec_context.layout = "stereo"
            aac.codec_context.format = "fltp"
            aac.codec_context.bit_rate = AAC_BITRATE
            self._audio = aac
        self._opus: Any = av.CodecContext.create("opus", "r")
        self._resampler: Any = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self._fifo: Any = av.AudioFifo()
        self._last_video_pts = -1
        self._audio_written = 0  # samples put on the part's timeline (into the FIFO)
        self._audio_encoded = 0
        self.video_frames = 0
        self.audio_frames = 0
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
        if self._audio is None:
            return
        behind = pts / VIDEO_CLOCK - self._audio_written / AUDIO_RATE
        if behind > AUDIO_LAG_FILL_SECONDS:
            self._fill_silence(int((pts / VIDEO_CLOCK - AUDIO_LAG_FILL_SECONDS / 2) * AUDIO_RATE))

    def audio(self, opus: bytes, position: int) -> None:
        """An Opus packet whose first sample is at ``position`` (48 kHz from the part's start)."""
        if self._audio is None:
            return
        if position < self._audio_written - AUDIO_HOLE_SAMPLES:
            return  # overlaps what was already written (late, or silence filled its place)
        if position > self._audio_written + AUDIO_HOLE_SAMPLES:
            self._fill_silence(position)
        try:
            frames = self._opus.decode(av.Packet(opus))
        except av.error.FFmpegError:
            return  # a damaged packet: its 20 ms are filled by the next one's position
        for frame in frames:
            for resampled in self._resampler.resample(frame):
                resampled.pts = None
                self._fifo.write(resampled)
                self._audio_written += resampled.samples
        self.audio_frames += 1
        self._encode_audio()

    def _fill_silence(self, until: int) -> None:
        missing = until - self._audio_written
        if missing <= 0:
            return
        self._fifo.write(_silence(missing))
        self._audio_written += missing
        self._encode_audio()

    def _encode_audio(self, flush: bool = False) -> None:
        size = self._audio.codec_context.frame_size or 1024
        while self._fifo.samples >= size or (flush and self._fifo.samples):
            frame = self._fifo.read(min(size, self._fifo.samples))
            frame.pts = self._audio_encoded
            frame.time_base = fractions.Fraction(1, AUDIO_RATE)
            self._audio_encoded += frame.samples
            for packet in self._audio.encode(frame):
                self._out.mux(packet)
        if flush:
            for packet in self._audio.encode(None):
                self._out.mux(packet)

    def close(self) -> None:
        """Audio as long as the video, the last fragment written."""
        if self._audio is None:
            self._out.close()
            return
        end = (self._last_video_pts + VIDEO_CLOCK // 30) * AUDIO_RATE // VIDEO_CLOCK
        self._fill_silence(end)
        self._encode_audio(flush=True)
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
