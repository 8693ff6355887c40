"""An RTMP push as the teacher: real FFmpeg (as OBS or a 录播 host) pushes H.264 + AAC to the
SFU's RTMP server (media.rtmp_server); the video is passed through to a real aiortc
classroom that decodes it at 1280x720, the audio arrives as Opus."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from media_peers import Peer, wait_for
from support.rtmp_push import FfmpegPush, key_sha256

from contracts.media import PullRequest, PullStatus
from contracts.rooms import Participant, Role
from media import amf0
from media.rtmp_chunk import (
    COMMAND_AMF0,
    DATA_AMF0,
    SET_CHUNK_SIZE,
    VIDEO,
    ChunkReader,
    ChunkWriter,
    Message,
)
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


async def test_b_frames_are_refused_naming_the_encoder_setting(
    worker: Worker, server: RtmpServer, tmp_path: Path
) -> None:
    await push_teacher(worker, "key-b")
    push = FfmpegPush(url(server, "key-b"), tmp_path / "ffmpeg.log", bframes=2, audio=False)
    with push:
        status = await wait_state(worker, "refused", 20)
        assert status.state == "refused", status
        assert status.message is not None and "B-frames" in status.message
        assert "bframes=0" in status.message  # the OBS setting to change
        assert await wait_for(push.exited, 10), "the refused push was not cut off"
        assert "B-frames" in push.output()  # FFmpeg prints the server's error status
        transport = worker.transport("room-1", "encoder")
        assert transport is not None
        assert transport.producers["rtsp-high"].frames == 0  # nothing reached the room


async def test_a_wrong_key_is_refused_and_changes_nothing(
    worker: Worker, server: RtmpServer, tmp_path: Path
) -> None:
    await push_teacher(worker, "the-right-key")
    with FfmpegPush(url(server, "a-wrong-key"), tmp_path / "ffmpeg.log", audio=False) as push:
        assert await wait_for(push.exited, 15), "a push with a wrong key was let in"
        assert "no lesson is open for this stream key" in push.output()
    status = await status_of(worker)
    assert (status.state, status.frames) == ("connecting", 0)
    assert not server.sessions


async def test_pulling_the_plug_and_pushing_again_resumes_the_picture(
    worker: Worker, server: RtmpServer, tmp_path: Path
) -> None:
    await push_teacher(worker, "key-plug")
    classroom = Peer(worker, "class-1", Role.classroom)
    try:
        await classroom.connect()
        with FfmpegPush(url(server, "key-plug"), tmp_path / "one.log", audio=False) as push:
            assert await wait_for(lambda: any(r.frames >= 20 for r in classroom.video()), 30)
            push.kill()
            status = await wait_state(worker, "reconnecting", 10)
            assert status.state == "reconnecting", status
        (video,) = classroom.video("encoder")
        frames = video.frames
        with FfmpegPush(url(server, "key-plug"), tmp_path / "two.log", audio=False):
            assert (await wait_state(worker, "connected", 15)).state == "connected"
            assert await wait_for(lambda: video.frames >= frames + 25, 20), video
        assert video.last_size == (1280, 720)
        assert (await status_of(worker)).reconnects == 1
    finally:
        await classroom.close()


def _handshake(sock: socket.socket) -> None:
    sock.sendall(b"\x03" + bytes(1536))
    received = b""
    while len(received) < 1 + 2 * 1536:
        chunk = sock.recv(8192)
        assert chunk, "the server closed during the handshake"
        received += chunk
    sock.sendall(received[1:1537])  # C2: S1 echoed


def _closed_by_server(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return True
    except (TimeoutError, OSError) as exc:
        return not isinstance(exc, TimeoutError)


async def test_bad_publishers_are_cut_off_and_another_goes_on(
    worker: Worker, tmp_path: Path
) -> None:
    """Garbage, a handshake that stops halfway and a chunk announcing a ~16 MB message: each
    connection is closed by the server, and a good publisher's picture goes on."""
    settings = RtmpSettings(port=0, hosts=["127.0.0.1"], handshake_timeout=2.0)
    server = RtmpServer(worker.pushes, settings)
    await server.start()
    await push_teacher(worker, "good-key")
    classroom = Peer(worker, "class-1", Role.classroom)
    bad: list[socket.socket] = []
    try:
        await classroom.connect()
        with FfmpegPush(url(server, "good-key"), tmp_path / "ffmpeg.log", audio=False):
            assert await wait_for(lambda: any(r.frames >= 10 for r in classroom.video()), 30)
            (video,) = classroom.video("encoder")
            # connected now: the handshake timeout (2 s) runs from here
            bad += [socket.create_connection(("127.0.0.1", server.port)) for _ in range(3)]
            garbage, truncated, oversized = bad
            garbage.sendall(b"GET / HTTP/1.1\r\n\r\n" + bytes(range(256)) * 64)
            truncated.sendall(b"\x03" + bytes(700))
            await asyncio.to_thread(_handshake, oversized)
            # a full chunk header announcing a ~16 MB message on chunk stream 3
            header = bytes([0x03]) + bytes(3) + (0xFFFFF0).to_bytes(3, "big")
            oversized.sendall(header + bytes([20]) + bytes(4) + bytes(128))
            closed = await asyncio.gather(
                *(asyncio.to_thread(_closed_by_server, sock, 6.0) for sock in bad)
            )
            assert closed == [True, True, True]
            frames = video.frames
            assert await wait_for(lambda: video.frames >= frames + 25, 10), video
            assert (await status_of(worker)).state == "connected"
            assert len(server.sessions) == 1
    finally:
        for sock in bad:
            sock.close()
        await classroom.close()
        await server.stop()


async def test_two_pushes_at_once_each_to_its_room(
    worker: Worker, server: RtmpServer, tmp_path: Path
) -> None:
    await push_teacher(worker, "key-a", "room-a")
    await push_teacher(worker, "key-b", "room-b")
    a = Peer(worker, "class-a", Role.classroom, room="room-a")
    b = Peer(worker, "class-b", Role.classroom, room="room-b")
    try:
        await a.connect()
        await b.connect()
        with (
            FfmpegPush(url(server, "key-a"), tmp_path / "a.log", audio=False),
            FfmpegPush(url(server, "key-b", "::1"), tmp_path / "b.log", size="640x360"),
        ):
            assert await wait_for(
                lambda: (
                    any(r.frames >= 20 for r in a.video())
                    and any(r.frames >= 20 for r in b.video())
                ),
                30,
            )
            assert a.video()[0].sizes == {(1280, 720)}
            assert b.video()[0].sizes == {(640, 360)}
    finally:
        await a.close()
        await b.close()


class RawPublisher:
    """A minimal RTMP publisher (for what FFmpeg will not send: H.265 in FLV, a flood)."""

    def __init__(self, port: int) -> None:
        self.port = port

    async def publish(self, key: str) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(b"\x03" + bytes(1536))
        s0s1s2 = await self.reader.readexactly(1 + 2 * 1536)
        self.writer.write(s0s1s2[1:1537])
        self.out = ChunkWriter(self.writer)
        self.chunks = ChunkReader(self.reader, max_message=1 << 20, idle_timeout=5)
        self.command("connect", 1.0, {"app": "live", "tcUrl": "rtmp://127.0.0.1/live"})
        self.command("createStream", 2.0, None)
        self.command("publish", 3.0, None, key, "live", stream=1)
        await self.writer.drain()
        while True:
            message = await self.chunks.message()
            if message.type_id == SET_CHUNK_SIZE:
                self.chunks.set_chunk_size(int.from_bytes(message.body[:4], "big"))
            if message.type_id == COMMAND_AMF0 and "NetStream.Publish" in str(
                amf0.decode_all(message.body)
            ):
                return

    def command(self, name: str, *values: amf0.AmfValue, stream: int = 0) -> None:
        self.out.write(3, Message(COMMAND_AMF0, stream, 0, amf0.encode(name, *values)))

    def send(self, type_id: int, body: bytes, timestamp: int = 0) -> None:
        self.out.write(6, Message(type_id, 1, timestamp, body))

    async def closed_by_server(self, timeout: float) -> bool:
        try:
            async with asyncio.timeout(timeout):
                while await self.reader.read(65536):
                    pass
            return True
        except TimeoutError:
            return False
        except ConnectionError:
            return True


async def test_h265_in_flv_is_refused_naming_the_setting(
    worker: Worker, server: RtmpServer
) -> None:
    await push_teacher(worker, "key-hevc")
    publisher = RawPublisher(server.port)
    await publisher.publish("key-hevc")
    assert (await status_of(worker)).state == "connected"
    publisher.send(VIDEO, bytes([0x1C, 0, 0, 0, 0]) + bytes(64))  # keyframe, codec id 12
    assert await publisher.closed_by_server(5)
    status = await status_of(worker)
    assert status.state == "refused", status
    assert status.message is not None and "H.265" in status.message and "H.264" in status.message


async def test_a_publisher_over_its_bitrate_cap_is_cut_off(worker: Worker) -> None:
    settings = RtmpSettings(port=0, hosts=["127.0.0.1"], max_bitrate_bps=400_000)
    server = RtmpServer(worker.pushes, settings)
    await server.start()
    try:
        await push_teacher(worker, "key-flood")
        publisher = RawPublisher(server.port)
        await publisher.publish("key-flood")
        for i in range(600):  # ~2.4 MB at once: 50 kB/s with 200 kB of burst allowed
            publisher.send(DATA_AMF0, bytes(4000), i)
            if i % 50 == 0:
                with contextlib.suppress(ConnectionError):
                    await publisher.writer.drain()
        assert await publisher.closed_by_server(5)
        status = await status_of(worker)
        assert status.state == "reconnecting" and status.message is not None
        assert "400 kbps" in status.message
    finally:
        await server.stop()
