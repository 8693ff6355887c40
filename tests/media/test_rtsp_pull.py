"""An RTSP camera as the teacher: a real GStreamer RTSP server (tests/support/rtsp_server.py)
pulled by the SFU (media.rtsp_origin), its H.264 passed through to a real aiortc classroom
that decodes it at the camera's own resolution."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from media_peers import DecodeErrors, Peer, wait_for
from support.processes import free_port
from support.rtsp_server import RtspCamera

from contracts.media import PullRequest, PullStatus
from contracts.rooms import Participant, Role
from media.rtsp_origin import QUEUE_FRAMES
from media.worker import Worker

pytestmark = pytest.mark.timeout(90)


async def _nothing(event: object) -> None:
    return None


async def camera_teacher(worker: Worker, request: PullRequest, room: str = "room-1") -> str:
    teacher = Participant(
        id="camera",
        room_id=room,
        subject="source:cam",
        role=Role.teacher,
        node_id="test",
        publish_only=True,
    )
    await worker.join(teacher, _nothing)
    await worker.pull(room, teacher.id, request)
    return teacher.id


async def status_of(worker: Worker, room: str = "room-1", layer: str = "high") -> PullStatus:
    statuses = {s.layer: s for s in await worker.pull_status(room, "camera")}
    return statuses[layer]  # type: ignore[index]


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
def camera(tmp_path: Path) -> Iterator[RtspCamera]:
    with RtspCamera(free_port(), tmp_path / "camera.log") as cam:
        yield cam


@pytest.mark.parametrize("transport", ["tcp", "udp"])
async def test_the_camera_reaches_the_classroom_at_its_resolution(
    worker: Worker, camera: RtspCamera, transport: str
) -> None:
    await camera_teacher(worker, PullRequest(url=camera.url(), transport=transport))  # type: ignore[arg-type]
    classroom = Peer(worker, "class-1", Role.classroom)
    try:
        await classroom.connect()
        assert await wait_for(lambda: any(r.frames >= 30 for r in classroom.video("camera")), 30), (
            await status_of(worker),
            classroom.received,
        )
        (video,) = classroom.video("camera")
        assert video.sizes == {(1280, 720)}
        status = await status_of(worker)
        assert (status.state, status.codec, status.width, status.height) == (
            "connected",
            "h264",
            1280,
            720,
        )
        assert status.frames > 0 and status.reconnects == 0
    finally:
        await classroom.close()


async def test_the_sub_stream_is_the_low_layer(worker: Worker, camera: RtspCamera) -> None:
    await camera_teacher(worker, PullRequest(url=camera.url(), low_url=camera.url("sub")))
    classroom = Peer(worker, "class-1", Role.classroom)
    try:
        await classroom.connect()
        assert await wait_for(lambda: any(r.frames >= 10 for r in classroom.video("camera")), 30)
        await worker.set_layer("room-1", "class-1", "low")
        assert await wait_for(
            lambda: any(r.last_size == (352, 288) for r in classroom.video("camera")), 20
        ), classroom.received
        (video,) = classroom.video("camera")
        frames = video.frames
        assert await wait_for(lambda: video.frames >= frames + 20, 10)
        assert video.last_size == (352, 288)
        low = await status_of(worker, layer="low")
        assert (low.state, low.width, low.height) == ("connected", 352, 288)
    finally:
        await classroom.close()


async def test_an_mjpeg_sub_stream_is_refused_and_the_main_stream_is_the_only_layer(
    worker: Worker, tmp_path: Path
) -> None:
    with RtspCamera(free_port(), tmp_path / "c.log", sub_variant="mjpeg") as camera:
        await camera_teacher(worker, PullRequest(url=camera.url(), low_url=camera.url("sub")))
        classroom = Peer(worker, "class-1", Role.classroom)
        try:
            await classroom.connect()
            assert await wait_for(
                lambda: any(r.frames >= 10 for r in classroom.video("camera")), 30
            )

            async def refused() -> bool:
                return (await status_of(worker, layer="low")).state == "refused"

            deadline = time.monotonic() + 20
            while not await refused() and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            low = await status_of(worker, layer="low")
            assert (low.state, low.codec) == ("refused", "mjpeg"), low
            assert low.message is not None
            assert "sub-stream sends MJPEG" in low.message and "H.264" in low.message
            # the sub-stream is no layer a classroom's allocation may pick while refused …
            camera_transport = worker.routers["room-1"].transports["camera"]
            assert camera_transport.producers["rtsp-low"].active is False
            # … and a classroom asking for the low layer (a weak link) gets the main stream
            await worker.set_layer("room-1", "class-1", "low")
            (video,) = classroom.video("camera")
            frames = video.frames
            assert await wait_for(lambda: video.frames >= frames + 30, 10), classroom.received
            assert video.sizes == {(1280, 720)}
            high = await status_of(worker)
            assert high.state == "connected"
        finally:
            await classroom.close()


@pytest.mark.parametrize("digest", [False, True])
async def test_a_wrong_password_gets_its_status(
    worker: Worker, tmp_path: Path, digest: bool
) -> None:
    with RtspCamera(
        free_port(), tmp_path / "c.log", user="admin", password="right", digest=digest
    ) as camera:
        await camera_teacher(worker, PullRequest(url=camera.url(user="admin", password="wrong")))
        status = await wait_state(worker, "unauthorized", 20)
        assert status.state == "unauthorized", status
        assert status.message is not None and "password" in status.message
        assert "wrong" not in (status.message or "")
        # the right one is let in
        await worker.pull(
            "room-1", "camera", PullRequest(url=camera.url(user="admin", password="right"))
        )
        assert (await wait_state(worker, "connected", 20)).state == "connected"


async def test_a_restarted_camera_is_reconnected_and_its_picture_resumes(
    worker: Worker, camera: RtspCamera
) -> None:
    await camera_teacher(worker, PullRequest(url=camera.url()))
    classroom = Peer(worker, "class-1", Role.classroom)
    try:
        await classroom.connect()
        assert await wait_for(lambda: any(r.frames >= 20 for r in classroom.video("camera")), 30)
        camera.stop()
        status = await wait_state(worker, "reconnecting", 15)
        assert status.state == "reconnecting", status
        (video,) = classroom.video("camera")
        await asyncio.sleep(1.0)
        frames = video.frames
        camera.start()
        assert (await wait_state(worker, "connected", 30)).state == "connected"
        assert await wait_for(lambda: video.frames >= frames + 30, 20), video
        assert video.last_size == (1280, 720)
        assert (await status_of(worker)).reconnects >= 1
    finally:
        await classroom.close()


@pytest.mark.parametrize(
    ("variant", "says"),
    [("h265", "H.265"), ("bframes", "B-frames")],
)
async def test_what_browsers_cannot_play_is_refused_naming_the_setting(
    worker: Worker, tmp_path: Path, variant: str, says: str
) -> None:
    with RtspCamera(free_port(), tmp_path / "c.log", variant=variant, sub_size=None) as camera:
        await camera_teacher(worker, PullRequest(url=camera.url()))
        status = await wait_state(worker, "refused", 30)
        assert status.state == "refused", status
        assert status.message is not None and says in status.message
        assert "H.264" in status.message or "B-frames 0" in status.message
        transport = worker.transport("room-1", "camera")
        assert transport is not None
        producer = transport.producers["rtsp-high"]
        if variant != "bframes":
            assert producer.frames == 0  # nothing reached the room


class BadCamera:
    """A TCP server that accepts RTSP clients and then never answers, or answers garbage."""

    def __init__(self, garbage: bool) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.garbage = garbage
        self.clients: list[socket.socket] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.clients.append(client)
            if self.garbage:
                with contextlib.suppress(OSError):
                    client.sendall(b"\x8f\x00garbage not RTSP\r\n\r\n" * 200)

    def close(self) -> None:
        self.sock.close()
        for c in self.clients:
            c.close()


@pytest.mark.parametrize("garbage", [False, True])
async def test_a_stalled_or_garbage_camera_blocks_neither_the_loop_nor_other_rooms(
    worker: Worker, camera: RtspCamera, garbage: bool
) -> None:
    bad = BadCamera(garbage)
    try:
        await camera_teacher(worker, PullRequest(url=f"rtsp://127.0.0.1:{bad.port}/x"), "room-bad")
        await camera_teacher(worker, PullRequest(url=camera.url()), "room-1")
        classroom = Peer(worker, "class-1", Role.classroom)
        try:
            await classroom.connect()
            worst = 0.0
            last = time.monotonic()
            frames_seen = False
            deadline = time.monotonic() + 12
            while time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                now = time.monotonic()
                worst, last = max(worst, now - last), now
                frames_seen = frames_seen or any(r.frames >= 60 for r in classroom.video("camera"))
            assert worst < 0.5, worst
            assert frames_seen, classroom.received
            bad_status = await status_of(worker, "room-bad")
            assert bad_status.state in ("connecting", "reconnecting"), bad_status
            assert bad_status.frames == 0
            if garbage:
                assert bad_status.state == "reconnecting" and bad_status.message
        finally:
            await classroom.close()
        # leaving stops its pull (the thread ends within the read timeout)
        await worker.leave("room-bad", "camera")
    finally:
        bad.close()


async def test_a_stalled_event_loop_drops_to_the_next_idr_bounded(
    worker: Worker, camera: RtspCamera
) -> None:
    """Frames wait for the loop in a bounded hand-over: a loop stalled for 4 s (120 camera
    frames) drops what does not fit up to the next IDR, and the classroom's picture resumes
    there, decodable."""
    await camera_teacher(worker, PullRequest(url=camera.url()))
    classroom = Peer(worker, "class-1", Role.classroom)
    errors = DecodeErrors()
    logging.getLogger("aiortc").addHandler(errors)
    try:
        await classroom.connect()
        assert await wait_for(lambda: any(r.frames >= 30 for r in classroom.video("camera")), 30)
        transport = worker.transport("room-1", "camera")
        assert transport is not None
        pull = transport.pulls["high"]
        time.sleep(4.0)  # the loop stalls (a blocking call somewhere): the thread goes on
        assert pull._pending <= QUEUE_FRAMES
        await asyncio.sleep(0.5)
        assert (await status_of(worker)).dropped > 0
        (video,) = classroom.video("camera")
        frames = video.frames
        assert await wait_for(lambda: video.frames >= frames + 30, 20)
        assert errors.count == 0
    finally:
        logging.getLogger("aiortc").removeHandler(errors)
        await classroom.close()


async def test_the_cameras_aac_audio_reaches_the_classroom_as_opus(
    worker: Worker, tmp_path: Path
) -> None:
    with RtspCamera(free_port(), tmp_path / "c.log", audio=True, sub_size=None) as camera:
        await camera_teacher(worker, PullRequest(url=camera.url()))
        classroom = Peer(worker, "class-1", Role.classroom)
        try:
            await classroom.connect()
            assert await wait_for(
                lambda: (
                    any(r.frames >= 50 for r in classroom.audio("camera"))
                    and any(r.frames >= 30 for r in classroom.video("camera"))
                ),
                30,
            ), classroom.received
            (video,) = classroom.video("camera")
            assert video.sizes == {(1280, 720)}
            transport = worker.transport("room-1", "camera")
            assert transport is not None
            assert transport.producers["rtsp-audio"].codec == "opus"
        finally:
            await classroom.close()


async def test_a_camera_without_audio_gives_the_classroom_no_audio_track(
    worker: Worker, camera: RtspCamera
) -> None:
    await camera_teacher(worker, PullRequest(url=camera.url()))
    classroom = Peer(worker, "class-1", Role.classroom)
    try:
        await classroom.connect()
        assert await wait_for(lambda: any(r.frames >= 30 for r in classroom.video("camera")), 30)
        assert classroom.audio("camera") == []
        assert all(m.kind == "video" for t in classroom.tracks_msgs for m in t.tracks)
    finally:
        await classroom.close()
