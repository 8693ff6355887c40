"""IPv6 monitoring (the work plan's item 13): per school, how many participants' media and
how many of its bytes go over IPv6, from the candidate pair each connection's media flows on.

``sanke_media_connections{school, ip}`` counts the connections on this worker by the IP
version of their selected pair (``unknown`` before ICE connects);
``sanke_media_bytes_total{school, ip, direction}`` counts the bytes the SFU sent (``down``)
and received (``up``) on them. The IPv6 share of a school is then
``sum(rate(sanke_media_bytes_total{ip="6"}[5m])) by (school) /
sum(rate(sanke_media_bytes_total[5m])) by (school)`` (the Grafana panel "IPv6 share").
A connection's bytes count under the version its pair has when sampled: ICE seldom moves a
live connection between versions, and when it does the next bytes count under the new one.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from media.quality import QualityMonitor

Direction = str  # "up" | "down"


class IpVersionCollector:
    """Register next to the stream collector; reads the quality monitor's latest sample."""

    def __init__(self, monitor: QualityMonitor) -> None:
        self.monitor = monitor
        self._last: dict[tuple[str, str], tuple[int, int]] = {}  # (room, participant) -> bytes
        self._totals: dict[tuple[str, str, Direction], int] = defaultdict(int)

    def collect(self) -> Iterator[Metric]:
        sample = self.monitor.latest
        connections: dict[tuple[str, str], int] = defaultdict(int)
        seen: dict[tuple[str, str], tuple[int, int]] = {}
        for room in sample.stats.rooms:
            for t in room.transports:
                school = t.school_id or ""
                ip = str(t.ice_ip_version) if t.ice_ip_version else "unknown"
                connections[(school, ip)] += 1
                key = (room.room_id, t.participant_id)
                sent_before, received_before = self._last.get(key, (0, 0))
                # a counter that went back is a new connection under the same key
                sent = t.bytes_sent - sent_before if t.bytes_sent >= sent_before else t.bytes_sent
                received = (
                    t.bytes_received - received_before
                    if t.bytes_received >= received_before
                    else t.bytes_received
                )
                self._totals[(school, ip, "down")] += sent
                self._totals[(school, ip, "up")] += received
                seen[key] = (t.bytes_sent, t.bytes_received)
        self._last = seen
        gauge = GaugeMetricFamily(
            "sanke_media_connections",
            "media connections on this worker by school and IP version of the selected ICE pair",
            labels=["school", "ip"],
        )
        for (school, ip), n in sorted(connections.items()):
            gauge.add_metric([school, ip], n)
        yield gauge
        counter = CounterMetricFamily(
            "sanke_media_bytes",
            "bytes on media connections by school, IP version of the ICE pair and direction",
            labels=["school", "ip", "direction"],
        )
        for (school, ip, direction), n in sorted(self._totals.items()):
            counter.add_metric([school, ip, direction], n)
        yield counter
