"""A Producer: one published track, received by the SFU as encoded frames (never decoded).

Its frames come from a ``FrameOrigin`` (a browser's RTP stream today; an ingest source is
another) and go to its ``FrameSink``s (browsers' consumers; a recorder or a packager).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from media.frame_clock import FrameClock
from media.frame_rate import FrameRateMeter, Slideshow
from media.frames import FrameParser
from media.origin import FrameOrigin
from media.stats import ProducerStats

if TYPE_CHECKING:
    from media.sinks import FrameSink

log = logging.getLogger(__name__)

PLI_INTERVAL = 0.5  # at most one upstream keyframe request per producer per 500 ms
# A layer that lost frames for good this recently is not switched to (its consumers fall
# back to a layer that flows, and come back once it has delivered cleanly this long).
GAP_HOLD = 2.0
# A layer whose last frame is older than this is not flowing.
STALE_FRAME = 0.5
RATE_WINDOW = 1.0
LOSS_REPORT_AGE = 5.0  # a subscriber's receiver report counts this long


def producer_id(participant_id: str, kind: str, layer: str, source: str) -> str:
    return f"{participant_id}/screen" if source == "screen" else f"{participant_id}/{kind}/{layer}"


class Producer:
    def __init__(
        self,
        participant_id: str,
        kind: str,
        layer: str,
        origin: FrameOrigin,
        source: str | None = None,
    ) -> None:
        self.participant_id = participant_id
        self.kind = kind  # "audio" | "video"
        self.layer = layer  # "main" for audio, "high" | "low" for video (a screen: "high")
        self.source = source or ("microphone" if kind == "audio" else "camera")
        self.id = producer_id(participant_id, kind, layer, self.source)
        self.origin = origin
        self.active = True  # the publisher sends on its m-line (not "inactive")
        self.codec: str | None = None
        self.negotiated_mime: str | None = None
        self.sinks: list[FrameSink] = []
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
        # the picture size of the last keyframe, as its bitstream says (never decoded)
        self.width: int | None = None
        self.height: int | None = None
        self.clock = FrameClock()
        self.rate = FrameRateMeter()
        # the slideshow rule's verdict on this layer (media/frame_rate.py), kept by the router
        self.slideshow = Slideshow()
        self.last_gap_at = -GAP_HOLD
        self._cut = False  # a frame was cut short: the next one must be a keyframe
        # the raw loss of each receiver report (what the link lost, recovered or not)
        self.on_link_loss: Callable[[int], None] = lambda fraction_of_256: None
        origin.start(
            self.on_frame,
            self._on_gap,
            on_cut=self._on_cut,
            downstream_loss=self.worst_downstream_loss,
            on_link_loss=lambda fraction: self.on_link_loss(fraction),
        )

    @property
    def mime(self) -> str | None:
        """The codec actually received (or, before the first frame, the negotiated one)."""
        if self.codec is not None:
            return f"{self.kind}/{self.codec}".lower()
        return self.negotiated_mime

    def on_frame(self, codec: str, data: bytes, timestamp: int) -> None:
        """Called by the origin for every complete encoded frame."""
        if self.closed:
            return
        frame = self._parser.parse(codec, data, timestamp)
        self.codec = codec
        self.frames += 1
        now = time.monotonic()
        self.clock.tick(now)
        if self.kind == "video":
            self.rate.tick(now)
        self.bytes += len(frame.data)
        if frame.keyframe and self.kind == "video":
            self.keyframes += 1
            if frame.width is not None:
                self.width, self.height = frame.width, frame.height
        self._meter(len(frame.data))
        for sink in tuple(self.sinks):
            sink.on_frame(self, frame)
        if self._cut:
            self._cut = False
            if not frame.keyframe and any(c.wants(self) for c in self.sinks):
                self.request_keyframe()

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

    def _on_gap(self) -> None:
        """Frames were lost for good: subscribers resume at the next keyframe, asked for now."""
        self.last_gap_at = time.monotonic()
        self.origin.forget_missing()  # no more retransmissions of what was given up
        for sink in tuple(self.sinks):
            sink.on_gap(self)
        # Only a layer someone still waits for gets a keyframe request: on a congested
        # uplink a big layer's keyframe nobody watches would crowd out the small one's.
        if any(c.wants(self) for c in self.sinks):
            self.request_keyframe()

    def _on_cut(self) -> None:
        """The publisher cut a frame short (it was dropped; nothing was lost on the link):
        consumers wait for a keyframe. Chromium does it when a keyframe is queued behind
        the frame, so one is asked for only if the next frame is not it."""
        self._cut = True
        for sink in tuple(self.sinks):
            sink.on_cut(self)

    def broken(self, now: float | None = None) -> bool:
        """Frames were lost for good within GAP_HOLD."""
        now = time.monotonic() if now is None else now
        return now - self.last_gap_at < GAP_HOLD

    def flowing(self, now: float | None = None) -> bool:
        """Its publisher sends it and frames arrive."""
        now = time.monotonic() if now is None else now
        last = self.clock.last
        return self.active and last is not None and now - last < STALE_FRAME

    def worst_downstream_loss(self) -> int:
        """The highest loss (of 256) a subscriber of this producer reported lately."""
        now = time.monotonic()
        return max(
            (c.fraction_lost for c in self.sinks if now - c.fraction_lost_at < LOSS_REPORT_AGE),
            default=0,
        )

    def request_keyframe(self) -> None:
        """Ask the publisher for a keyframe (through the origin: RTCP PLI), throttled; audio
        needs none."""
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
            if await self.origin.request_keyframe():
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
            source=self.source,
            codec=self.codec,
            width=self.width,
            height=self.height,
            frames=self.frames,
            keyframes=self.keyframes,
            plis_sent=self.plis_sent,
            bitrate_bps=self.bitrate_bps,
            consumers=len(self.sinks),
            fps=self.clock.current_fps(),
            freezes=self.clock.freezes,
            freeze_seconds=self.clock.freeze_seconds,
            frozen=self.kind == "video" and self.clock.frozen(),
            slideshow=self.slideshow.active,
            b_frames=self._parser.b_frames,
        )
        inbound = await self.origin.inbound()
        stats.packets, stats.packets_lost = inbound.packets, inbound.packets_lost
        stats.jitter = inbound.jitter_s
        stats.bytes = self.bytes
        return stats
