"""GCC's delay-based detector: the trend of one-way delay over packet groups.

The change in one-way delay between consecutive packet groups is accumulated, smoothed and
its trend fitted (least squares) over the last ``WINDOW`` groups; a trend above an adaptive
threshold is *overuse* (a queue is building), below its negative *underuse*
(draft-ietf-rmcat-gcc-02 §5; libwebrtc's TrendlineEstimator).
"""

from __future__ import annotations

from collections import deque
from typing import Literal

Usage = Literal["normal", "overusing", "underusing"]

WINDOW = 20  # groups in the fit
SMOOTHING = 0.9
THRESHOLD_GAIN = 4.0
MIN_DELTAS = 60
OVERUSE_TIME_MS = 10.0
K_UP, K_DOWN = 0.0087, 0.039


class Trendline:
    """Delay trend over packet groups and the overuse detector with adaptive threshold."""

    def __init__(self) -> None:
        self.accumulated = 0.0
        self.smoothed = 0.0
        self.history: deque[tuple[float, float]] = deque(maxlen=WINDOW)
        self.first_arrival_ms: float | None = None
        self.deltas = 0
        self.threshold = 12.5
        self.last_update_ms: float | None = None
        self.over_time = -1.0
        self.over_count = 0
        self.prev_trend = 0.0
        self.usage: Usage = "normal"

    def update(self, delay_delta_ms: float, send_delta_ms: float, arrival_ms: float) -> Usage:
        self.deltas = min(self.deltas + 1, 1000)
        if self.first_arrival_ms is None:
            self.first_arrival_ms = arrival_ms
        self.accumulated += delay_delta_ms
        self.smoothed = SMOOTHING * self.smoothed + (1 - SMOOTHING) * self.accumulated
        self.history.append((arrival_ms - self.first_arrival_ms, self.smoothed))
        trend = self.prev_trend
        if len(self.history) == WINDOW:
            trend = _slope(self.history)
        self._detect(trend, send_delta_ms, arrival_ms)
        return self.usage

    def _detect(self, trend: float, send_delta_ms: float, now_ms: float) -> None:
        if self.deltas < 2:
            self.usage = "normal"
            return
        modified = min(self.deltas, MIN_DELTAS) * trend * THRESHOLD_GAIN
        if modified > self.threshold:
            self.over_time = (
                send_delta_ms / 2 if self.over_time < 0 else self.over_time + send_delta_ms
            )
            self.over_count += 1
            if (
                self.over_time > OVERUSE_TIME_MS
                and self.over_count > 1
                and trend >= self.prev_trend
            ):
                self.over_time, self.over_count = 0.0, 0
                self.usage = "overusing"
        elif modified < -self.threshold:
            self.over_time, self.over_count = -1.0, 0
            self.usage = "underusing"
        else:
            self.over_time, self.over_count = -1.0, 0
            self.usage = "normal"
        self.prev_trend = trend
        self._adapt(modified, now_ms)

    def _adapt(self, modified: float, now_ms: float) -> None:
        if self.last_update_ms is None:
            self.last_update_ms = now_ms
        if abs(modified) > self.threshold + 15.0:
            self.last_update_ms = now_ms  # a spike (a route change): do not adapt to it
            return
        k = K_DOWN if abs(modified) < self.threshold else K_UP
        dt = min(now_ms - self.last_update_ms, 100.0)
        self.threshold += k * (abs(modified) - self.threshold) * dt
        self.threshold = min(max(self.threshold, 6.0), 600.0)
        self.last_update_ms = now_ms


def _slope(points: deque[tuple[float, float]]) -> float:
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    num = sum((x - mean_x) * (y - mean_y) for x, y in points)
    den = sum((x - mean_x) ** 2 for x, _ in points)
    return num / den if den else 0.0
