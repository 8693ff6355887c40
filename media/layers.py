"""Video layer choice per consumer, from the subscriber's bandwidth estimate, with hysteresis.

A publisher sends up to two video layers (``high``, ``low``); ``off`` means audio only.
The estimate of a consumer is its share of the subscriber's REMB (a REMB covers the SSRCs it
lists; it is split in proportion to what each listed stream currently carries), cut when
receiver reports show heavy loss.

REMB estimators (Chrome's without transport-cc, aiortc's) never report much more than 1.5 x
what they receive, so an estimate cannot say "there is room for the high layer" while the low
one is sent. A consumer that went down therefore *probes*: after ``hold`` seconds with a
healthy estimate it tries the next layer up; if the estimate then drops below that layer's
rate it goes back down and waits twice as long (up to ``MAX_HOLD``).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Literal

VideoLayer = Literal["high", "low", "off"]
RANK: dict[str, int] = {"off": 0, "low": 1, "high": 2}
KEEP = 0.75  # keep a layer while the estimate is at least this x its rate
UP = 1.2  # move up (outside a probe) only with this x headroom
PROBE_HEADROOM = 1.3  # probe up only while the estimate is this x the current rate
MIN_RATE_BPS = 30_000  # a layer measured lower than this (idle, starting) counts as this
LOSS_CUT = 26  # fraction lost (of 256) above which the estimate is cut: ~10 %
MAX_AGE = 5.0  # an estimate older than this is forgotten
HOLD = 15.0
MAX_HOLD = 120.0
PROBE_WINDOW = 5.0


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
    probe_since: float | None = None

    def choose(
        self,
        current: VideoLayer,
        rates: dict[str, float],
        estimate: float | None,
        pinned: VideoLayer | None = None,
        now: float | None = None,
    ) -> VideoLayer:
        now = time.monotonic() if now is None else now
        order = [layer for layer in ("high", "low") if layer in rates]
        if not order:
            return "off"
        if pinned is not None:
            return pinned if pinned == "off" or pinned in rates else order[-1]
        if estimate is None:
            return order[0]  # no estimate (yet): no known limit
        desired: VideoLayer = "off"
        for layer in order:
            factor = KEEP if RANK[layer] <= RANK[current] else UP
            if _rate(rates, layer) * factor <= estimate:
                desired = "high" if layer == "high" else "low"
                break
        probing = self.probe_since is not None and now - self.probe_since < PROBE_WINDOW
        if RANK[desired] < RANK[current]:
            if probing:  # the probe failed: wait longer before the next one
                self.hold = min(self.hold * 2, MAX_HOLD)
            self.probe_since = None
            self.last_down = now
            return desired
        if not probing and self.probe_since is not None:
            self.hold, self.probe_since = HOLD, None  # a probe that held: the link is good
        better = [layer for layer in order if RANK[layer] > RANK[desired]]
        healthy = current == "off" or estimate >= PROBE_HEADROOM * _rate(rates, current)
        if better and healthy and now - self.last_down >= self.hold and desired == current:
            self.probe_since = now
            return "high" if better[-1] == "high" else "low"
        return desired
