"""Video layer choice per subscriber: split its bandwidth estimate over its video consumers.

A publisher sends up to two video layers (``high``, ``low``); a subscriber's estimate comes
from REMB and receiver-report loss on its peer connection (one estimate for all of its
consumers: they share one BUNDLE transport). Every consumer first gets ``low`` if it fits,
then consumers are upgraded to ``high`` while the budget lasts; a consumer for which not
even ``low`` fits gets ``off`` (audio only). Hysteresis: a consumer keeps its layer down to
``KEEP`` x the layer's rate, and moves up only with ``UP`` x headroom.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Literal

VideoLayer = Literal["high", "low", "off"]
RANK: dict[str, int] = {"off": 0, "low": 1, "high": 2}
UP = 1.25
KEEP = 0.9
MIN_RATE_BPS = 30_000  # a layer measured lower than this (idle, starting) counts as this
LOSS_CUT = 26  # fraction lost (of 256) above which the estimate is cut: ~10 %
REMB_MAX_AGE = 5.0


@dataclass
class Candidate:
    key: Hashable
    current: VideoLayer
    rates: dict[str, float]  # measured bps of the layers the publisher sends
    pinned: VideoLayer | None = None


def _rate(c: Candidate, layer: str) -> float:
    return max(c.rates.get(layer, 0.0), MIN_RATE_BPS)


def _fits(c: Candidate, layer: VideoLayer, extra: float, budget: float) -> bool:
    factor = KEEP if RANK[c.current] >= RANK[layer] else UP
    return extra * factor <= budget


def allocate(budget_bps: float | None, candidates: Sequence[Candidate]) -> dict[Hashable, VideoLayer]:
    """The layer each consumer should receive (``None`` budget: no estimate, no limit)."""
    chosen: dict[Hashable, VideoLayer] = {}
    remaining = float("inf") if budget_bps is None else budget_bps
    free: list[Candidate] = []
    for c in candidates:
        if c.pinned is not None:
            layer: VideoLayer = c.pinned
            if layer != "off" and layer not in c.rates:
                layer = "low" if "low" in c.rates else "high"
            chosen[c.key] = layer
            remaining -= _rate(c, layer) if layer != "off" else 0.0
        else:
            free.append(c)
    # Step 1: everyone the lowest layer it has, if it fits.
    for c in free:
        base: VideoLayer = "low" if "low" in c.rates else "high"
        if _fits(c, base, _rate(c, base), remaining):
            chosen[c.key] = base
            remaining -= _rate(c, base)
        else:
            chosen[c.key] = "off"
    # Step 2: upgrade to high in order (the current high ones first: stability).
    for c in sorted(free, key=lambda c: -RANK[c.current]):
        if chosen[c.key] == "low" and "high" in c.rates:
            extra = _rate(c, "high") - _rate(c, "low")
            if _fits(c, "high", max(extra, 0.0), remaining):
                chosen[c.key] = "high"
                remaining -= extra
    return chosen


@dataclass
class BandwidthEstimate:
    """Per subscriber: the latest REMB, cut when receiver reports show heavy loss."""

    remb_bps: float | None = None
    remb_at: float = 0.0
    loss_cap_bps: float | None = None
    loss_cap_at: float = 0.0
    last_fraction_lost: int = 0

    def on_remb(self, bps: int) -> None:
        self.remb_bps = float(bps)
        self.remb_at = time.monotonic()

    def on_loss(self, fraction_lost: int, sending_bps: float) -> None:
        self.last_fraction_lost = fraction_lost
        if fraction_lost > LOSS_CUT and sending_bps > 0:
            self.loss_cap_bps = sending_bps * (1.0 - 0.5 * fraction_lost / 256.0)
            self.loss_cap_at = time.monotonic()

    def budget(self) -> float | None:
        now = time.monotonic()
        values = []
        if self.remb_bps is not None and now - self.remb_at < REMB_MAX_AGE:
            values.append(self.remb_bps)
        if self.loss_cap_bps is not None and now - self.loss_cap_at < REMB_MAX_AGE:
            values.append(self.loss_cap_bps)
        return min(values) if values else None
