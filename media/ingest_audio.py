"""An ingested source's audio as Opus: the one transcode Sanke does (cheap next to video).

``OpusTranscoder`` decodes whatever FFmpeg decodes (a camera's AAC or G.711, a pushed
stream's AAC) and encodes Opus at 48 kHz in 20 ms frames; it runs in the thread of the
ingest that owns it (PyAV objects stay in that thread), never on the event loop.
``IngestAudio`` is the ``FrameOrigin`` its Opus frames reach the room's producer through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import av

from media.origin import InboundStats, OnFrame

OPUS_RATE = 48000
OPUS_BITRATE = 64000
OPUS_FRAME = 960  # 20 ms at 48 kHz


class IngestAudio:
    """An ingest's audio as a ``FrameOrigin``: Opus frames its ingest makes. ``on_first``
    runs on the loop at its first frame (a source without a microphone never makes the
    room's classrooms an audio track)."""

    def __init__(self) -> None:
        self.on_first: Callable[[], None] = lambda: None
        self._on_frame: OnFrame = lambda codec, data, timestamp: None
        self.frames = 0

    def start(
        self,
        on_frame: OnFrame,
        on_gap: Callable[[], None],
        on_cut: Callable[[], None],
        downstream_loss: Callable[[], int],
        on_link_loss: Callable[[int], None],
    ) -> None:
        self._on_frame = on_frame

    async def request_keyframe(self) -> bool:
        return False

    def forget_missing(self) -> None:
        return None

    async def inbound(self) -> InboundStats:
        return InboundStats(packets=self.frames)

    def deliver(self, data: bytes, timestamp: int) -> None:
        """On the loop."""
        self.frames += 1
        if self.frames == 1:
            self.on_first()
        self._on_frame("opus", data, timestamp)


class OpusTranscoder:
    """Packets of a decoder's codec to Opus packets (its owner's thread)."""

    def __init__(self, decoder: Any) -> None:
        self.decoder = decoder
        self.encoder: Any = av.CodecContext.create("libopus", "w")
        self.encoder.sample_rate = OPUS_RATE
        self.encoder.layout = "stereo"
        self.encoder.format = "s16"
        self.encoder.bit_rate = OPUS_BITRATE
        self.encoder.open()
        self.resampler = av.AudioResampler(format="s16", layout="stereo", rate=OPUS_RATE)
        self.fifo = av.AudioFifo()

    @property
    def frame_samples(self) -> int:
        return int(self.encoder.frame_size or OPUS_FRAME)

    def packets(self, packet: Any) -> list[bytes]:
        out: list[bytes] = []
        size = self.frame_samples
        for frame in self.decoder.decode(packet):
            for resampled in self.resampler.resample(frame):
                resampled.pts = None
                self.fifo.write(resampled)
            while self.fifo.samples >= size:
                out.extend(bytes(p) for p in self.encoder.encode(self.fifo.read(size)))
        return out


def aac_decoder(audio_specific_config: bytes) -> Any:
    """An AAC decoder for a stream whose AudioSpecificConfig (ISO 14496-3 1.6.2.1) is
    given, as FLV's AAC sequence header carries it."""
    decoder: Any = av.CodecContext.create("aac", "r")
    decoder.extradata = audio_specific_config
    decoder.open()
    return decoder
