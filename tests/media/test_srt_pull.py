"""An SRT encoder as the teacher, with real parts: real FFmpeg calls the SFU's SRT listener
(media.srt_origin: a supervised ffmpeg remuxing to MPEG-TS, read with PyAV), its H.264 passed
through to a real aiortc classroom that decodes it at 1280x720; the caller goes away: the
pull is reconnecting and its ffmpeg listens again; a new call: the picture is back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from media_peers import Peer, wait_for
from support.processes import free_port

from contracts.media import PullRequest, PullStatus
from contracts.rooms import Participant, Role
from media.worker import Worker

pytestmark = pytest.mark.timeout(90)


def caller(port: int, log: Path) -> subprocess.Popen[bytes]:
    """FFmpeg as a 录播 host pushing SRT: 1280x720 H.264 without B-frames, GOP 1 s, AAC."""
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25",
        "-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
        "-t", "40", "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency",
        "-bf", "0", "-g", "25", "-pix_fmt", "yuv420p", "-b:v", "1500k",
        "-c:a", "aac", "-b:a", "64k",
        "-f", "mpegts", f"srt://127.0.0.1:{port}?mode=caller",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


async def _nothing(event: object) -> None:
    return None


@pytest.fixture
async def worker() -> AsyncIterator[Worker]:
    w = Worker()
    yield w
    await w.close()


async def status(worker: Worker) -> PullStatus:
    (high,) = await worker.pull_status("room-1", "encoder")
    return high


async def test_an_srt_caller_teaches_and_reconnects(worker: Worker, tmp_path: Path) -> None:
    port = free_port()
    teacher = Participant(
        id="encoder", room_id="room-1", subject="source:srt", role=Role.teacher,
        node_id="test", publish_only=True,
    )  # fmt: skip
    await worker.join(teacher, _nothing)
    await worker.pull("room-1", "encoder", PullRequest(url=f"srt://[::]:{port}?mode=listener"))
    classroom = Peer(worker, "class-1", Role.classroom)
    push = caller(port, tmp_path / "caller.log")
    try:
        await classroom.connect()
        assert await wait_for(
            lambda: any(r.frames >= 30 for r in classroom.video("encoder")), 30
        ), (await status(worker), (tmp_path / "caller.log").read_text())
        (video,) = classroom.video("encoder")
        assert video.sizes == {(1280, 720)}
        high = await status(worker)
        assert (high.state, high.codec, high.width, high.height) == ("connected", "h264", 1280, 720)

        push.kill()
        push.wait(5)
        gone = time.monotonic()
        deadline = gone + 20
        while (await status(worker)).state != "reconnecting" and time.monotonic() < deadline:
            await wait_for(lambda: False, 0.2)
        print(f"reconnecting {time.monotonic() - gone:.1f} s after the caller went away")
        assert (await status(worker)).state == "reconnecting"

        push = caller(port, tmp_path / "caller.log")
        frames = video.frames
        assert await wait_for(lambda: video.frames >= frames + 30, 30), await status(worker)
        high = await status(worker)
        assert high.state == "connected" and high.reconnects >= 1
    finally:
        push.kill()
        push.wait(5)
        await classroom.close()
