"""Prometheus instruments updated on the media path itself (not sampled)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

TIME_TO_FIRST_FRAME = Histogram(
    "sanke_time_to_first_frame_seconds",
    "From a video consumer's creation (subscribe) to the first frame forwarded to it",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0),
)

RECORDINGS_WRITING = Gauge(
    "sanke_recordings_writing", "Recording parts being written on this node (docs/recording.md)"
)
RECORDING_PARTS = Counter(
    "sanke_recording_parts_total",
    "Recording parts finished: faststart (remuxed with its index), fragmented (the remux "
    "failed, kept as written), failed (nothing usable)",
    ["result"],
)
RECORDING_DROPPED_FRAMES = Counter(
    "sanke_recording_dropped_frames_total",
    "Frames a recorder dropped because its disk did not keep up (video: up to the next keyframe)",
    ["kind"],
)
