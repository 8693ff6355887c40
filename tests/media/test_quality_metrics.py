"""Stream-quality metrics during a real lesson: loss on one subscriber moves only its series.

aiortc peers over loopback through the SFU worker; one classroom's transport drops a
quarter of the RTP packets it receives (the test's transport wrapper), as a weak village
link would. Its loss and quality score move, the other classroom's do not; the scrape
passes ``promtool check metrics``; the lesson's series are gone once the lesson ends.
"""

from __future__ import annotations

import asyncio
import random
import shutil
import subprocess
from typing import Any

import pytest
from media_peers import Peer, load_clip, wait_for
from prometheus_client import CollectorRegistry, generate_latest

from contracts.media import QualityMeasured
from contracts.rooms import Role
from media.metrics import StreamCollector
from media.quality import QualityMonitor, score
from media.worker import Worker


class RecordingPeer(Peer):
    """A peer that keeps the quality messages the SFU sends it."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.quality: list[QualityMeasured] = []

    async def _send(self, msg: Any) -> None:
        if isinstance(msg, QualityMeasured):
            self.quality.append(msg)
        await super()._send(msg)


def drop_incoming(peer: Peer, ratio: float, seed: int = 7) -> None:
    """Lose ``ratio`` of the RTP packets arriving at this peer (before its jitter buffer)."""
    rng = random.Random(seed)
    for transceiver in peer.pc.getTransceivers():
        receiver = transceiver.receiver
        original = receiver._handle_rtp_packet

        async def lossy(packet: Any, arrival_time_ms: int, original: Any = original) -> None:
            if rng.random() >= ratio:
                await original(packet, arrival_time_ms)

        receiver._handle_rtp_packet = lossy


def test_score_formula() -> None:
    assert score(0.0, 0.005, 0.02, 0, False) == 5
    assert score(0.03, 0.0, None, 0, False) == 4
    assert score(0.25, 0.0, None, 0, False) == 2
    assert score(0.25, 0.1, 0.7, 0, True) == 1
    assert score(0.0, 0.04, 0.35, 0, False) == 3
    assert score(0.0, 0.0, None, 2, False) == 4


@pytest.mark.timeout(90)
async def test_loss_on_one_subscriber_moves_only_its_metrics(clips: dict[str, Any]) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is required (apt-get install -y prometheus)")
    worker = Worker()
    monitor = QualityMonitor(worker)
    registry = CollectorRegistry()
    registry.register(StreamCollector(monitor))
    teacher = RecordingPeer(
        worker, "teacher", Role.teacher, school_id="xian-shiyan", classroom_id="3-1"
    )
    good = RecordingPeer(worker, "good", Role.classroom, school_id="jd-1", classroom_id="jd-1-g3")
    weak = RecordingPeer(worker, "weak", Role.classroom, school_id="jd-5", classroom_id="jd-5-g3")
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["high"], "video"), "video/H264")]
    )
    try:
        await teacher.connect()
        await good.connect()
        await weak.connect()
        assert await wait_for(lambda: good.video("teacher") and weak.video("teacher"), 15)
        drop_incoming(weak, 0.25)

        def value(name: str, classroom: str, **labels: str) -> float | None:
            base = {
                "lesson": "room-1",
                "school": classroom.split("-g")[0],
                "classroom": classroom,
                "role": "classroom",
            }
            return registry.get_sample_value(name, {**base, **labels})

        down_video = {"kind": "video", "direction": "down", "layer": ""}
        # 8 s of samples at least; on a loaded machine receiver reports come late: up to 20 s
        for n in range(10):
            await asyncio.sleep(2)
            await monitor.sample()
            weak_loss = value("sanke_stream_loss_ratio", "jd-5-g3", **down_video)
            if n >= 3 and weak_loss is not None and weak_loss > 0.05:
                break
        weak_loss = value("sanke_stream_loss_ratio", "jd-5-g3", **down_video)
        good_loss = value("sanke_stream_loss_ratio", "jd-1-g3", **down_video)
        assert weak_loss is not None and good_loss is not None
        assert weak_loss > 0.05, weak_loss
        assert good_loss < 0.02, good_loss
        assert (value("sanke_stream_packets_lost_total", "jd-5-g3", **down_video) or 0) > 0
        weak_score = value("sanke_quality_score", "jd-5-g3", direction="down")
        good_score = value("sanke_quality_score", "jd-1-g3", direction="down")
        assert weak_score is not None and good_score is not None
        assert weak_score <= 3 < good_score
        # The teacher's upstream is untouched.
        assert (
            registry.get_sample_value(
                "sanke_quality_score",
                {
                    "lesson": "room-1",
                    "school": "xian-shiyan",
                    "classroom": "3-1",
                    "role": "teacher",
                    "direction": "up",
                },
            )
            == 5.0
        )

        # The pages are told: the teacher sees both classrooms, each classroom sees itself.
        assert {q.participant_id for q in teacher.quality} >= {"good", "weak"}
        assert "good" not in {q.participant_id for q in weak.quality}
        assert min(q.score for q in weak.quality if q.participant_id == "weak") <= 3

        scrape = generate_latest(registry)
        check = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()
        assert b'lesson="room-1"' in scrape

        await worker.close_room("room-1")
        await monitor.sample()
        assert b'lesson="room-1"' not in generate_latest(registry)
    finally:
        for p in (teacher, good, weak):
            await p.close()
        await worker.close()
