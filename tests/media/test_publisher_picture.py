"""A teacher whose high layer arrives at 180p while its camera captures 720p is not a "5".

Real aiortc peers through the SFU worker: the teacher publishes a 320x180 H264 clip on its
high m-line (what a starved encoder sends) and reports, as its page would, a 1280x720
capture; a classroom publishes a 640x360 high layer from a 640x360 camera. The SFU reads the
sizes from the bitstream; the teacher's upstream score drops to 3 or less, the classroom's
stays 5, and the Prometheus scrape shows the heights, the reported estimate and the
encoder's limitation (and passes ``promtool check metrics``).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from typing import Any

import pytest
from media_peers import Peer, load_clip, wait_for
from prometheus_client import CollectorRegistry, generate_latest

from contracts.media import QualityMeasured, StatsReport
from contracts.rooms import Role
from media.metrics import StreamCollector
from media.quality import QualityMonitor
from media.worker import Worker


class RecordingPeer(Peer):
    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.quality: list[QualityMeasured] = []

    async def _send(self, msg: Any) -> None:
        if isinstance(msg, QualityMeasured):
            self.quality.append(msg)
        await super()._send(msg)


def video_mids(worker: Worker, pid: str) -> dict[str, str]:
    transport = worker.transport("room-1", pid)
    assert transport is not None
    return {p.layer: mid for mid, p in transport.producers.items() if p.kind == "video"}


@pytest.mark.timeout(90)
async def test_a_180p_high_layer_of_a_720p_camera_scores_low(clips: dict[str, Any]) -> None:
    if shutil.which("promtool") is None:
        pytest.fail("promtool is required (apt-get install -y prometheus)")
    worker = Worker()
    monitor = QualityMonitor(worker)
    registry = CollectorRegistry()
    registry.register(StreamCollector(monitor))
    teacher = RecordingPeer(
        worker, "teacher", Role.teacher, school_id="xian-shiyan", classroom_id="3-1"
    )
    room = RecordingPeer(worker, "class", Role.classroom, school_id="jd-1", classroom_id="jd-1-g3")
    low = load_clip(clips["low"], "video")  # 320x180
    teacher.publish(load_clip(clips["opus"], "audio"), [(low, "video/H264"), (low, "video/H264")])
    room.publish(None, [(load_clip(clips["high"], "video"), "video/H264")])  # 640x360
    try:
        await teacher.connect()
        await room.connect()
        assert await wait_for(lambda: room.video("teacher") and teacher.video("class"), 15)
        t_mids, c_mids = video_mids(worker, "teacher"), video_mids(worker, "class")
        await worker.report_stats(
            "room-1",
            "teacher",
            StatsReport.model_validate(
                {
                    "available_outgoing_bitrate": 310_000,
                    "outbound": [
                        {
                            "mid": t_mids["high"],
                            "width": 320,
                            "height": 180,
                            "quality_limitation": "bandwidth",
                        },
                        {"mid": t_mids["low"], "width": 320, "height": 180},
                    ],
                    "capture": {"width": 1280, "height": 720},
                }
            ),
        )
        await worker.report_stats(
            "room-1",
            "class",
            StatsReport.model_validate(
                {
                    "available_outgoing_bitrate": 2_000_000,
                    "outbound": [{"mid": c_mids["high"], "width": 640, "height": 360}],
                    "capture": {"width": 640, "height": 360},
                }
            ),
        )
        for _ in range(2):
            await asyncio.sleep(1)
            sample = await monitor.sample()

        t = sample.participants[("room-1", "teacher")]
        c = sample.participants[("room-1", "class")]
        assert t.resolution == (320, 180) and t.capture == (1280, 720)
        assert t.up is not None and t.up <= 3, t
        assert c.resolution == (640, 360) and c.up == 5, c
        told = [q for q in teacher.quality if q.participant_id == "teacher"][-1]
        assert told.up is not None and told.up <= 3
        assert told.resolution is not None and (told.resolution.width, told.resolution.height) == (
            320,
            180,
        )
        assert told.capture is not None and told.capture.height == 720
        assert [q for q in room.quality if q.participant_id == "teacher"][-1].up == told.up

        def value(name: str, pid: str, **labels: str) -> float | None:
            base = {
                "teacher": {
                    "lesson": "room-1",
                    "school": "xian-shiyan",
                    "classroom": "3-1",
                    "role": "teacher",
                },
                "class": {
                    "lesson": "room-1",
                    "school": "jd-1",
                    "classroom": "jd-1-g3",
                    "role": "classroom",
                },
            }[pid]
            return registry.get_sample_value(name, {**base, **labels})

        up_high = {"kind": "video", "direction": "up", "layer": "high"}
        assert value("sanke_stream_frame_height", "teacher", **up_high) == 180
        assert value("sanke_stream_frame_width", "teacher", **up_high) == 320
        assert value("sanke_stream_frame_height", "class", **up_high) == 360
        # what the classroom is forwarded of the teacher: its high layer's 180 lines
        down = {"kind": "video", "direction": "down", "layer": ""}
        assert value("sanke_stream_frame_height", "class", **down) == 180
        assert value("sanke_publisher_estimate_bps", "teacher") == 310_000
        assert value("sanke_publisher_capture_frame_height", "teacher") == 720
        for reason, count in [("bandwidth", 1), ("none", 0), ("cpu", 0)]:
            assert (
                value("sanke_publisher_quality_limitation", "teacher", layer="high", reason=reason)
                == count
            )
        assert (
            value("sanke_publisher_quality_limitation", "teacher", layer="low", reason="none") == 1
        )
        assert value("sanke_quality_score", "teacher", direction="up") == t.up
        # aiortc subscribers send no transport-cc feedback: no downlink estimate, no series
        assert b"sanke_subscriber_estimate_bps{" not in generate_latest(registry)

        scrape = generate_latest(registry)
        check = subprocess.run(["promtool", "check", "metrics"], input=scrape, capture_output=True)
        assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()

        # the lesson ends: its series and the reports go
        await worker.close_room("room-1")
        await monitor.sample()
        assert worker.client_reports == {}
        assert b'lesson="room-1"' not in generate_latest(registry)
    finally:
        for p in (teacher, room):
            await p.close()
        await worker.close()
