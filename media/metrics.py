"""Prometheus view of the SFU's counters (labels bounded: role, kind, layer).

Register once: ``prometheus_client.REGISTRY.register(WorkerCollector(worker))``. Per-room and
per-participant detail (packets, loss, jitter, RTT from RTCP) is in ``Worker.stats()``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from media.worker import Worker

Key = tuple[str, str, str]


class WorkerCollector:
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def collect(self) -> Iterator[Metric]:
        p_frames: dict[Key, float] = defaultdict(float)
        p_bytes: dict[Key, float] = defaultdict(float)
        p_keyframes: dict[Key, float] = defaultdict(float)
        p_plis: dict[Key, float] = defaultdict(float)
        p_bitrate: dict[Key, float] = defaultdict(float)
        c_count: dict[Key, float] = defaultdict(float)
        c_frames: dict[Key, float] = defaultdict(float)
        c_dropped: dict[Key, float] = defaultdict(float)
        c_switches: dict[Key, float] = defaultdict(float)
        c_nacks: dict[Key, float] = defaultdict(float)
        c_plis: dict[Key, float] = defaultdict(float)
        transports = 0
        for router in list(self.worker.routers.values()):
            for t in list(router.transports.values()):
                transports += 1
                role = str(t.participant.role)
                for p in t.producers.values():
                    k = (role, p.kind, p.layer)
                    p_frames[k] += p.frames
                    p_bytes[k] += p.bytes
                    p_keyframes[k] += p.keyframes
                    p_plis[k] += p.plis_sent
                    p_bitrate[k] += p.bitrate_bps
                for c in t.consumers.values():
                    k = (role, c.kind, "paused" if c.paused else c.layer)
                    c_count[k] += 1
                    c_frames[k] += c.frames_sent
                    c_dropped[k] += c.frames_dropped
                    c_switches[k] += c.layer_switches
                    c_nacks[k] += c.nacks
                    c_plis[k] += c.plis + c.firs
        labels = ["role", "kind", "layer"]
        yield _gauge("sanke_sfu_peer_connections", "peer connections on this worker", transports)
        for name, doc, values, family in (
            ("sanke_sfu_producer_frames", "encoded frames received", p_frames, CounterMetricFamily),
            ("sanke_sfu_producer_bytes", "encoded bytes received", p_bytes, CounterMetricFamily),
            (
                "sanke_sfu_producer_keyframes",
                "keyframes received",
                p_keyframes,
                CounterMetricFamily,
            ),
            (
                "sanke_sfu_producer_plis_sent",
                "keyframe requests sent upstream",
                p_plis,
                CounterMetricFamily,
            ),
            ("sanke_sfu_producer_bitrate_bps", "received bitrate", p_bitrate, GaugeMetricFamily),
            ("sanke_sfu_consumers", "consumers by current layer", c_count, GaugeMetricFamily),
            ("sanke_sfu_consumer_frames", "frames forwarded", c_frames, CounterMetricFamily),
            (
                "sanke_sfu_consumer_frames_dropped",
                "frames dropped (fell behind)",
                c_dropped,
                CounterMetricFamily,
            ),
            (
                "sanke_sfu_consumer_layer_switches",
                "layer switches",
                c_switches,
                CounterMetricFamily,
            ),
            (
                "sanke_sfu_consumer_nacks",
                "NACKed packets from subscribers",
                c_nacks,
                CounterMetricFamily,
            ),
            ("sanke_sfu_consumer_plis", "PLI/FIR from subscribers", c_plis, CounterMetricFamily),
        ):
            metric = family(name, doc, labels=labels)
            for key, value in sorted(values.items()):
                metric.add_metric(list(key), value)
            yield metric


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, value=value)
