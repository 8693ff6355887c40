"""Which video layer each of one subscriber's consumers gets from its downlink estimate.

With a transport-wide estimate (transport-cc) the SFU knows what the whole link carries,
so it allocates it, as LiveKit's stream allocator does: audio first (never starved by
video), then video consumers in priority order (the teacher's camera and screen before a
classroom on stage before the rest), each at the best layer that fits what is left; a
consumer that gets nothing is audio only. Keeping a layer needs the estimate to cover
its rate (``KEEP``), taking a higher one a margin (``UP``): the estimate only rises past
what is sent after a probe shows the link carries it, so going up is deliberate.
"""

from __future__ import annotations

from dataclasses import dataclass

from contracts.layers import ReceivedLayer
from media.layers import MIN_RATE_BPS, RANK

# A layer is kept while the estimate covers 80 % of it: one overuse signal cuts the estimate
# to 0.85 x what was acknowledged, and a lesson must not drop from 720p to 180p for one
# transient queue (a busy classroom PC); a link that really carries less keeps signalling
# overuse and is below 0.8 within a second or two. The pacer spreads the difference.
KEEP = 0.8
UP = 1.15
# Audio only is the last step down, and the drastic one: the smallest layer is kept while
# the estimate covers 60 % of it (the pacer and retransmissions smooth the rest).
KEEP_SMALLEST = 0.6


@dataclass(frozen=True)
class VideoDemand:
    key: str
    rates: dict[str, float]  # layer -> measured bitrate of its producer
    current: ReceivedLayer
    priority: int = 0  # lower first
    pinned: ReceivedLayer | None = None


@dataclass(frozen=True)
class Allocation:
    layers: dict[str, ReceivedLayer]
    probe_bps: float | None  # the estimate that would give every consumer its best layer


def _rate(rates: dict[str, float], layer: str) -> float:
    return max(rates.get(layer, 0.0), MIN_RATE_BPS)


def allocate(estimate_bps: float, audio_bps: float, demands: list[VideoDemand]) -> Allocation:
    budget = estimate_bps - audio_bps
    wanted = audio_bps
    layers: dict[str, ReceivedLayer] = {}
    for d in sorted(demands, key=lambda d: (d.priority, d.key)):
        order: list[ReceivedLayer] = [layer for layer in ("high", "low") if layer in d.rates]
        if d.pinned == "audio" or not order:
            layers[d.key] = "audio"
            continue
        if d.pinned is not None and d.pinned in order:
            order = order[order.index(d.pinned) :]  # a pin is the best this consumer gets
        chosen: ReceivedLayer = "audio"
        for layer in order:
            if RANK[layer] > RANK[d.current]:
                factor = UP
            else:
                factor = KEEP_SMALLEST if layer == order[-1] else KEEP
            if _rate(d.rates, layer) * factor <= budget:
                chosen = layer
                break
        layers[d.key] = chosen
        if chosen != "audio":
            budget -= _rate(d.rates, chosen)
        wanted += _rate(d.rates, order[0])
    probe = wanted * UP if wanted * UP > estimate_bps else None
    return Allocation(layers, probe)
