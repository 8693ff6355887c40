"""An SRT encoder as a lesson's teacher, with real parts: a coordinator registers an SRT
listener (with a passphrase) for the master classroom; while its lesson is open the SFU
listens (a supervised ffmpeg), real FFmpeg calls it as a 录播 host would, and a real aiortc
classroom decodes the teacher at 1280x720; the API never shows the passphrase; deleting the
source stops the pull and its ffmpeg."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from support.processes import free_port
from support.rtc_client import RtcClient
from support.whip_lesson import LESSON, register_source, whip_lesson

from contracts.rooms import Role
from media.worker import Worker
from sanke.app import SRT_KEY

pytestmark = pytest.mark.timeout(90)
PASSPHRASE = "sanke-srt-0123456789"


def caller(port: int, log: Path) -> subprocess.Popen[bytes]:
    args = [
        "ffmpeg", "-hide_banner", "-loglevel", "warning", "-nostdin",
        "-re", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-t", "30",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-bf", "0",
        "-g", "25", "-pix_fmt", "yuv420p", "-an", "-f", "mpegts",
        f"srt://127.0.0.1:{port}?mode=caller&passphrase={PASSPHRASE}",
    ]  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)


def listeners(port: int) -> list[str]:
    found = subprocess.run(["pgrep", "-af", f":{port}[?]mode=listener"], capture_output=True)
    return [line for line in found.stdout.decode().splitlines() if "ffmpeg" in line]


async def until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not {what}")
        await asyncio.sleep(0.2)


async def test_an_srt_encoder_is_the_teacher_of_its_classrooms_lesson(tmp_path: Path) -> None:
    worker = Worker()
    port = free_port()
    async with whip_lesson(media=worker) as lesson:
        url = f"srt://[::]:{port}?mode=listener&passphrase={PASSPHRASE}"
        registered = await register_source(
            lesson.h, lesson.coordinator, kind="srt", srt={"url": url}
        )
        assert registered["_status"] == 201, registered
        source_id = registered["source"]["id"]
        assert PASSPHRASE not in json.dumps(registered)
        assert registered["source"]["srt_url"].endswith("passphrase=***")
        token = lesson.h.tokens.mint(
            subject="class:jd-1-g3", role=Role.classroom, room=LESSON,
            classroom_id="jd-1-g3", school_id="jd-1",
        )  # fmt: skip
        room = RtcClient(lesson.h.session, lesson.h.url("/ws").replace("http", "ws", 1), token)
        await room.start()
        await lesson.h.app[SRT_KEY].look()
        await until(lambda: listeners(port), 10, "the SFU's ffmpeg listening")
        push = caller(port, tmp_path / "caller.log")
        try:
            await until(lambda: room.frames >= 30, 30, "the encoder's picture decoded")
            assert room.last_size == (1280, 720)
            headers = {"Authorization": f"Bearer {lesson.coordinator}"}

            async def connected() -> bool:
                await lesson.h.app[SRT_KEY].look()
                async with lesson.h.session.get(
                    lesson.h.url(f"/api/v1/sources/{source_id}/status"), headers=headers
                ) as reply:
                    status = await reply.json()
                return bool(status["connected"] and status["width"] == 1280)

            await until(connected, 10, "the source's status connected")
            async with lesson.h.session.delete(
                lesson.h.url(f"/api/v1/sources/{source_id}"), headers=headers
            ) as reply:
                assert reply.status == 200
            await lesson.h.app[SRT_KEY].look()
            await until(lambda: not listeners(port), 10, "the SFU's ffmpeg gone")
        finally:
            push.kill()
            push.wait(5)
            await room.close()
    await worker.close()
