"""The ``stats`` message: a publisher's own view of its sending, bounded, rate-limited, forwarded.

Over a real WebSocket: a good report reaches the media plane; bad types, lists too long,
NaN and negative numbers get ``error`` ``invalid_message`` naming the field, a second report
within a second gets ``rate_limited``, and the connection stays. In distributed mode the
report travels to the room's SFU node like ``set_muted`` does (through the store's
request/reply channels, here the in-memory store with a real ``SfuNode`` and ``Worker``).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from support.harness import Harness, running_app

from contracts.media import NullMediaPlane, StatsReport
from contracts.rooms import Participant, Role, Room
from signaling.rooms import RoomRepository

GOOD: dict[str, Any] = {
    "type": "stats",
    "available_outgoing_bitrate": 2_480_000,
    "outbound": [
        {"mid": "1", "width": 1280, "height": 720, "fps": 30, "bitrate_bps": 2_310_000},
        {"mid": "2", "width": 320, "height": 180, "fps": 29.5, "quality_limitation": "bandwidth"},
    ],
    "capture": {"width": 1280, "height": 720},
}


class RecordingMedia(NullMediaPlane):
    def __init__(self) -> None:
        self.reports: list[tuple[str, str, StatsReport]] = []

    async def report_stats(self, room_id: str, participant_id: str, report: StatsReport) -> None:
        self.reports.append((room_id, participant_id, report))


@pytest.fixture
async def recorded() -> tuple[Harness, RecordingMedia]:  # type: ignore[misc]
    media = RecordingMedia()
    async with running_app(media=media) as harness:
        await harness.room("room-1")
        yield harness, media


async def test_a_report_reaches_the_media_plane(recorded: tuple[Harness, RecordingMedia]) -> None:
    h, media = recorded
    teacher = await h.joined(Role.teacher)
    await teacher.send(GOOD)
    assert await teacher.silent(0.3) == []  # no reply to a report
    assert len(media.reports) == 1
    room, pid, report = media.reports[0]
    assert (room, pid) == ("room-1", teacher.participant_id)
    assert report.available_outgoing_bitrate == 2_480_000
    assert [(o.mid, o.height, o.quality_limitation) for o in report.outbound] == [
        ("1", 720, "none"),
        ("2", 180, "bandwidth"),
    ]
    assert report.capture is not None and report.capture.height == 720


def _with(**fields: Any) -> str:
    return json.dumps({**GOOD, **fields})


@pytest.mark.parametrize(
    ("frame", "where"),
    [
        (_with(available_outgoing_bitrate="fast"), "available_outgoing_bitrate"),
        (_with(available_outgoing_bitrate=-1), "available_outgoing_bitrate"),
        (_with(available_outgoing_bitrate=2e9), "available_outgoing_bitrate"),
        # Python's json (and a careless page) can write NaN and Infinity
        (_with(available_outgoing_bitrate=float("nan")), "available_outgoing_bitrate"),
        (_with(outbound=[{"mid": "1", "fps": float("inf")}]), "outbound.0.fps"),
        (_with(outbound=[{"mid": "1"}] * 9), "outbound"),
        (_with(outbound={"mid": "1"}), "outbound"),
        (_with(outbound=[{"mid": "x" * 17}]), "outbound.0.mid"),
        (_with(outbound=[{"mid": ""}]), "outbound.0.mid"),
        (_with(outbound=[{"mid": "1", "height": -360}]), "outbound.0.height"),
        (_with(outbound=[{"mid": "1", "width": 9000}]), "outbound.0.width"),
        (_with(outbound=[{"mid": "1", "fps": 500}]), "outbound.0.fps"),
        (_with(outbound=[{"mid": "1", "bitrate_bps": -5}]), "outbound.0.bitrate_bps"),
        (
            _with(outbound=[{"mid": "1", "quality_limitation": "gpu"}]),
            "outbound.0.quality_limitation",
        ),
        (_with(outbound=[{"mid": "1", "extra": 1}]), "outbound.0.extra"),
        (_with(capture={"width": 1280}), "capture.height"),
        (_with(capture={"width": "wide", "height": 720}), "capture.width"),
    ],
)
async def test_bad_reports_get_an_error_and_the_connection_stays(
    recorded: tuple[Harness, RecordingMedia], frame: str, where: str
) -> None:
    h, media = recorded
    teacher = await h.joined(Role.teacher)
    await teacher.ws.send_str(frame)
    error = await teacher.expect("error")
    assert error["code"] == "invalid_message"
    assert error["message"].startswith(f"stats: {where}:"), error["message"]
    assert media.reports == []
    await teacher.send({"type": "ping"})
    assert await teacher.expect("pong")
    # the next good report is taken
    await teacher.send(GOOD)
    await teacher.send({"type": "ping"})
    await teacher.expect("pong")
    assert len(media.reports) == 1


async def test_at_most_one_report_a_second(recorded: tuple[Harness, RecordingMedia]) -> None:
    h, media = recorded
    teacher = await h.joined(Role.teacher)
    await teacher.send(GOOD)
    await teacher.send({**GOOD, "rid": "second"})
    error = await teacher.expect("error")
    assert (error["code"], error["rid"]) == ("rate_limited", "second")
    assert len(media.reports) == 1
    await asyncio.sleep(1.1)
    await teacher.send(GOOD)
    await teacher.send({"type": "ping"})
    assert await teacher.expect("pong")
    assert len(media.reports) == 2
    # refused reports do not count towards closing the connection
    for _ in range(30):
        await teacher.send(GOOD)
    await teacher.send({"type": "ping"})
    assert await teacher.expect("pong")
    assert not teacher.ws.closed


async def test_a_report_before_join_is_refused(recorded: tuple[Harness, RecordingMedia]) -> None:
    h, media = recorded
    client = await h.connect()
    await client.send(GOOD)
    assert (await client.expect("error"))["code"] == "not_joined"
    assert media.reports == []


async def test_a_report_travels_to_the_rooms_sfu_node() -> None:
    from contracts.store import MemoryStore
    from media.node import SfuNode
    from media.worker import Worker
    from signaling.hub import RoomHub
    from signaling.remote_media import RemoteMediaPlane

    store = MemoryStore()
    worker = Worker()
    node = SfuNode(store, worker, "sfu-1")
    plane = RemoteMediaPlane(store, RoomHub(store), "sig-1")
    await node.start()
    await plane.start()
    try:
        await RoomRepository(store).create(Room(id="room-1"))
        teacher = Participant(
            id="t1", room_id="room-1", subject="t1", role=Role.teacher, node_id="sig-1"
        )
        await RoomRepository(store).put_participant(teacher)
        # media joins on the first media call; the room is then placed on the node
        await plane._ensure_joined("room-1", "t1")
        report = StatsReport.model_validate({k: v for k, v in GOOD.items() if k != "type"})
        await plane.report_stats("room-1", "t1", report)
        kept = worker.client_reports[("room-1", "t1")]
        assert kept.stats == report
        # a report for someone the node does not serve is dropped, not an error
        await plane.report_stats("room-1", "nobody", report)
        assert ("room-1", "nobody") not in worker.client_reports
        await plane.leave("room-1", "t1")
        assert worker.client_reports == {}
    finally:
        await plane.close()
        await node.stop()
