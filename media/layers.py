"""Video layer choice per consumer, from the subscriber's bandwidth estimate, with hysteresis.

A publisher sends up to two video layers (``high``, ``low``); ``audio`` means audio only
(the vocabulary of ``contracts.layers``).
The estimate of a consumer is its share of the subscriber's REMB (a REMB covers the SSRCs it
lists; it is split in proportion to what each listed stream currently carries), cut when
receiver reports show heavy loss.

REMB estimators (Chrome's without transport-cc, aiortc's) never report much more than 1.5 x
what they receive, so an estimate cannot say "there is room for the high layer" while the low
one is sent. A consumer that went down therefore *probes*: after ``hold`` seconds with a
healthy estimate it tries the next layer up. The estimate then lags what is sent; the probe
goes on while it keeps growing (every ``PROBE_CHECKPOINT`` s by ``PROBE_GROWTH``) until the
layer fits; if it stalls or falls first, the consumer goes back down and waits twice as long
before the next probe (up to ``MAX_HOLD``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from contracts.layers import ReceivedLayer

RANK: dict[str, int] = {"audio": 0, "low": 1, "high": 2}
KEEP = 0.75  # keep a layer while the estimate is at least this x its rate
UP = 1.2  # move up (outside a probe) only with this x headroom
PROBE_HEADROOM = 1.3  # probe up only while the estimate is this x the current rate
MIN_RATE_BPS = 30_000  # a layer measured lower than this (idle, starting) counts as this
LOSS_CUT = 26  # fraction lost (of 256) above which the estimate is cut: ~10 %
MAX_AGE = 5.0  # an estimate older than this is forgotten
HOLD = 15.0
MAX_HOLD = 120.0
PROBE_CHECKPOINT = 3.0  # a probe's estimate must grow this often ...
PROBE_GROWTH = 1.1  # ... by this factor, until the probed layer fits


def _rate(rates: dict[str, float], layer: str) -> float:
    return max(rates.get(layer, 0.0), MIN_RATE_BPS)


@dataclass
class Estimate:
    """One consumer's bandwidth estimate: REMB share and loss-based cap, each expiring."""

    remb_bps: float | None = None
    remb_at: float = -math.inf
    loss_cap_bps: float | None = None
    loss_cap_at: float = -math.inf

    def on_remb(self, bps: float) -> None:
        self.remb_bps, self.remb_at = bps, time.monotonic()

    def on_loss(self, fraction_lost: int, sending_bps: float) -> None:
        if fraction_lost > LOSS_CUT and sending_bps > 0:
            self.loss_cap_bps = sending_bps * (1.0 - 0.5 * fraction_lost / 256.0)
            self.loss_cap_at = time.monotonic()

    def value(self, now: float | None = None) -> float | None:
        now = time.monotonic() if now is None else now
        values = []
        if self.remb_bps is not None and now - self.remb_at < MAX_AGE:
            values.append(self.remb_bps)
        if self.loss_cap_bps is not None and now - self.loss_cap_at < MAX_AGE:
            values.append(self.loss_cap_bps)
        return min(values) if values else None


@dataclass
class LayerChooser:
    hold: float = HOLD
    last_down: float = -math.inf
    # a probe in progress: when it started and the estimate at its last checkpoint
    probe_since: float | None = None
    probe_checkpoint: tuple[float, float] | None = None

    def choose(
        self,
        current: ReceivedLayer,
        rates: dict[str, float],
        estimate: float | None,
        pinned: ReceivedLayer | None = None,
        now: float | None = None,
    ) -> ReceivedLayer:
        now = time.monotonic() if now is None else now
        order = [layer for layer in ("high", "low") if layer in rates]
        if not order:
            return "audio"
        if pinned is not None:
            return pinned if pinned == "audio" or pinned in rates else order[-1]
        if estimate is None:
            return order[0]  # no estimate (yet): no known limit
        desired: ReceivedLayer = "audio"
        for layer in order:
            factor = KEEP if RANK[layer] <= RANK[current] else UP
            if _rate(rates, layer) * factor <= estimate:
                desired = "high" if layer == "high" else "low"
                break
        if self.probe_since is not None and RANK[desired] < RANK[current]:
            # The estimate lags what is now sent: the probe goes on while it keeps rising.
            at, value = self.probe_checkpoint or (self.probe_since, 0.0)
            if now - at < PROBE_CHECKPOINT:
                return current
            if estimate >= value * PROBE_GROWTH:
                self.probe_checkpoint = (now, estimate)
                return current
            self.hold = min(self.hold * 2, MAX_HOLD)  # the probe failed: wait longer
        if RANK[desired] < RANK[current]:
            self.probe_since = self.probe_checkpoint = None
            self.last_down = now
            return desired
        if self.probe_since is not None and desired == current:
            self.hold, self.probe_since, self.probe_checkpoint = HOLD, None, None  # it held
        better = [layer for layer in order if RANK[layer] > RANK[desired]]
        healthy = current == "audio" or estimate >= PROBE_HEADROOM * _rate(rates, current)
        if better and healthy and now - self.last_down >= self.hold and desired == current:
            self.probe_since, self.probe_checkpoint = now, (now, estimate)
            return "high" if better[-1] == "high" else "low"
        return desired
