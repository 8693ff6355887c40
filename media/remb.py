"""What a publisher without transport-cc hears about its uplink: one REMB, from loss.

aiortc would answer such a client with a REMB per video receiver from a receive-side
estimator that never reports much above 1.5 × what that receiver already gets: the
publisher never climbs (a 720p camera was measured at 320×180, ~50 kbps). A publisher that
offers transport-cc runs its own estimator from our feedback (``media/uplink.py``); for the
others (aiortc clients, hardware encoders that only know REMB) the SFU sends **one** REMB
per transport covering every video stream it publishes, from a loss-based rule like
libwebrtc's classic sender estimate (RFC 8698's loss controller is the same idea):

* raw loss below 2 %: the link has room, the estimate grows 8 % a second;
* raw loss 2–10 %: hold;
* above 10 %: cut by half the loss (10 % loss → × 0.95, 50 % → × 0.75);

between ``FLOOR_BPS`` and ``CEILING_BPS`` (what the largest layers a subscriber can want
add up to), starting at what a school link carries. The loss is the receivers' own
(aiortc's receiver-report figure: a packet recovered by retransmission still counts, it
was lost on the link), the worst video stream's, fresh within ``LOSS_MAX_AGE``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiortc import RTCRtpReceiver

from media import aiortc_seams as seams

log = logging.getLogger(__name__)

REMB_INTERVAL = 1.0  # libwebrtc's receive side sends a REMB about once a second, too
START_BPS = 2_500_000  # as the transport-cc start bitrate: a 720p camera's cap
FLOOR_BPS = 100_000  # the low layer and audio still fit
# The most a publisher sends: a 1080p camera (4.5 Mbps), its low layer and a screen share.
CEILING_BPS = 8_000_000
LOSS_LOW = 0.02
LOSS_HIGH = 0.10
GROWTH_PER_S = 0.08
LOSS_MAX_AGE = 3.0  # receiver reports go out every 0.5–1.5 s


@dataclass
class LossReport:
    fraction: float  # 0..1
    at: float  # monotonic seconds


class LossBasedEstimate:
    """The uplink estimate of one publisher, moved by the loss its streams see."""

    def __init__(self, start_bps: float = START_BPS) -> None:
        self.bps = float(start_bps)
        self._at: float | None = None

    def update(self, loss: float | None, now: float) -> float:
        """Advance to ``now`` with the worst recent loss (None: nothing reported yet)."""
        elapsed = 0.0 if self._at is None else max(0.0, now - self._at)
        self._at = now
        if loss is None or loss < LOSS_LOW:
            self.bps *= (1 + GROWTH_PER_S) ** min(elapsed, 2 * REMB_INTERVAL)
        elif loss > LOSS_HIGH:
            self.bps *= 1 - 0.5 * min(loss, 1.0)
        self.bps = min(CEILING_BPS, max(FLOOR_BPS, self.bps))
        return self.bps


class UplinkRemb:
    """Sends one REMB a second for all the video a transport receives from its client."""

    def __init__(self, receivers: Callable[[], Sequence[RTCRtpReceiver]]) -> None:
        self._receivers = receivers  # the transport's video producers' receivers, now
        self.estimate = LossBasedEstimate()
        self._loss: dict[int, LossReport] = {}  # by id(receiver)
        self._task: asyncio.Task[None] | None = None
        self.rembs_sent = 0
        self.last_ssrcs: tuple[int, ...] = ()
        self.closed = False

    def start(self) -> None:
        """Replace every video receiver's own REMB with this one (idempotent)."""
        for receiver in self._receivers():
            seams.disable_remb(receiver)
        if self._task is None and not self.closed:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def on_loss(self, receiver: RTCRtpReceiver, fraction_of_256: int) -> None:
        """A video receiver's raw loss, as its receiver report computed it."""
        self._loss[id(receiver)] = LossReport(fraction_of_256 / 256, time.monotonic())

    def worst_loss(self, now: float) -> float | None:
        live = {id(r) for r in self._receivers()}
        fresh = [
            r.fraction for key, r in self._loss.items() if key in live and now - r.at < LOSS_MAX_AGE
        ]
        return max(fresh) if fresh else None

    async def _run(self) -> None:
        while not self.closed:
            await asyncio.sleep(REMB_INTERVAL)
            receivers = list(self._receivers())
            ssrcs = [s for r in receivers for s in seams.media_ssrcs(r)]
            now = time.monotonic()
            bps = self.estimate.update(self.worst_loss(now), now)
            if not ssrcs:
                continue
            try:
                await seams.send_remb(receivers[0], int(bps), ssrcs)
            except ConnectionError:
                return
            except Exception:
                log.debug("REMB failed", exc_info=True)
                continue
            self.rembs_sent += 1
            self.last_ssrcs = tuple(ssrcs)

    def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
