"""Send-side bandwidth estimation for what the SFU sends to one subscriber (GCC's design).

The subscriber (Chromium) reports the arrival of every packet the SFU stamped with a
transport-wide sequence number (transport-cc). From those reports, as in libwebrtc's
goog_cc (draft-ietf-rmcat-gcc-02) and what mediasoup and LiveKit run for their downlinks:

- **delay-based**: packets are grouped by send time (5 ms groups, bursts merged); the
  change in one-way delay between groups goes to the trendline detector
  (``media/trendline.py``): *overuse* (a queue is building) or *underuse*;
- **AIMD rate control** on that signal: on overuse the estimate drops to 0.85 × what was
  acknowledged; otherwise it grows 8 %/s far from the last known capacity and by about
  one packet per response time near it, never past 1.5 × the acknowledged rate (there is no
  evidence for more) — so only a **probe** lifts it higher: a short cluster sent at a
  chosen rate whose packets' arrival spread gives the rate the path carried;
- **loss-based**: more than 10 % lost cuts the estimate by half the loss fraction, less
  than 2 % lets it grow again; in between it holds (random loss on a school's Wi-Fi is
  not congestion).

All times are microseconds; rates bits per second.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Literal

from media.transport_cc import REFERENCE_WRAP_US, TransportFeedback, unwrap
from media.trendline import Trendline, Usage

HISTORY = 8192  # sent packets remembered for matching feedback
GROUP_US = 5_000  # packets sent within 5 ms form one group
BURST_US = 5_000
BETA = 0.85
ACKED_WINDOW_US = 500_000
# Loss is judged over the last second of reports, stretched back (up to 3 s) to at least
# 100 packets: on 20–50 packets 5 % random loss reads as > 10 % often enough to cut a
# healthy link.
LOSS_WINDOW_US = 1_000_000
LOSS_MAX_WINDOW_US = 3_000_000
LOSS_MIN_PACKETS = 100
# After a cut the SFU switches layers (at the next keyframe); what it sent before that is
# not evidence about the new rate.
LOSS_SETTLE_US = 1_000_000
MIN_ESTIMATE_BPS = 50_000
MAX_ESTIMATE_BPS = 50_000_000
PROBE_MIN_PACKETS = 5
# A probe fills the bottleneck's queue on purpose: the delay it causes is not a reason to
# cut the estimate (below what the media needs: a classroom would go audio only for the
# probe's sake). Overuse is ignored for this long after a probe packet is sent.
PROBE_QUIET_US = 400_000
# Without a probe, an overuse or a loss cut, the estimate counts as known after this much
# feedback (libwebrtc waits 5 s; a probe at the start normally settles it far sooner).
INITIALIZE_AFTER_US = 2_000_000


@dataclass(slots=True)
class SentPacket:
    seq: int
    send_us: int
    size: int
    cluster: int | None = None
    arrival_us: int | None = None
    reported: bool = False


@dataclass(slots=True)
class _Group:
    first_send: int
    last_send: int
    last_arrival: int
    size: int


class SendSideEstimator:
    """One transport's downlink estimate from the transport-cc feedback its receiver sends."""

    def __init__(self, initial_bps: float = 1_000_000.0) -> None:
        self.sent: dict[int, SentPacket] = {}
        self._order: deque[int] = deque()
        self._highest_sent: int | None = None
        self._ref: int | None = None  # the last feedback's reference time, unwrapped
        self._trend = Trendline()
        self._group: _Group | None = None
        self._prev_group: _Group | None = None
        self._acked: deque[tuple[int, int]] = deque()  # (arrival, size) of received packets
        self.estimate_bps = initial_bps
        self.initialized = False
        self._first_feedback_us: int | None = None
        self.state: Literal["increase", "hold", "decrease"] = "increase"
        self._last_change_us: int | None = None
        self._capacity_avg: float | None = None
        self._capacity_var = 0.4
        self.loss_fraction = 0.0
        self._loss_reports: deque[tuple[int, int, int]] = deque()  # (time, lost, reported)
        self.loss_limit_bps: float | None = None
        self._loss_at_us: int | None = None
        self._loss_cut_us: int | None = None
        self.rtt_us = 50_000
        self.overuses = 0
        self.probe_results: list[tuple[int, float]] = []  # (cluster, bps)
        self._clusters: dict[int, list[SentPacket]] = {}
        self._probe_quiet_until = -1

    # --- sending ----------------------------------------------------------------------

    def on_sent(self, seq16: int, send_us: int, size: int, cluster: int | None = None) -> None:
        seq = seq16 if self._highest_sent is None else unwrap(seq16, self._highest_sent)
        self._highest_sent = seq if self._highest_sent is None else max(self._highest_sent, seq)
        packet = SentPacket(seq, send_us, size, cluster)
        self.sent[seq] = packet
        self._order.append(seq)
        if cluster is not None:
            self._clusters.setdefault(cluster, []).append(packet)
            self._probe_quiet_until = send_us + PROBE_QUIET_US
        while len(self._order) > HISTORY:
            old = self.sent.pop(self._order.popleft(), None)
            if old is not None and old.cluster is not None:
                self._clusters.pop(old.cluster, None)

    # --- feedback ---------------------------------------------------------------------

    def on_feedback(self, feedback: TransportFeedback, now_us: int) -> None:
        """Take one feedback packet; the estimate follows."""
        if self._highest_sent is None:
            return
        shift = self._unwrap_reference(feedback.reference_time_us) - feedback.reference_time_us
        reports: list[SentPacket] = []
        for seq16, arrival in feedback.arrivals:
            packet = self.sent.get(unwrap(seq16, self._highest_sent))
            if packet is None or (packet.reported and packet.arrival_us is not None):
                continue
            packet.reported = True
            if arrival is not None:
                packet.arrival_us = arrival + shift
            reports.append(packet)
        if not reports:
            return
        if self._first_feedback_us is None:
            self._first_feedback_us = now_us
        received = sorted((p for p in reports if p.arrival_us is not None), key=lambda p: p.send_us)
        for p in received:
            self._acked.append((p.arrival_us or 0, p.size))
            self._on_delay_sample(p)
        # A probe overshoots on purpose: its losses are its verdict, not congestion.
        # And a cut is judged on what was sent once the layers followed the previous one.
        epoch = -1 if self._loss_cut_us is None else self._loss_cut_us + LOSS_SETTLE_US
        media = [p for p in reports if p.cluster is None and p.send_us > epoch]
        self._count_loss(sum(p.arrival_us is None for p in media), len(media), now_us)
        self._rate_control(now_us)
        self._finish_probes(reports)
        if not self.initialized and now_us - self._first_feedback_us >= INITIALIZE_AFTER_US:
            self.initialized = True
            self.estimate_bps = max(self.estimate_bps, self.acked_bps() or 0.0)

    def _unwrap_reference(self, reference_us: int) -> int:
        if self._ref is None:
            self._ref = reference_us
            return reference_us
        diff = (reference_us - self._ref) % REFERENCE_WRAP_US
        if diff > REFERENCE_WRAP_US // 2:
            diff -= REFERENCE_WRAP_US
        self._ref += diff
        return self._ref

    def _on_delay_sample(self, p: SentPacket) -> None:
        arrival = p.arrival_us or 0
        g = self._group
        if g is None:
            self._group = _Group(p.send_us, p.send_us, arrival, p.size)
            return
        if p.send_us < g.first_send:
            return  # reordered from an earlier group
        in_group = p.send_us - g.first_send <= GROUP_US
        burst = (
            arrival - g.last_arrival <= BURST_US
            and (arrival - g.last_arrival) - (p.send_us - g.last_send) < 0
        )
        if in_group or burst:
            g.last_send = max(g.last_send, p.send_us)
            g.last_arrival = max(g.last_arrival, arrival)
            g.size += p.size
            return
        prev = self._prev_group
        if prev is not None:
            send_delta = g.last_send - prev.last_send
            arrival_delta = g.last_arrival - prev.last_arrival
            if arrival_delta >= 0 or send_delta > 0:
                usage = self._trend.update(
                    (arrival_delta - send_delta) / 1000.0,
                    send_delta / 1000.0,
                    g.last_arrival / 1000.0,
                )
                if usage == "overusing":
                    self.overuses += 1
        self._prev_group = g
        self._group = _Group(p.send_us, p.send_us, arrival, p.size)

    @property
    def usage(self) -> Usage:
        return self._trend.usage

    def acked_bps(self) -> float | None:
        """What the receiver got over the last 500 ms of arrivals."""
        if not self._acked:
            return None
        newest = max(a for a, _ in self._acked)
        while self._acked and self._acked[0][0] < newest - ACKED_WINDOW_US:
            self._acked.popleft()
        span = newest - self._acked[0][0]
        if span < 100_000:
            return None
        return sum(size for _, size in self._acked) * 8 / (span / 1e6)

    def _count_loss(self, lost: int, reported: int, now_us: int) -> None:
        reports = self._loss_reports
        reports.append((now_us, lost, reported))
        total = sum(r for _, _, r in reports)
        while reports and (
            reports[0][0] < now_us - LOSS_MAX_WINDOW_US
            or (
                reports[0][0] < now_us - LOSS_WINDOW_US
                and total - reports[0][2] >= LOSS_MIN_PACKETS
            )
        ):
            total -= reports.popleft()[2]
        if total < LOSS_MIN_PACKETS:
            return
        self.loss_fraction = sum(n for _, n, _ in reports) / total
        acked = self.acked_bps()
        if self.loss_fraction > 0.10:
            if self._loss_at_us is None or now_us - self._loss_at_us > 300_000 + self.rtt_us:
                # What got through, less half the loss (repeated cuts while the loss goes on
                # do not compound: the SFU's layers follow the estimate a keyframe later).
                base = acked if acked is not None else self.target_bps()
                self.loss_limit_bps = max(MIN_ESTIMATE_BPS, base * (1 - 0.5 * self.loss_fraction))
                self._loss_at_us = self._loss_cut_us = now_us
                self.initialized = True
                reports.clear()  # the next verdict is on what is sent after this cut
        elif self.loss_fraction < 0.02 and self.loss_limit_bps is not None:
            elapsed = 0.0 if self._loss_at_us is None else (now_us - self._loss_at_us) / 1e6
            self.loss_limit_bps *= 1.08 ** min(max(elapsed, 0.0), 1.0)
            self.loss_limit_bps = max(self.loss_limit_bps, acked or 0.0)
            self._loss_at_us = now_us
            if self.loss_limit_bps > 2 * self.estimate_bps:
                self.loss_limit_bps = None  # no longer the limit

    def _rate_control(self, now_us: int) -> None:
        usage = self._trend.usage
        acked = self.acked_bps()
        if usage == "overusing" and now_us < self._probe_quiet_until:
            usage = "normal"  # the queue a probe built
        if usage == "overusing":
            if self.state != "decrease" and acked is not None:
                self._update_capacity(acked)
                self.estimate_bps = max(MIN_ESTIMATE_BPS, min(self.estimate_bps, BETA * acked))
            self.state = "decrease"
            self._last_change_us = now_us
            return
        if usage == "underusing":
            self.state = "hold"
            self._last_change_us = now_us
            return
        if self.state != "increase":
            self.state = "increase"
            self._last_change_us = now_us
            return
        last = self._last_change_us if self._last_change_us is not None else now_us
        dt = min(max(now_us - last, 0), 1_000_000) / 1e6
        self._last_change_us = now_us
        if self._capacity_avg is not None:
            upper = self._capacity_avg + 3 * math.sqrt(self._capacity_var * self._capacity_avg)
            if self.estimate_bps > upper:
                self._capacity_avg = None  # past the old capacity: it moved
        if self._capacity_avg is not None:
            grown = self.estimate_bps + self._near_capacity_increase() * dt
        else:
            grown = self.estimate_bps * 1.08**dt
        if acked is not None:
            cap = 1.5 * acked + 10_000
            if grown > cap:
                grown = max(self.estimate_bps, cap)
            # What arrives without a queue building is carried, whatever the estimate said.
            grown = max(grown, acked)
        self.estimate_bps = min(grown, MAX_ESTIMATE_BPS)

    def _near_capacity_increase(self) -> float:
        frame_bits = self.estimate_bps / 30
        packets = max(1.0, math.ceil(frame_bits / (1200 * 8)))
        response_s = 2 * (self.rtt_us + 100_000) / 1e6
        return max(4_000.0, frame_bits / packets / response_s)

    def _update_capacity(self, acked: float) -> None:
        if self._capacity_avg is None:
            self._capacity_avg = acked
        else:
            self._capacity_avg = 0.95 * self._capacity_avg + 0.05 * acked
        norm = max(self._capacity_avg, 1.0)
        self._capacity_var = 0.95 * self._capacity_var + 0.05 * (
            (self._capacity_avg - acked) ** 2 / norm
        )
        self._capacity_var = min(max(self._capacity_var, 0.4), 2.5)

    # --- probes -----------------------------------------------------------------------

    def _finish_probes(self, reports: list[SentPacket]) -> None:
        for cluster in {p.cluster for p in reports if p.cluster is not None}:
            packets = self._clusters.get(cluster)
            if not packets or not all(p.reported for p in packets):
                continue
            del self._clusters[cluster]
            rate = probe_rate(packets)
            if rate is None:
                continue
            self.probe_results.append((cluster, rate))
            del self.probe_results[:-8]
            if self._trend.usage != "overusing" and (
                rate > self.estimate_bps or not self.initialized
            ):
                self.estimate_bps = min(rate, MAX_ESTIMATE_BPS)
                self._capacity_avg = None
            self.initialized = True
            if self.loss_limit_bps is not None:
                self.loss_limit_bps = max(self.loss_limit_bps, rate)

    def target_bps(self) -> float:
        """The estimate: delay-based, limited by loss."""
        value = self.estimate_bps
        if self.loss_limit_bps is not None:
            value = min(value, self.loss_limit_bps)
        return max(value, MIN_ESTIMATE_BPS)


def probe_rate(packets: list[SentPacket]) -> float | None:
    """The rate a probe cluster got through: the lower of its send and receive rates (the
    receive rate alone when the path spread it, i.e. it could not carry the cluster)."""
    received = sorted(
        (p for p in packets if p.arrival_us is not None), key=lambda p: p.arrival_us or 0
    )
    if len(received) < PROBE_MIN_PACKETS or len(received) < 0.8 * len(packets):
        return None
    by_send = sorted(packets, key=lambda p: p.send_us)
    send_span = by_send[-1].send_us - by_send[0].send_us
    recv_span = (received[-1].arrival_us or 0) - (received[0].arrival_us or 0)
    if send_span <= 0 or recv_span <= 0:
        return None
    send_rate = sum(p.size for p in by_send[:-1]) * 8 / (send_span / 1e6)
    recv_rate = sum(p.size for p in received[1:]) * 8 / (recv_span / 1e6)
    if recv_rate < 0.9 * send_rate:
        return 0.95 * recv_rate
    return min(send_rate, recv_rate)
