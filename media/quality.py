"""Stream quality: a 1–5 score per participant and direction, sampled every few seconds.

The score (like LiveKit's connection quality) starts at 5 and loses points for what
people notice, each penalty on its own threshold:

| signal | −1 | −2 | −3 |
| --- | --- | --- | --- |
| packet loss | > 2 % | > 5 % | > 10 % |
| jitter | > 30 ms | > 80 ms | — |
| round-trip time | > 300 ms | > 600 ms | — |
| video freezes in the last sample | any | frozen now | — |

Loss counts most: at 10 % video breaks up and speech drops syllables. Jitter and RTT beyond
these values make conversation awkward (ITU-T G.114 puts the comfort limit for one-way
delay at 150 ms). The result is clamped to 1..5. A direction's score is its worst stream.

One sampler per worker feeds both the Prometheus collector (via ``latest``) and the
``quality`` messages to teachers and classrooms, so ``getStats`` runs once per sample.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

from media.stats import ConsumerStats, ProducerStats, WorkerStats
from media.worker import Worker
from signaling.models import Role
from signaling.protocol import Quality

log = logging.getLogger(__name__)

SAMPLE_SECONDS = 2.0


def score(loss: float, jitter: float, rtt: float | None, freezes: int, frozen: bool) -> int:
    points = 5
    points -= 3 if loss > 0.10 else 2 if loss > 0.05 else 1 if loss > 0.02 else 0
    points -= 2 if jitter > 0.080 else 1 if jitter > 0.030 else 0
    if rtt is not None:
        points -= 2 if rtt > 0.600 else 1 if rtt > 0.300 else 0
    points -= 2 if frozen else 1 if freezes > 0 else 0
    return max(1, min(5, points))


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
                if t.consumers:
                    q.down, q.down_loss = self._direction(t.consumers, seen)
                sample.participants[(room.room_id, t.participant_id)] = q
        self._previous = {k: v for k, v in self._previous.items() if k in seen}
        self.latest = sample
        await self._tell(sample)
        return sample

    def _direction(
        self, streams: list[ProducerStats] | list[ConsumerStats], seen: set[str]
    ) -> tuple[int, float]:
        """(worst score, worst loss ratio) over the streams, from deltas since the last sample."""
        worst, worst_loss = 5, 0.0
        for s in streams:
            if isinstance(s, ConsumerStats) and (s.paused or s.layer == "off"):
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
            worst = min(worst, score(loss, s.jitter, rtt, new_freezes, s.frozen))
            worst_loss = max(worst_loss, loss)
        return worst, worst_loss

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
                message = Quality(
                    participant_id=q.participant_id, score=q.score, up=q.up, down=q.down
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
