"""The quality score's picture rules: a 180p teacher is not a 5, a held-down subscriber not either.

The rules as functions, then the monitor on hand-made samples (what ``Worker.stats`` returns),
sampled twice where a rule needs a history.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from contracts.media import StatsReport
from media.quality import QualityMonitor, layer_penalty, peak_reference, resolution_penalty
from media.stats import (
    ClientReport,
    ConsumerStats,
    ProducerStats,
    RoomStats,
    TransportStats,
    WorkerStats,
)

CAMERA_720 = (1280, 720)


@pytest.mark.parametrize(
    ("received", "points"),
    [
        ((1280, 720), 0),
        ((960, 540), 0),  # 3/4: Chromium's first adaptation step reads fine
        ((854, 480), 1),
        ((640, 360), 1),  # exactly 1/2
        ((480, 270), 2),
        ((320, 180), 2),  # the bug this rule is for
    ],
)
def test_resolution_against_the_capture(received: tuple[int, int], points: int) -> None:
    assert resolution_penalty(received, CAMERA_720) == points


def test_resolution_without_both_sizes_costs_nothing() -> None:
    assert resolution_penalty(None, CAMERA_720) == 0
    assert resolution_penalty((320, 180), None) == 0
    assert resolution_penalty((320, 180), (0, 0)) == 0
    # rotation does not matter: the pixel ratio is compared
    assert resolution_penalty((720, 1280), CAMERA_720) == 0


def test_without_a_report_the_peak_counts_only_below_360p() -> None:
    assert peak_reference((320, 180), (1280, 720)) == (1280, 720)
    assert peak_reference((640, 360), (1280, 720)) is None  # adaptation or a smaller camera
    assert peak_reference((320, 240), (400, 300)) is None  # it never was above 360p
    assert peak_reference((320, 180), None) is None


@pytest.mark.parametrize(
    ("layer", "target", "best", "pinned", "points"),
    [
        ("high", "high", "high", None, 0),
        ("low", "low", "high", None, 1),  # held on the low layer by its estimate
        ("audio", "audio", "high", None, 1),  # audio only
        ("audio", "audio", "low", None, 1),
        ("low", "high", "high", None, 0),  # going up at the next keyframe
        ("audio", "high", "high", None, 0),  # starting: waits for its first keyframe
        ("low", "low", "low", None, 0),  # the publisher sends nothing better
        ("low", "low", "high", "low", 0),  # the subscriber chose it
        ("audio", "audio", "high", "audio", 0),
        ("audio", "audio", "high", "low", 1),  # pinned low, yet not even that fits
    ],
)
def test_layer_held_by_the_estimate(
    layer: str, target: str, best: str, pinned: str | None, points: int
) -> None:
    assert layer_penalty(layer, target, best, pinned) == points


class SampledWorker:
    """Stands in for the Worker: returns the given stats; no routers, so nothing is sent."""

    def __init__(self) -> None:
        self.routers: dict[str, Any] = {}
        self.next = WorkerStats(rooms=[])

    async def stats(self) -> WorkerStats:
        return self.next


def teacher(
    high: tuple[int, int] | None,
    capture: tuple[int, int] | None,
    reported: bool = True,
    slideshow: bool = False,
) -> TransportStats:
    producers = [
        ProducerStats(id="t/audio/main", participant_id="t", kind="audio", layer="main"),
        ProducerStats(
            id="t/video/high",
            participant_id="t",
            kind="video",
            layer="high",
            width=high[0] if high else None,
            height=high[1] if high else None,
            mid="1",
            slideshow=slideshow,
        ),
        ProducerStats(
            id="t/video/low", participant_id="t", kind="video", layer="low", width=320, height=180
        ),
    ]
    client = None
    if reported:
        report = StatsReport.model_validate(
            {"capture": {"width": capture[0], "height": capture[1]}} if capture else {}
        )
        client = ClientReport(received_at=time.monotonic(), stats=report)
    return TransportStats(
        participant_id="t",
        role="teacher",
        connection_state="connected",
        producers=producers,
        consumers=[],
        client=client,
    )


def classroom(
    layer: str, target: str, pinned: str | None = None, best: str = "high"
) -> TransportStats:
    video = ConsumerStats(
        id="c<t/video",
        subscriber_id="c",
        source_id="t",
        kind="video",
        layer=layer,
        target_layer=target,
        paused=False,
        best_layer=best,
        pinned=pinned,
    )
    return TransportStats(
        participant_id="c",
        role="classroom",
        connection_state="connected",
        producers=[],
        consumers=[video],
    )


async def sample(worker: SampledWorker, monitor: QualityMonitor, *ts: TransportStats) -> Any:
    worker.next = WorkerStats(rooms=[RoomStats(room_id="r", transports=list(ts))])
    return (await monitor.sample()).participants


async def test_a_180p_high_layer_of_a_720p_camera_scores_3() -> None:
    worker = SampledWorker()
    monitor = QualityMonitor(worker)  # type: ignore[arg-type]
    q = (await sample(worker, monitor, teacher((320, 180), CAMERA_720)))[("r", "t")]
    assert (q.up, q.resolution, q.capture) == (3, (320, 180), CAMERA_720)
    q = (await sample(worker, monitor, teacher((1280, 720), CAMERA_720)))[("r", "t")]
    assert q.up == 5
    q = (await sample(worker, monitor, teacher((640, 360), CAMERA_720)))[("r", "t")]
    assert q.up == 4


async def test_a_720p_slideshow_scores_as_the_low_layer_its_classrooms_get() -> None:
    worker = SampledWorker()
    monitor = QualityMonitor(worker)  # type: ignore[arg-type]
    q = await sample(worker, monitor, teacher((1280, 720), CAMERA_720, slideshow=True))
    assert q[("r", "t")].up == 3
    # the classroom given the low layer in its place is not held down by its own link
    q = await sample(worker, monitor, classroom("low", "low", best="low"))
    assert q[("r", "c")].down == 5


async def test_without_a_report_a_drop_below_360p_counts() -> None:
    worker = SampledWorker()
    monitor = QualityMonitor(worker)  # type: ignore[arg-type]
    # an ingest that started small is not penalized: it never was larger
    q = (await sample(worker, monitor, teacher((320, 180), None, reported=False)))[("r", "t")]
    assert q.up == 5 and q.capture is None
    worker2 = SampledWorker()
    monitor2 = QualityMonitor(worker2)  # type: ignore[arg-type]
    for high, up in [((1280, 720), 5), ((640, 360), 5), ((320, 180), 3), ((1280, 720), 5)]:
        q = (await sample(worker2, monitor2, teacher(high, None, reported=False)))[("r", "t")]
        assert q.up == up, (high, q.up)
    # a report without a capture size falls back to the same rule
    q = (await sample(worker2, monitor2, teacher((320, 180), None, reported=True)))[("r", "t")]
    assert q.up == 3


async def test_a_subscriber_held_down_loses_a_point_unless_it_pinned_the_layer() -> None:
    worker = SampledWorker()
    monitor = QualityMonitor(worker)  # type: ignore[arg-type]
    cases = [
        (classroom("high", "high"), 5, "high"),
        (classroom("low", "low"), 4, "low"),
        (classroom("audio", "audio"), 4, "audio"),
        (classroom("low", "low", pinned="low"), 5, "low"),
        (classroom("audio", "high"), 5, None),  # starting: no layer yet
    ]
    for transport, down, layer in cases:
        q = (await sample(worker, monitor, transport))[("r", "c")]
        assert (q.down, q.layer) == (down, layer), transport.consumers[0]
