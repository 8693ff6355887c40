"""Stream quality: a 1–5 score per participant and direction, sampled every few seconds.

The score (like LiveKit's connection quality) starts at 5 and loses points for what
people notice, each penalty on its own threshold:

| signal | −1 | −2 | −3 |
| --- | --- | --- | --- |
| packet loss | > 2 % | > 5 % | > 10 % |
| jitter | > 30 ms | > 80 ms | — |
| round-trip time | > 300 ms | > 600 ms | — |
| video freezes in the last sample | any | frozen now | — |
| up: the camera's high layer vs what the camera captures | < 3/4 | < 1/2 | — |
| up, without a capture report: vs the largest it arrived at, once below 360p | < 3/4 | < 1/2 | — |
| up: the camera's high layer is a slideshow (subscribers get the low layer) | — | yes | — |
| down: a video held below the best layer its publisher sends, by the estimate | held | — | — |

Loss counts most: at 10 % video breaks up and speech drops syllables. Jitter and RTT beyond
these values make conversation awkward (ITU-T G.114 puts the comfort limit for one-way
delay at 150 ms).

The picture counts too: with no loss at all a teacher's encoder can be starved to 320x180
(an uplink estimate stuck low, a busy CPU), and a remote class then reads no blackboard. The
SFU reads the size of the high layer from its bitstream (never decoding) and compares its
linear scale (√ of the pixel ratio, so 640x360 of a 1280x720 camera is 1/2) with what the
publisher's page says its camera captures (its ``stats`` message): 3/4 still reads well
(540p of 720p, what Chromium's first adaptation step gives), 1/2 loses fine detail, below
it text goes. A publisher without a report (an ingest, an older page) is compared with the
largest picture its high layer had, and only once below 360p: a smaller camera does not
count as a drop, and above 360p the SFU cannot tell adaptation from a smaller camera. The
low layer is small on purpose and never counts; neither does a screen share (its size is
the screen's). A high layer that arrives at 720p but as a slideshow (``media/frame_rate.py``:
a few frames a second next to a fluid low layer) is forwarded to nobody: the classrooms
get the 320x180 low layer, a quarter of the camera's scale, so it costs what a picture
below 1/2 costs.

A subscriber held on the low layer or audio only because its downlink estimate carries no
more loses one point: it gets working media, but not what its publisher sends. A layer the
subscriber pinned itself (``set_layer``) is its choice, not a penalty; neither is the low
layer given in place of a slideshow (the publisher's uplink is short, not the subscriber's
link: its ``best_layer`` is then the low one).

The result is clamped to 1..5. A direction's score is its worst stream.

One sampler per worker feeds both the Prometheus collector (via ``latest``) and the
``quality`` messages to teachers and classrooms, so ``getStats`` runs once per sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass, field

from contracts.layers import ReceivedLayer
from contracts.media import FrameSize, QualityMeasured
from contracts.rooms import Role
from media.layers import RANK
from media.stats import ConsumerStats, ProducerStats, TransportStats, WorkerStats
from media.worker import Worker

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 2.0
SCALE_MINUS_1 = 0.75  # the high layer's linear scale below which it loses a point ...
SCALE_MINUS_2 = 0.5  # ... and below which two
SMALL_HEIGHT = 360  # without a capture report, a drop counts only below this (short side)
SLIDESHOW_PENALTY = 2  # the low layer instead: 1/4 of a 720p camera's scale, below 1/2
Size = tuple[int, int]


def score(loss: float, jitter: float, rtt: float | None, freezes: int, frozen: bool) -> int:
    points = 5
    points -= 3 if loss > 0.10 else 2 if loss > 0.05 else 1 if loss > 0.02 else 0
    points -= 2 if jitter > 0.080 else 1 if jitter > 0.030 else 0
    if rtt is not None:
        points -= 2 if rtt > 0.600 else 1 if rtt > 0.300 else 0
    points -= 2 if frozen else 1 if freezes > 0 else 0
    return max(1, min(5, points))


def resolution_penalty(received: Size | None, reference: Size | None) -> int:
    """Points a high layer of ``received`` size loses against ``reference`` (the capture)."""
    if received is None or reference is None:
        return 0
    got, want = received[0] * received[1], reference[0] * reference[1]
    if got <= 0 or want <= 0:
        return 0
    scale = math.sqrt(got / want)
    return 2 if scale < SCALE_MINUS_2 else 1 if scale < SCALE_MINUS_1 else 0


def peak_reference(received: Size, peak: Size | None) -> Size | None:
    """Without a capture report: the largest size seen stands in for it, once the picture
    is below 360p and the peak was not."""
    if peak is None or min(received) >= SMALL_HEIGHT or min(peak) < SMALL_HEIGHT:
        return None
    return peak


def layer_penalty(layer: str, target: str, best: str, pinned: str | None) -> int:
    """A point when the SFU forwards, and means to forward, less than the publisher offers
    (and the subscriber did not pin that itself)."""
    ceiling = best if pinned is None or RANK.get(pinned, 0) >= RANK.get(best, 0) else pinned
    top = RANK.get(ceiling, 0)
    return 1 if RANK.get(layer, 0) < top and RANK.get(target, 0) < top else 0


def _size(width: int | None, height: int | None) -> Size | None:
    return (width, height) if width and height else None


def _frame(size: Size | None) -> FrameSize | None:
    return FrameSize(width=size[0], height=size[1]) if size is not None else None


@dataclass
class _Counts:
    packets: int = 0
    lost: int = 0
    freezes: int = 0


@dataclass
class ParticipantQuality:
    room_id: str
    participant_id: str
    role: str
    school_id: str | None
    classroom_id: str | None
    up: int | None
    down: int | None
    up_loss: float = 0.0
    down_loss: float = 0.0
    resolution: Size | None = None  # the camera's high layer, as the SFU receives it
    bitrate_bps: float | None = None  # that layer's bitrate and frame rate at the SFU
    fps: float | None = None
    b_frames: bool = False  # its camera's H264 carries B-frames
    capture: Size | None = None  # what the camera captures, from the page's report
    layer: ReceivedLayer | None = None  # the lowest video layer forwarded

    @property
    def score(self) -> int:
        return min(s for s in (self.up, self.down, 5) if s is not None)


@dataclass
class QualitySample:
    stats: WorkerStats
    participants: dict[tuple[str, str], ParticipantQuality] = field(default_factory=dict)


class QualityMonitor:
    """Samples the worker, scores every participant, tells the pages."""

    def __init__(self, worker: Worker, interval: float = SAMPLE_SECONDS) -> None:
        self.worker = worker
        self.interval = interval
        self.latest = QualitySample(WorkerStats(rooms=[]))
        self._previous: dict[str, _Counts] = {}
        self._peaks: dict[str, Size] = {}  # producer id -> the largest high-layer size seen
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="quality-monitor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sample()
            except Exception:
                log.exception("quality sampling failed")

    async def sample(self) -> QualitySample:
        stats = await self.worker.stats()
        sample = QualitySample(stats)
        seen: set[str] = set()
        for room in stats.rooms:
            for t in room.transports:
                q = ParticipantQuality(
                    room_id=room.room_id,
                    participant_id=t.participant_id,
                    role=t.role,
                    school_id=t.school_id,
                    classroom_id=t.classroom_id,
                    up=None,
                    down=None,
                )
                if t.producers:
                    q.up, q.up_loss = self._direction(t.producers, seen)
                    self._picture(t, q, seen)
                if t.consumers:
                    q.down, q.down_loss = self._direction(t.consumers, seen)
                    q.layer = _lowest_layer(t.consumers)
                sample.participants[(room.room_id, t.participant_id)] = q
        self._previous = {k: v for k, v in self._previous.items() if k in seen}
        self._peaks = {k: v for k, v in self._peaks.items() if k in seen}
        self.latest = sample
        await self._tell(sample)
        return sample

    def _direction(
        self, streams: list[ProducerStats] | list[ConsumerStats], seen: set[str]
    ) -> tuple[int, float]:
        """(worst score, worst loss ratio) over the streams, from deltas since the last sample."""
        worst, worst_loss = 5, 0.0
        for s in streams:
            held = 0
            if isinstance(s, ConsumerStats) and s.kind == "video":
                held = layer_penalty(s.layer, s.target_layer, s.best_layer, s.pinned)
            if isinstance(s, ConsumerStats) and (s.paused or s.layer == "audio"):
                if not s.paused:  # audio only by the estimate: nothing sent to measure
                    worst = min(worst, 5 - held)
                continue
            seen.add(s.id)
            before = self._previous.get(s.id, _Counts())
            sent = max(0, s.packets - before.packets)
            lost = max(0, s.packets_lost - before.lost)
            loss = lost / (sent + lost) if sent + lost else 0.0
            if isinstance(s, ConsumerStats):
                # The receiver report's fraction covers the subscriber's last interval.
                loss = max(loss, s.fraction_lost)
            rtt = s.rtt if isinstance(s, ConsumerStats) else None
            new_freezes = s.freezes - before.freezes
            self._previous[s.id] = _Counts(s.packets, s.packets_lost, s.freezes)
            worst = min(worst, max(1, score(loss, s.jitter, rtt, new_freezes, s.frozen) - held))
            worst_loss = max(worst_loss, loss)
        return worst, worst_loss

    def _picture(self, t: TransportStats, q: ParticipantQuality, seen: set[str]) -> None:
        """The camera's high layer against what the camera captures: a penalty on ``q.up``."""
        high = next(
            (
                p
                for p in t.producers
                if p.kind == "video" and p.source == "camera" and p.layer == "high"
            ),
            None,
        )
        report = t.client.stats if t.client is not None else None
        q.capture = (
            _size(report.capture.width, report.capture.height)
            if report and report.capture
            else None
        )
        if high is None:
            return
        received = _size(high.width, high.height)
        q.resolution = received
        q.bitrate_bps, q.fps = min(high.bitrate_bps, 1e9), round(min(high.fps, 240.0), 1)
        q.b_frames = any(p.b_frames for p in t.producers if p.kind == "video")
        penalty = SLIDESHOW_PENALTY if high.slideshow else 0
        if received is not None:
            seen.add(high.id)
            peak = self._peaks.get(high.id)
            if peak is None or received[0] * received[1] > peak[0] * peak[1]:
                self._peaks[high.id] = received
            reference = q.capture if q.capture is not None else peak_reference(received, peak)
            penalty = max(penalty, resolution_penalty(received, reference))
        if penalty and q.up is not None:
            q.up = max(1, q.up - penalty)

    async def _tell(self, sample: QualitySample) -> None:
        by_room: dict[str, list[ParticipantQuality]] = {}
        for q in sample.participants.values():
            by_room.setdefault(q.room_id, []).append(q)
        for room_id, qualities in by_room.items():
            router = self.worker.routers.get(room_id)
            if router is None:
                continue
            teacher_ids = {q.participant_id for q in qualities if q.role == Role.teacher.value}
            for q in qualities:
                if q.role not in (Role.teacher.value, Role.classroom.value):
                    continue
                message = QualityMeasured(
                    participant_id=q.participant_id,
                    score=q.score,
                    up=q.up,
                    down=q.down,
                    resolution=_frame(q.resolution),
                    capture=_frame(q.capture),
                    bitrate_bps=q.bitrate_bps,
                    fps=q.fps,
                    b_frames=q.b_frames,
                    layer=q.layer,
                )
                # The teacher sees everyone's; a classroom its own and the teacher's.
                audience = set(teacher_ids) | (
                    {q.participant_id} if q.role == Role.classroom.value else set()
                )
                if q.role == Role.teacher.value:
                    audience |= {
                        p.participant_id for p in qualities if p.role == Role.classroom.value
                    }
                for pid in audience:
                    transport = router.transports.get(pid)
                    if transport is not None:
                        with contextlib.suppress(Exception):
                            await transport.send(message)


def _lowest_layer(consumers: list[ConsumerStats]) -> ReceivedLayer | None:
    """The lowest video layer forwarded to the subscriber; a consumer still starting (its
    first keyframe not yet arrived) does not count as audio only."""
    layers = [
        c.layer
        for c in consumers
        if c.kind == "video" and not c.paused and (c.layer != "audio" or c.target_layer == "audio")
    ]
    if not layers:
        return None
    lowest = min(layers, key=lambda layer: RANK.get(layer, 0))
    return "high" if lowest == "high" else "low" if lowest == "low" else "audio"
