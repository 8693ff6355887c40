"""An RTMP push as the teacher: real FFmpeg (as OBS or a 录播 host) pushes H.264 + AAC to the
SFU's RTMP server (media.rtmp_server); the video is passed through to a real aiortc
classroom that decodes it at 1280x720, the audio arrives as Opus."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from media_peers import Peer, wait_for
from support.rtmp_push import FfmpegPush, key_sha256

from contracts.media import PullRequest, PullStatus
from contracts.rooms import Participant, Role
from media.rtmp_server import RtmpServer, RtmpSettings
from media.worker import Worker

pytestmark = pytest.mark.timeout(90)


async def _nothing(event: object) -> None:
    return None


async def push_teacher(worker: Worker, key: str, room: str = "room-1") -> None:
    teacher = Participant(
        id="encoder",
        room_id=room,
        subject="source:enc",
        role=Role.teacher,
        node_id="test",
        publish_only=True,
    )
    await worker.join(teacher, _nothing)
    await worker.pull(room, teacher.id, PullRequest(push_key_sha256=key_sha256(key)))


async def status_of(worker: Worker, room: str = "room-1") -> PullStatus:
    (status,) = await worker.pull_status(room, "encoder")
    return status


async def wait_state(
    worker: Worker, state: str, timeout: float, room: str = "room-1"
) -> PullStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = await status_of(worker, room)
        if status.state == state or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker()
    yield w
    await w.close()


@pytest.fixture
async def server(worker: Worker) -> AsyncIterator[RtmpServer]:
    s = RtmpServer(worker.pushes, RtmpSettings(port=0, hosts=["::1", "127.0.0.1"]))
    await s.start()
    yield s
    await s.stop()


def url(server: RtmpServer, key: str, host: str = "127.0.0.1") -> str:
    host = f"[{host}]" if ":" in host else host
    return f"rtmp://{host}:{server.port}/live/{key}"


async def test_a_push_reaches_the_classroom_as_h264_at_720p_with_opus(
    worker: Worker, server: RtmpServer, tmp_path: Path
) -> None:
    await push_teacher(worker, "key-one")
    assert (await status_of(worker)).state == "connecting"
    classroom = Peer(worker, "class-1", Role.classroom)
    with FfmpegPush(url(server, "key-one", "::1"), tmp_path / "ffmpeg.log"):
        try:
            await classroom.connect()
            assert await wait_for(
                lambda: (
                    any(r.frames >= 30 for r in classroom.video("encoder"))
                    and any(r.frames >= 50 for r in classroom.audio("encoder"))
                ),
                30,
            ), (await status_of(worker), classroom.received)
            (video,) = classroom.video("encoder")
            assert video.sizes == {(1280, 720)}
            transport = worker.transport("room-1", "encoder")
            assert transport is not None
            assert transport.producers["rtsp-audio"].codec == "opus"
            status = await status_of(worker)
            assert (status.state, status.codec, status.width, status.height) == (
                "connected",
                "h264",
                1280,
                720,
            )
        finally:
            await classroom.close()
