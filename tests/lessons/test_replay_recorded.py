"""A lesson recorded through the real SFU (`sanke serve`'s app, a real aiortc teacher) appears
in the replay library with its lesson's metadata, and its MP4 is served with HTTP range
requests byte for byte. Two lessons at once: a timetabled 名校 lesson (its session gives
school, teacher, subject, grade; it ends when the room closes) and a room without a session
(its teacher's token gives them; it ends when the teacher leaves, so the library must know
the teacher from before)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from support.clips import load_clip, make_clip
from support.harness import SECRET, Harness
from support.replays import KEY, lesson
from support.rtc_client import RtcClient

from contracts.rooms import Role, RoomKind
from contracts.store import MemoryStore
from lessons.records import RecordedFile, RecordLog
from media.recorder import PARTIAL
from media.worker import Worker
from sanke.app import SERVICE_KEY, create_app
from sanke.settings import Settings
from signaling.tokens import TokenService

LESSON = "famous-a.2026-11-02"
ADHOC = "open-class-1"


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[Harness, MemoryStore, Path]]:
    recordings = tmp_path / "recordings"
    settings = Settings(
        token_secret=SECRET,
        dev=True,
        records_key=KEY,
        recordings_dir=str(recordings),
        host=["127.0.0.1"],
        redis_url=None,
    )
    store = MemoryStore()
    server = TestServer(create_app(settings, store=store), host="127.0.0.1")
    await server.start_server()
    h = Harness(server, store, TokenService(SECRET))
    try:
        yield h, store, recordings
    finally:
        await h.close()
        await server.close()


async def _until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    for _ in range(int(seconds * 10)):
        if found := check():
            return found
        await asyncio.sleep(0.1)
    return check()


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_lesson_recorded_through_the_sfu_is_in_the_library_and_seeks_by_range(
    embedded: tuple[Harness, MemoryStore, Path], tmp_path: Path
) -> None:
    h, store, recordings = embedded
    await lesson(store, LESSON, kind=RoomKind.broadcast, school="sch-a", teacher="wang")
    await h.room(ADHOC, kind=RoomKind.master, name="公开课")
    clip = load_clip(make_clip(tmp_path, "camera.ts", size="640x360", seconds=4), "video")
    wang = RtcClient(
        h.session, h.url("/ws"), h.token(Role.teacher, LESSON, subject="teacher:wang"), clip
    )
    zhang = RtcClient(
        h.session,
        h.url("/ws"),
        h.token(Role.teacher, ADHOC, subject="zhang", school_id="sch-z", classroom_id="z-1"),
        clip,
    )
    try:
        await asyncio.gather(wang.start(), zhang.start())
        partials = lambda: len(list(recordings.rglob(f"*{PARTIAL}"))) == 2  # noqa: E731
        assert await _until(partials), "both lessons are not recorded"
        await asyncio.sleep(3)
        await zhang.close()  # the ad-hoc lesson ends with its teacher leaving
        service = h.app[SERVICE_KEY]
        await service.close_room(LESSON)
        worker = service.media
        assert isinstance(worker, Worker)
        await worker.recordings_finished()
    finally:
        await wang.close()
        await zhang.close()
    admin = {"Authorization": f"Bearer {h.tokens.mint(subject='admin-1', role=Role.admin)}"}

    async def listed() -> list[dict[str, Any]]:
        got = await h.session.get(h.url("/api/v1/replays"), headers=admin)
        assert got.status == 200
        replays: list[dict[str, Any]] = (await got.json())["replays"]
        return replays

    for _ in range(50):  # the ad-hoc part may still be finishing
        if len(await listed()) == 2:
            break
        await asyncio.sleep(0.2)
    by_id = {r["id"]: r for r in await listed()}
    assert set(by_id) == {LESSON, ADHOC}
    timetabled, adhoc = by_id[LESSON], by_id[ADHOC]
    assert (timetabled["kind"], timetabled["school"], timetabled["teacher"]) == (
        "broadcast",
        "sch-a",
        "wang",
    )
    assert (timetabled["subject"], timetabled["grade"], timetabled["date"]) == (
        "math",
        5,
        "2026-11-02",
    )
    assert (timetabled["session_id"], timetabled["classroom"]) == (LESSON, "sch-a-room1")
    assert (adhoc["kind"], adhoc["school"], adhoc["teacher"], adhoc["classroom"]) == (
        "master",
        "sch-z",
        "zhang",
        "z-1",
    )
    assert adhoc["name"] == "公开课" and adhoc["session_id"] is None

    # the teacher of the ad-hoc lesson finds it (by its token's subject), not the other
    teacher = {"Authorization": f"Bearer {h.tokens.mint(subject='zhang', role=Role.teacher)}"}
    got = await h.session.get(h.url("/api/v1/replays"), headers=teacher)
    assert [r["id"] for r in (await got.json())["replays"]] == [ADHOC]

    records = [
        RecordedFile.model_validate(b)
        for line in await RecordLog(store, KEY).raw()
        if (b := json.loads(line)["body"]).get("kind") == "recording"
    ]
    (part,) = timetabled["parts"]
    (record,) = [r for r in records if r.room_id == LESSON]
    assert (part["file"], part["sha256"], part["bytes"]) == (
        record.file,
        record.sha256,
        record.bytes,
    )
    assert part["track"] == "camera" and (part["width"], part["height"]) == (640, 360)
    assert 2.0 < part["duration_seconds"] < 10.0
    data = (recordings / part["file"]).read_bytes()
    assert hashlib.sha256(data).hexdigest() == part["sha256"] and len(data) == part["bytes"]

    url = h.url(f"/api/v1/replays/{LESSON}/parts/1")
    whole = await h.session.get(url, headers=admin)
    assert whole.status == 200 and whole.headers["Content-Type"] == "video/mp4"
    assert whole.headers["Accept-Ranges"] == "bytes"
    assert await whole.read() == data
    for asked, first, last in (
        ("bytes=100-1099", 100, 1099),
        (f"bytes={len(data) - 500}-", len(data) - 500, len(data) - 1),
        ("bytes=-300", len(data) - 300, len(data) - 1),
    ):
        piece = await h.session.get(url, headers={**admin, "Range": asked})
        assert piece.status == 206, asked
        assert piece.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert await piece.read() == data[first : last + 1]
    beyond = await h.session.get(url, headers={**admin, "Range": f"bytes={len(data) + 10}-"})
    # past the end: HTTP's own answer for a range (what a player expects), not a JSON body
    assert beyond.status == 416 and beyond.headers["Content-Range"] == f"bytes */{len(data)}"
    # the play link seeks the same way (a <video> asks ranges of it)
    detail = await (await h.session.get(h.url(f"/api/v1/replays/{LESSON}"), headers=admin)).json()
    link = detail["parts"][0]["url"]
    assert re.fullmatch(rf"/api/v1/replays/{re.escape(LESSON)}/parts/1\?play=[\w.-]+", link)
    piece = await h.session.get(h.url(link), headers={"Range": "bytes=0-99"})
    assert piece.status == 206 and await piece.read() == data[:100]
