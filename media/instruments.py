"""Prometheus instruments updated on the media path itself (not sampled)."""

from __future__ import annotations

from prometheus_client import Histogram

TIME_TO_FIRST_FRAME = Histogram(
    "sanke_time_to_first_frame_seconds",
    "From a video consumer's creation (subscribe) to the first frame forwarded to it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0),
)
