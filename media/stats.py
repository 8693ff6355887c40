"""Counters of the media plane, as pydantic models (the metrics exporter reads these)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from contracts.media import StatsReport


class ProducerStats(BaseModel):
    id: str
    participant_id: str
    kind: str
    layer: str
    source: str = "camera"  # "microphone" | "camera" | "screen"
    mid: str | None = None  # its m-line in the publisher's SDP (joins the page's report)
    codec: str | None = None
    # the last keyframe's picture size, from the bitstream
    width: int | None = None
    height: int | None = None
    packets: int = 0
    bytes: int = 0
    packets_lost: int = 0
    jitter: float = 0.0  # seconds
    frames: int = 0
    keyframes: int = 0
    plis_sent: int = 0
    bitrate_bps: float = 0.0
    consumers: int = 0
    fps: float = 0.0
    freezes: int = 0
    freeze_seconds: float = 0.0
    frozen: bool = False
    slideshow: bool = False  # subscribers are kept off it (media/frame_rate.py)
    b_frames: int = 0  # H264 B-frames received: its encoder must not send them


class ConsumerStats(BaseModel):
    id: str
    subscriber_id: str
    source_id: str
    kind: str
    layer: str
    target_layer: str
    paused: bool
    source: str = "camera"
    best_layer: str = "audio"  # the best fluid layer the source offers (a ReceivedLayer)
    pinned: str | None = None  # the subscriber's set_layer pin, if any
    # the picture size forwarded (the current layer's producer's)
    width: int | None = None
    height: int | None = None
    packets: int = 0
    bytes: int = 0
    packets_lost: int = 0
    fraction_lost: float = 0.0
    jitter: float = 0.0  # seconds
    rtt: float | None = None
    nacks_received: int = 0
    plis_received: int = 0
    firs_received: int = 0
    frames_sent: int = 0
    keyframes_sent: int = 0
    frames_dropped: int = 0
    layer_switches: int = 0
    rekeys: int = 0  # restarts at a new keyframe after the subscriber lost its SPS/PPS
    remb_bps: float | None = None
    fps: float = 0.0
    freezes: int = 0
    freeze_seconds: float = 0.0
    frozen: bool = False


class ClientReport(BaseModel):
    """A publisher page's last ``stats`` message, as the worker keeps it."""

    received_at: float  # time.monotonic()
    stats: StatsReport


class TransportStats(BaseModel):
    participant_id: str
    role: str
    room_id: str = ""
    school_id: str | None = None
    classroom_id: str | None = None
    name: str = ""
    connection_state: str
    producers: list[ProducerStats]
    consumers: list[ConsumerStats]
    client: ClientReport | None = None  # its page's own view, while recent
    downlink_estimate_bps: float | None = None  # from its transport-cc feedback
    # the IP version of the candidate pair its media flows on (None before ICE connects)
    ice_ip_version: Literal[4, 6] | None = None
    bytes_sent: int = 0  # by the SFU on this connection (media, RTCP, DTLS)
    bytes_received: int = 0


class RoomStats(BaseModel):
    room_id: str
    transports: list[TransportStats]


class WorkerStats(BaseModel):
    rooms: list[RoomStats]
