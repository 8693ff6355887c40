"""A Producer: one published track, received by the SFU as encoded frames (never decoded)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from aiortc import RTCRtpReceiver

from media import aiortc_seams as seams
from media.frame_clock import FrameClock
from media.frames import FrameParser
from media.stats import ProducerStats

if TYPE_CHECKING:
    from media.consumer import Consumer

log = logging.getLogger(__name__)

PLI_INTERVAL = 0.5  # at most one upstream keyframe request per producer per 500 ms
RATE_WINDOW = 1.0
LOSS_REPORT_AGE = 5.0  # a subscriber's receiver report counts this long
# RTP clock rates: RTCP and aiortc report jitter in these units; stats carry seconds.
CLOCK_RATE = {"audio": 48000, "video": 90000}


def producer_id(participant_id: str, kind: str, layer: str, source: str) -> str:
    return f"{participant_id}/screen" if source == "screen" else f"{participant_id}/{kind}/{layer}"


class Producer:
    def __init__(
        self,
        participant_id: str,
        kind: str,
        layer: str,
        receiver: RTCRtpReceiver,
        source: str | None = None,
    ) -> None:
        self.participant_id = participant_id
        self.kind = kind  # "audio" | "video"
        self.layer = layer  # "main" for audio, "high" | "low" for video (a screen: "high")
        self.source = source or ("microphone" if kind == "audio" else "camera")
        self.id = producer_id(participant_id, kind, layer, self.source)
        self.receiver = receiver
        self.active = True  # the publisher sends on its m-line (not "inactive")
        self.codec: str | None = None
        self.negotiated_mime: str | None = None
        self.sinks: list[Consumer] = []
        self.closed = False
        self._parser = FrameParser()
        self._last_pli = -PLI_INTERVAL
        self._pli_task: asyncio.Task[None] | None = None
        self._win_start = time.monotonic()
        self._win_bytes = 0
        self.bitrate_bps = 0.0
        self.frames = 0
        self.keyframes = 0
        self.bytes = 0
        self.plis_sent = 0
        self.clock = FrameClock()
        seams.tap_receiver(receiver, self.on_frame, low_latency=(kind == "audio"))
        if kind == "audio":
            seams.report_worst_loss(receiver, self.worst_downstream_loss)

    @property
    def mime(self) -> str | None:
        """The codec actually received (or, before the first frame, the negotiated one)."""
        if self.codec is not None:
            return f"{self.kind}/{self.codec}".lower()
        return self.negotiated_mime

    def on_frame(self, codec: str, data: bytes, timestamp: int) -> None:
        """Called by the receiver's tap for every reassembled encoded frame."""
        if self.closed:
            return
        frame = self._parser.parse(codec, data, timestamp)
        self.codec = codec
        self.frames += 1
        self.clock.tick()
        self.bytes += len(frame.data)
        if frame.keyframe and self.kind == "video":
            self.keyframes += 1
        self._meter(len(frame.data))
        for sink in tuple(self.sinks):
            sink.on_frame(self, frame)

    def _meter(self, size: int) -> None:
        self._win_bytes += size
        now = time.monotonic()
        elapsed = now - self._win_start
        if elapsed >= RATE_WINDOW:
            rate = self._win_bytes * 8 / elapsed
            self.bitrate_bps = (
                rate if self.bitrate_bps == 0 else 0.5 * self.bitrate_bps + 0.5 * rate
            )
            self._win_start, self._win_bytes = now, 0

    def worst_downstream_loss(self) -> int:
        """The highest loss (of 256) a subscriber of this producer reported lately."""
        now = time.monotonic()
        return max(
            (c.fraction_lost for c in self.sinks if now - c.fraction_lost_at < LOSS_REPORT_AGE),
            default=0,
        )

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (RTCP PLI), throttled; audio needs none."""
        if self.kind != "video" or self.closed:
            return
        if self._pli_task is not None and not self._pli_task.done():
            return  # one is already scheduled: it covers this request too
        delay = max(0.0, self._last_pli + PLI_INTERVAL - time.monotonic())
        self._pli_task = asyncio.get_running_loop().create_task(self._send_pli(delay))

    async def _send_pli(self, delay: float) -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        self._last_pli = time.monotonic()
        try:
            if await seams.send_pli(self.receiver):
                self.plis_sent += 1
        except Exception:  # a closing transport: nothing to ask any more
            log.debug("PLI to %s failed", self.id, exc_info=True)

    def relabel(self, source: str, layer: str) -> None:
        """The publisher said what this m-line carries (after the SFU took it for another)."""
        self.source, self.layer = source, layer
        self.id = producer_id(self.participant_id, self.kind, layer, source)

    def close(self) -> None:
        self.closed = True
        self.sinks.clear()
        if self._pli_task is not None:
            self._pli_task.cancel()

    async def stats(self) -> ProducerStats:
        stats = ProducerStats(
            id=self.id,
            participant_id=self.participant_id,
            kind=self.kind,
            layer=self.layer,
            codec=self.codec,
            frames=self.frames,
            keyframes=self.keyframes,
            plis_sent=self.plis_sent,
            bitrate_bps=self.bitrate_bps,
            consumers=len(self.sinks),
            fps=self.clock.current_fps(),
            freezes=self.clock.freezes,
            freeze_seconds=self.clock.freeze_seconds,
            frozen=self.kind == "video" and self.clock.frozen(),
        )
        report: Any = await self.receiver.getStats()
        for s in report.values():
            if getattr(s, "type", None) == "inbound-rtp":
                stats.packets += s.packetsReceived
                stats.packets_lost += s.packetsLost
                stats.jitter = max(stats.jitter, float(s.jitter) / CLOCK_RATE[self.kind])
        stats.bytes = self.bytes
        return stats
