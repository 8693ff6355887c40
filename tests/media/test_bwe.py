"""The downlink estimator on a simulated bottleneck: it finds the link, backs off when the
link shrinks, ignores random loss, and a probe finds a restored link.

The link is a FIFO bottleneck (a rate, a queue of ~50 ms, optional random loss, 20 ms
propagation), the feedback goes through the real wire format every 100 ms.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from media.bwe import SendSideEstimator
from media.transport_cc import FeedbackRecorder, parse_feedback

MS = 1000


@dataclass
class Link:
    rate_bps: float
    queue_ms: float = 50.0
    loss: float = 0.0
    delay_us: int = 20 * MS
    busy_until: float = 0.0
    rng: random.Random = field(default_factory=lambda: random.Random(7))

    def carry(self, send_us: int, size: int) -> int | None:
        """Arrival time of a packet sent at ``send_us``, or None if dropped."""
        if self.rng.random() < self.loss:
            return None
        start = max(float(send_us), self.busy_until)
        if start - send_us > self.queue_ms * MS:
            return None  # tail drop: the queue is full
        self.busy_until = start + size * 8 / self.rate_bps * 1e6
        return int(self.busy_until) + self.delay_us


class Simulation:
    def __init__(self, link: Link) -> None:
        self.link = link
        self.bwe = SendSideEstimator()
        self.recorder = FeedbackRecorder(sender_ssrc=1)
        self.now = 0
        self.seq = 0
        self.cluster = 0
        self.pending: list[tuple[int, int]] = []  # (arrival, seq) not yet at the receiver
        self.next_feedback = 100 * MS

    def send(self, size: int, cluster: int | None = None) -> None:
        seq = self.seq & 0xFFFF
        self.seq += 1
        self.bwe.on_sent(seq, self.now, size, cluster)
        arrival = self.link.carry(self.now, size)
        if arrival is not None:
            self.pending.append((arrival, seq))

    def advance(self, until_us: int) -> None:
        self.now = until_us
        arrived = [(a, s) for a, s in self.pending if a <= self.now]
        self.pending = [(a, s) for a, s in self.pending if a > self.now]
        for arrival, seq in sorted(arrived):
            self.recorder.record(seq, arrival, media_ssrc=5)
        while self.next_feedback <= self.now:
            for packet in self.recorder.build():
                self.bwe.on_feedback(parse_feedback(packet), self.now + 20 * MS)
            self.next_feedback += 100 * MS

    def media(self, rate_bps: float, seconds: float, fps: int = 30) -> None:
        """Video at ``rate_bps``: a frame every 1/fps, sent as a burst of ~1200-byte packets."""
        frame_bytes = rate_bps / 8 / fps
        end = self.now + int(seconds * 1e6)
        while self.now < end:
            left = frame_bytes
            while left > 0:
                self.send(int(min(1200, left)))
                left -= 1200
            self.advance(self.now + int(1e6 / fps))

    def layered(self, seconds: float, high: float = 2.5e6, low: float = 190e3) -> list[float]:
        """What the SFU does: send the high layer while the estimate fits it, else the low
        one, switching 300 ms (a keyframe) after the estimate says so. The rates sent."""
        rate, wanted_since, sent = high, self.now, []
        end = self.now + int(seconds * 1e6)
        while self.now < end:
            wanted = high if self.bwe.target_bps() >= 0.9 * high else low
            if wanted == rate:
                wanted_since = self.now
            elif self.now - wanted_since >= 300 * MS:
                rate = wanted
            sent.append(rate)
            self.media(rate, 0.1)
        return sent

    def probe(self, rate_bps: float, ms: int = 50) -> None:
        self.cluster += 1
        step = 10 * MS
        per_step = rate_bps / 8 * step / 1e6
        for _ in range(ms // 10):
            left = per_step
            while left > 0:
                self.send(1200, cluster=self.cluster)
                left -= 1200
            self.advance(self.now + step)


def test_no_congestion_no_backoff() -> None:
    sim = Simulation(Link(rate_bps=20e6))
    sim.media(2.5e6, 10)
    assert sim.bwe.overuses == 0
    assert sim.bwe.target_bps() >= 2.5e6


def test_a_link_smaller_than_the_stream_is_found_within_two_seconds() -> None:
    sim = Simulation(Link(rate_bps=600e3))
    sim.media(2.5e6, 2)
    assert sim.bwe.target_bps() < 700e3, sim.bwe.target_bps()


def test_random_loss_is_not_congestion() -> None:
    sim = Simulation(Link(rate_bps=20e6, loss=0.05))
    sim.media(2.5e6, 10)
    assert sim.bwe.target_bps() >= 0.9 * 2.5e6, sim.bwe.target_bps()  # 5 % never arrives


def test_a_probe_finds_a_restored_link_and_fails_on_a_small_one() -> None:
    sim = Simulation(Link(rate_bps=600e3))
    sent = sim.layered(6)
    assert sent[-1] == 190e3 and sent.index(190e3) <= 10, "on the low layer within a second"
    assert sim.bwe.target_bps() >= 190e3, "the low layer fits: no cut below it"
    sim.probe(3e6)
    sim.media(190e3, 0.5)
    assert sim.bwe.target_bps() < 800e3, "a probe over a 600 kbps link does not lift the estimate"
    sim.link.rate_bps = 20e6  # the link is restored
    sim.media(190e3, 1)
    sim.probe(3e6)
    sim.media(190e3, 0.5)
    assert sim.bwe.target_bps() >= 2.5e6, sim.bwe.probe_results


def test_the_estimate_follows_a_link_that_shrinks_while_sending_high() -> None:
    sim = Simulation(Link(rate_bps=20e6))
    sim.probe(4e6)
    sim.media(2.5e6, 3)
    assert sim.bwe.target_bps() >= 2.5e6
    sim.link.rate_bps = 1e6
    sim.media(2.5e6, 2)
    assert sim.bwe.target_bps() < 1.1e6


def test_a_weak_lossy_link_keeps_the_low_layer_not_audio_only() -> None:
    sim = Simulation(Link(rate_bps=600e3, loss=0.05))
    sent = sim.layered(10)
    assert sent[-1] == 190e3 and sent.index(190e3) <= 10
    assert sim.bwe.target_bps() >= 190e3, sim.bwe.target_bps()
    assert max(sent[20:]) == 190e3, "no flapping back to high on a link that cannot carry it"
