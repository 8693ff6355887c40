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
HLS_STREAMS = Gauge(
    "sanke_hls_streams", "Live HLS streams being packaged on this node (docs/hls.md)"
)
HLS_SEGMENTS = Counter(
    "sanke_hls_segments_total", "HLS segments written on this node, by camera layer", ["layer"]
)
HLS_DROPPED_FRAMES = Counter(
    "sanke_hls_dropped_frames_total",
    "Frames an HLS packager dropped because its writer did not keep up",
)
HLS_SEGMENT_DELAY = Histogram(
    "sanke_hls_segment_delay_seconds",
    "From the arrival of the keyframe that closes an HLS segment to the segment written",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
