"""Where a Producer's encoded frames come from.

A browser publishes RTP: ``RtpOrigin`` taps an aiortc receiver (frames reassembled by the
SFU, never decoded), asks the publisher for keyframes with RTCP PLI and rewrites the loss its
receiver reports. A source that is not an RTP receiver (an ingest of classroom hardware)
implements the same protocol: it calls the producer's ``on_frame``/``on_gap`` and answers
``request_keyframe`` as it can (a WHIP encoder takes a PLI; an RTSP camera sends its next
IDR on its own GOP).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiortc import RTCRtpReceiver

from media import aiortc_seams as seams
from media.reassembly import FrameAssembler

# RTP clock rates: RTCP and aiortc report jitter in these units; stats carry seconds.
CLOCK_RATE = {"audio": 48000, "video": 90000}

OnFrame = Callable[[str, bytes, int], None]  # codec, frame data, RTP timestamp


@dataclass
class InboundStats:
    packets: int = 0
    packets_lost: int = 0
    jitter_s: float = 0.0


class FrameOrigin(Protocol):
    def start(
        self,
        on_frame: OnFrame,
        on_gap: Callable[[], None],
        on_cut: Callable[[], None],
        downstream_loss: Callable[[], int],
        on_link_loss: Callable[[int], None],
    ) -> None:
        """Deliver frames from now on. ``on_gap``: frames were lost for good; ``on_cut``: the
        source cut a frame short (dropped; nothing lost); ``downstream_loss``: the worst loss
        (of 256) the producer's subscribers report; ``on_link_loss``: the loss of the
        publisher's link."""

    async def request_keyframe(self) -> bool:
        """Ask the source for a keyframe; whether the request went out."""

    def forget_missing(self) -> None:
        """Frames were given up: stop trying to recover them."""

    async def inbound(self) -> InboundStats: ...


class RtpOrigin:
    """A browser's (or any WebRTC publisher's) RTP stream on an aiortc receiver."""

    def __init__(self, receiver: RTCRtpReceiver, kind: str) -> None:
        self.receiver = receiver
        self.kind = kind
        self.assembler: FrameAssembler | None = None
        self._reported = (0, 0)  # (expected, abandoned) at the last receiver report
        self._downstream_loss: Callable[[], int] = lambda: 0
        self._on_link_loss: Callable[[int], None] = lambda fraction_of_256: None

    def start(
        self,
        on_frame: OnFrame,
        on_gap: Callable[[], None],
        on_cut: Callable[[], None],
        downstream_loss: Callable[[], int],
        on_link_loss: Callable[[int], None],
    ) -> None:
        self._downstream_loss, self._on_link_loss = downstream_loss, on_link_loss
        self.assembler = seams.tap_receiver(self.receiver, on_frame, on_gap=on_gap, on_cut=on_cut)
        seams.rewrite_reported_loss(self.receiver, self._reported_loss)

    def _reported_loss(self, aiortc_fraction: int) -> int:
        """What the receiver report tells the publisher it lost (of 256): video, what was
        never delivered (retransmissions count as received, aiortc's figure does not);
        audio, also at least the worst classroom's loss, which Chromium sizes FEC from."""
        self._on_link_loss(aiortc_fraction)
        a = self.assembler
        if a is None:
            return aiortc_fraction
        expected = a.expected - self._reported[0]
        abandoned = a.abandoned - self._reported[1]
        self._reported = (a.expected, a.abandoned)
        own = min(255, 256 * abandoned // expected) if expected > 0 else 0
        return max(own, self._downstream_loss()) if self.kind == "audio" else own

    async def request_keyframe(self) -> bool:
        return await seams.send_pli(self.receiver)

    def forget_missing(self) -> None:
        seams.forget_missing(self.receiver)

    async def inbound(self) -> InboundStats:
        stats = InboundStats()
        report: Any = await self.receiver.getStats()
        for s in report.values():
            if getattr(s, "type", None) == "inbound-rtp":
                stats.packets += s.packetsReceived
                stats.packets_lost += s.packetsLost
                stats.jitter_s = max(stats.jitter_s, float(s.jitter) / CLOCK_RATE[self.kind])
        return stats


def rtp_receiver(origin: FrameOrigin) -> RTCRtpReceiver | None:
    """The aiortc receiver behind an origin, if it is one's."""
    return origin.receiver if isinstance(origin, RtpOrigin) else None
