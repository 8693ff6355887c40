"""Prometheus view of stream quality, from the quality monitor's latest sample.

Series are per lesson (room), school, classroom, role, kind and direction (``up``: the
participant to the SFU, ``down``: the SFU to the participant); producers add their layer.
A lesson's series exist only while its room is on this worker and vanish when it ends.
Counters stay monotonic inside a series even when the streams in it come and go (a
viewer leaves, a consumer is replaced): what a stream counted before it went away is
kept in the series until the lesson ends.

Per participant (lesson, school, classroom, role): what a publisher's page reports of its
own sending (its send-side estimate, what its camera captures, why its encoder sends
less) and a subscriber's downlink estimate; they exist while the report (or the estimate)
does, so a page that stops reporting leaves no stale value behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from media.ip_metrics import IpVersionCollector
from media.quality import QualityMonitor
from media.stats import ConsumerStats, ProducerStats, TransportStats
from media.worker import Worker

Series = tuple[str, ...]
STREAM_LABELS = ["lesson", "school", "classroom", "role", "kind", "direction", "layer"]
QUALITY_LABELS = ["lesson", "school", "classroom", "role", "direction"]
PARTICIPANT_LABELS = ["lesson", "school", "classroom", "role"]
LIMITATION_LABELS = [*PARTICIPANT_LABELS, "layer", "reason"]
LIMITATION_REASONS = ("none", "cpu", "bandwidth", "other")
LAYER_VALUE = {"high": 2.0, "low": 1.0, "audio": 0.0, "main": 1.0}

COUNTERS: dict[str, str] = {
    "packets": "RTP packets (up: received by the SFU, down: sent by the SFU)",
    "bytes": "RTP payload bytes (up: received, down: sent)",
    "packets_lost": "packets lost on the way (up: to the SFU, down: to the participant, from receiver reports)",
    "nacks": "NACKed packets reported by the receiver (down)",
    "plis": "keyframe requests (up: sent to the publisher, down: received from the subscriber)",
    "keyframes": "keyframes (up: received, down: forwarded)",
    "frames": "encoded frames (up: received, down: forwarded)",
    "freezes": "video freezes (no frame for more than 500 ms)",
    "freeze_seconds": "seconds of video freezes",
    "layer_switches": "video layer switches of a consumer (down)",
}
GAUGES: dict[str, tuple[str, str]] = {
    "loss_ratio": ("packet loss ratio in the last sample", "max"),
    "jitter_seconds": ("interarrival jitter", "max"),
    "rtt_seconds": ("round-trip time to the participant (down)", "max"),
    "frames_per_second": ("video frames per second", "min"),
    "bitrate_bytes_per_second": ("current bitrate", "sum"),
    "layer": ("video layer forwarded: 2 high, 1 low, 0 audio only (down)", "min"),
    "frame_width": (
        "video picture width (up: received, from the bitstream; down: forwarded)",
        "min",
    ),
    "frame_height": (
        "video picture height (up: received, from the bitstream; down: forwarded)",
        "min",
    ),
}
# per participant: name -> (help, how readings of one series combine)
PARTICIPANT_GAUGES: dict[str, tuple[str, str]] = {
    "sanke_publisher_estimate_bps": (
        "the publisher's own uplink estimate in bits per second (availableOutgoingBitrate, from its page)",
        "min",
    ),
    "sanke_publisher_capture_frame_height": (
        "the picture height the publisher's camera captures (from its page)",
        "min",
    ),
    "sanke_subscriber_estimate_bps": (
        "the SFU's downlink estimate of the subscriber in bits per second (transport-cc)",
        "min",
    ),
}


def _counter_values(s: ProducerStats | ConsumerStats) -> dict[str, float]:
    if isinstance(s, ProducerStats):
        return {
            "packets": s.packets, "bytes": s.bytes, "packets_lost": s.packets_lost, "nacks": 0,
            "plis": s.plis_sent, "keyframes": s.keyframes, "frames": s.frames,
            "freezes": s.freezes, "freeze_seconds": s.freeze_seconds, "layer_switches": 0,
        }  # fmt: skip
    return {
        "packets": s.packets, "bytes": s.bytes, "packets_lost": s.packets_lost,
        "nacks": s.nacks_received, "plis": s.plis_received + s.firs_received,
        "keyframes": s.keyframes_sent, "frames": s.frames_sent, "freezes": s.freezes,
        "freeze_seconds": s.freeze_seconds, "layer_switches": s.layer_switches,
    }  # fmt: skip


def _combine(how: str, readings: list[float]) -> float:
    if how == "max":
        return max(readings)
    if how == "min":
        return min(readings)
    return sum(readings)


class StreamCollector:
    """Register once: ``prometheus_client.REGISTRY.register(StreamCollector(monitor))``."""

    def __init__(self, monitor: QualityMonitor) -> None:
        self.monitor = monitor
        # series → stream id → last counter values; and what departed streams had counted
        self._members: dict[Series, dict[str, dict[str, float]]] = {}
        self._retired: dict[Series, dict[str, float]] = {}

    def describe(self) -> Iterator[Metric]:
        return iter(())  # values only exist at collect time (no fixed series)

    def collect(self) -> Iterator[Metric]:
        sample = self.monitor.latest
        counters = {
            n: CounterMetricFamily(f"sanke_stream_{n}", d, labels=STREAM_LABELS)
            for n, d in COUNTERS.items()
        }
        gauges = {
            n: GaugeMetricFamily(f"sanke_stream_{n}", d, labels=STREAM_LABELS)
            for n, (d, _) in GAUGES.items()
        }
        current: dict[Series, dict[str, dict[str, float]]] = defaultdict(dict)
        gauge_values: dict[Series, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        participant_values: dict[str, dict[Series, list[float]]] = defaultdict(
            lambda: defaultdict(list)
        )
        limited: dict[Series, int] = defaultdict(int)
        peer_connections = 0
        for room in sample.stats.rooms:
            for t in room.transports:
                peer_connections += 1
                base = (room.room_id, t.school_id or "", t.classroom_id or "", t.role)
                _participant_readings(t, base, participant_values, limited)
                quality = sample.participants.get((room.room_id, t.participant_id))
                for p in t.producers:
                    key = (*base, p.kind, "up", p.layer)
                    current[key][p.id] = _counter_values(p)
                    g = gauge_values[key]
                    g["jitter_seconds"].append(p.jitter)
                    g["bitrate_bytes_per_second"].append(p.bitrate_bps / 8)
                    g["loss_ratio"].append(quality.up_loss if quality else 0.0)
                    if p.kind == "video":
                        g["frames_per_second"].append(p.fps)
                        _add_size(g, p.width, p.height)
                for c in t.consumers:
                    key = (*base, c.kind, "down", "")
                    current[key][c.id] = _counter_values(c)
                    g = gauge_values[key]
                    g["jitter_seconds"].append(c.jitter)
                    g["loss_ratio"].append(c.fraction_lost)
                    if c.rtt is not None:
                        g["rtt_seconds"].append(c.rtt)
                    if c.kind == "video":
                        g["frames_per_second"].append(c.fps)
                        g["layer"].append(0.0 if c.paused else LAYER_VALUE.get(c.layer, 0.0))
                        if not c.paused:
                            _add_size(g, c.width, c.height)
        self._settle(current)
        for series, members in current.items():
            totals = dict(self._retired.get(series, {}))
            for counted in members.values():
                for name, amount in counted.items():
                    totals[name] = totals.get(name, 0.0) + amount
            for name, family in counters.items():
                family.add_metric(list(series), totals.get(name, 0.0))
            for name, readings in gauge_values[series].items():
                if readings:
                    gauges[name].add_metric(list(series), _combine(GAUGES[name][1], readings))
        yield from counters.values()
        yield from gauges.values()
        for name, (description, how) in PARTICIPANT_GAUGES.items():
            per_participant = GaugeMetricFamily(name, description, labels=PARTICIPANT_LABELS)
            for series, readings in participant_values[name].items():
                per_participant.add_metric(list(series), _combine(how, readings))
            yield per_participant
        limitation = GaugeMetricFamily(
            "sanke_publisher_quality_limitation",
            "published video layers by why the encoder sends less than it captures (from the page)",
            labels=LIMITATION_LABELS,
        )
        for series, count in limited.items():
            limitation.add_metric(list(series), count)
        yield limitation
        score = GaugeMetricFamily(
            "sanke_quality_score",
            "connection quality 1 (bad) – 5 (excellent)",
            labels=QUALITY_LABELS,
        )
        for q in sample.participants.values():
            for direction, level in (("up", q.up), ("down", q.down)):
                if level is not None:
                    score.add_metric(
                        [q.room_id, q.school_id or "", q.classroom_id or "", q.role, direction],
                        level,
                    )
        yield score
        yield GaugeMetricFamily(
            "sanke_sfu_rooms", "lesson rooms on this SFU worker", value=len(sample.stats.rooms)
        )
        yield GaugeMetricFamily(
            "sanke_sfu_peer_connections",
            "peer connections on this SFU worker",
            value=peer_connections,
        )

    def _settle(self, current: dict[Series, dict[str, dict[str, float]]]) -> None:
        """Keep what departed streams counted while their series lives; forget ended series."""
        for key, members in self._members.items():
            if key not in current:
                self._retired.pop(key, None)
                continue
            for stream_id, values in members.items():
                if stream_id not in current[key]:
                    retired = self._retired.setdefault(key, {})
                    for name, value in values.items():
                        retired[name] = retired.get(name, 0.0) + value
        self._members = {k: dict(v) for k, v in current.items()}


def _add_size(g: dict[str, list[float]], width: int | None, height: int | None) -> None:
    if width and height:
        g["frame_width"].append(float(width))
        g["frame_height"].append(float(height))


def _participant_readings(
    t: TransportStats,
    base: Series,
    values: dict[str, dict[Series, list[float]]],
    limited: dict[Series, int],
) -> None:
    """One participant's page report and downlink estimate, into per-participant series."""
    if t.downlink_estimate_bps is not None:
        values["sanke_subscriber_estimate_bps"][base].append(t.downlink_estimate_bps)
    if t.client is None:
        return
    report = t.client.stats
    if report.available_outgoing_bitrate is not None:
        values["sanke_publisher_estimate_bps"][base].append(report.available_outgoing_bitrate)
    if report.capture is not None and report.capture.height:
        values["sanke_publisher_capture_frame_height"][base].append(float(report.capture.height))
    layers = {p.mid: p.layer for p in t.producers if p.kind == "video" and p.mid is not None}
    for video in report.outbound:
        layer = layers.get(video.mid)
        if layer is None:
            continue  # not an m-line the SFU receives video on
        for reason in LIMITATION_REASONS:  # every reason, so a sum by reason is the layer count
            limited[(*base, layer, reason)] += 1 if video.quality_limitation == reason else 0


class MediaObservability:
    """The quality sampler and its collector for one worker, registered while it runs."""

    def __init__(self, worker: Worker, registry: CollectorRegistry = REGISTRY) -> None:
        self.monitor = QualityMonitor(worker)
        self.collector = StreamCollector(self.monitor)
        self.ip_collector = IpVersionCollector(self.monitor)
        self.registry = registry

    async def start(self) -> None:
        self.registry.register(self.collector)
        self.registry.register(self.ip_collector)
        self.monitor.start()

    async def stop(self) -> None:
        await self.monitor.stop()
        self.registry.unregister(self.ip_collector)
        self.registry.unregister(self.collector)
