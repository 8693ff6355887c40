"""Opus → AAC-LC, the one transcode (audio only): Opus in MP4 plays in Chromium but not in
WeChat's browser, older iOS, Windows' players or the national 智慧教育平台 upload.

Used by the recorder (media/recording_mux.py) and the HLS packager (media/hls_packager.py);
it blocks (the AAC encoder) and runs on their writer threads, never on the event loop.

Samples are placed by their position (48 kHz from the start of the file or stream); a hole
(Opus DTX in silence, lost packets, a microphone that is gone) is filled with silence, so the
AAC track has no gaps and stays aligned with the video.
"""

from __future__ import annotations

import fractions
from collections.abc import Callable
from typing import Any

import av

AUDIO_RATE = 48_000  # Opus's RTP clock is 48 kHz whatever it encodes; AAC at the same rate
AAC_BITRATE = 96_000
# An audio packet more than this after the audio written so far is a hole (DTX, loss): silence.
AUDIO_HOLE_SAMPLES = AUDIO_RATE // 100
AUDIO_TIME_BASE = fractions.Fraction(1, AUDIO_RATE)


def silence(samples: int) -> Any:
    frame = av.AudioFrame(format="fltp", layout="stereo", samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = AUDIO_RATE
    return frame


def configure_aac(context: Any) -> None:
    """The AAC settings every encoder (and every output stream that carries its packets) has."""
    context.layout = "stereo"
    context.format = "fltp"
    context.bit_rate = AAC_BITRATE
    context.sample_rate = AUDIO_RATE


class OpusToAac:
    """Decodes Opus packets, puts their samples on a timeline and encodes AAC-LC.

    ``encoder``: an AAC encoder context (an output stream's, or one of its own to feed several
    outputs); each encoded packet goes to ``emit``, its pts in samples (1/48000 s).
    """

    def __init__(self, emit: Callable[[Any], None], encoder: Any | None = None) -> None:
        if encoder is None:
            encoder = av.CodecContext.create("aac", "w")
            configure_aac(encoder)
            encoder.time_base = AUDIO_TIME_BASE
        self._encoder = encoder
        self._emit = emit
        self._opus: Any = av.CodecContext.create("opus", "r")
        self._resampler: Any = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
        self._fifo: Any = av.AudioFifo()
        self.written = 0  # samples put on the timeline (into the FIFO)
        self._encoded = 0
        self.packets = 0  # Opus packets taken

    def opus(self, data: bytes, position: int) -> None:
        """An Opus packet whose first sample is at ``position``."""
        if position < self.written - AUDIO_HOLE_SAMPLES:
            return  # overlaps what was already written (late, or silence filled its place)
        if position > self.written + AUDIO_HOLE_SAMPLES:
            self.fill_to(position)
        try:
            frames = self._opus.decode(av.Packet(data))
        except av.error.FFmpegError:
            return  # a damaged packet: its 20 ms are filled by the next one's position
        for frame in frames:
            for resampled in self._resampler.resample(frame):
                resampled.pts = None
                self._fifo.write(resampled)
                self.written += resampled.samples
        self.packets += 1
        self._encode()

    def fill_to(self, until: int) -> None:
        """Silence up to ``until`` (samples), if the audio is not there yet."""
        missing = until - self.written
        if missing <= 0:
            return
        self._fifo.write(silence(missing))
        self.written += missing
        self._encode()

    def _encode(self, flush: bool = False) -> None:
        size = self._encoder.frame_size or 1024
        while self._fifo.samples >= size or (flush and self._fifo.samples):
            frame = self._fifo.read(min(size, self._fifo.samples))
            frame.pts = self._encoded
            frame.time_base = AUDIO_TIME_BASE
            self._encoded += frame.samples
            for packet in self._encoder.encode(frame):
                self._emit(packet)
        if flush:
            for packet in self._encoder.encode(None):
                self._emit(packet)

    def flush(self) -> None:
        """What the FIFO and the encoder still hold."""
        self._encode(flush=True)
