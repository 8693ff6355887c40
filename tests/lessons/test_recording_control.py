"""Per-lesson recording control in the embedded server (`sanke serve`): the teacher stops and
restarts a lesson's recording over the WebSocket, a coordinator over HTTP; each stop finishes
the part being written (faststart, hashed into the records), each start opens a new part;
everyone in the room is told; a classroom may not, a room whose kind is not recorded cannot."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from support.clips import load_clip, make_clip
from support.harness import SECRET, Client, Harness, running_app
from support.rtc_client import RtcClient

from contracts.rooms import Role, RoomKind
from contracts.store import MemoryStore
from lessons.records import RecordedFile, RecordLog
from media.recorder import PARTIAL
from media.worker import Worker
from sanke.app import SERVICE_KEY, create_app
from sanke.settings import Settings
from signaling.tokens import TokenService

KEY = "k" * 40


async def _until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    for _ in range(int(seconds * 10)):
        if found := check():
            return found
        await asyncio.sleep(0.1)
    return check()


async def _records_until(store: MemoryStore, check: Callable[[list[dict[str, Any]]], Any]) -> Any:
    bodies: list[dict[str, Any]] = []
    for _ in range(300):
        bodies = [json.loads(line)["body"] for line in await RecordLog(store, KEY).raw()]
        if found := check(bodies):
            return found
        await asyncio.sleep(0.1)
    raise AssertionError(f"not in the records: {bodies}")


def _parts(bodies: list[dict[str, Any]]) -> list[RecordedFile]:
    return [RecordedFile.model_validate(b) for b in bodies if b["kind"] == "recording"]


def _audits(bodies: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for b in bodies if b["kind"] == "audit" and b["action"].startswith("recording.")]


@pytest.fixture
async def embedded(tmp_path: Path) -> AsyncIterator[tuple[Harness, MemoryStore, Path]]:
    recordings = tmp_path / "recordings"
    settings = Settings(
        token_secret=SECRET,
        dev=True,
        records_key=KEY,
        recordings_dir=str(recordings),
        host=["127.0.0.1"],
        redis_url=None,  # embedded, also where `make test` sets REDIS_URL
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


def _coordinator(h: Harness) -> dict[str, str]:
    token = h.tokens.mint(subject="coord-1", role=Role.coordinator, room=None)
    return {"Authorization": f"Bearer {token}"}


async def _put(h: Harness, room: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    data = body if isinstance(body, str) else json.dumps(body)
    reply = await h.session.put(
        h.url(f"/api/v1/rooms/{room}/recording"),
        data=data,
        headers={**headers, "Content-Type": "application/json"},
    )
    return reply.status, await reply.json()


def _playable_faststart(path: Path) -> None:
    probe = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "json", str(path)],
        capture_output=True,
        text=True,
    )
    assert probe.returncode == 0 and probe.stderr == "", probe.stderr
    assert float(json.loads(probe.stdout)["format"]["duration"]) > 1.0
    head = path.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head


@pytest.mark.slow
@pytest.mark.timeout(150)
async def test_the_teacher_and_a_coordinator_stop_and_restart_a_lessons_recording(
    embedded: tuple[Harness, MemoryStore, Path], tmp_path: Path
) -> None:
    h, store, recordings = embedded
    clip = load_clip(make_clip(tmp_path, "camera.ts", size="640x360", seconds=4), "video")
    await h.room("famous-1", kind=RoomKind.broadcast)
    classroom = await h.joined(Role.classroom, "famous-1")
    # right after joined: the lesson is recorded (the room's kind is)
    assert await classroom.recv() == {"type": "recording", "on": True, "enabled": True}
    teacher = RtcClient(
        h.session, h.url("/ws"), h.token(Role.teacher, "famous-1", subject="teacher-1"), clip
    )
    coordinator = _coordinator(h)
    partials = lambda: sorted(recordings.rglob(f"*{PARTIAL}"))  # noqa: E731
    try:
        await teacher.start()
        assert {"type": "recording", "on": True, "enabled": True} in teacher.inbox
        assert await _until(partials), "recording never started"
        await asyncio.sleep(3)

        # the teacher stops it: part 1 is finished, remuxed and hashed, the room is told
        await teacher._send({"type": "set_recording", "on": False})
        await classroom.expect("recording", on=False, enabled=True)
        (part1,) = await _records_until(store, _parts)
        assert part1.part == 1 and part1.room_id == "famous-1"
        _playable_faststart(recordings / part1.file)
        assert not partials()
        await asyncio.sleep(1.5)
        assert not partials()  # stopped means stopped: no new part while the teacher sends

        # a classroom that joins now sees it is not recorded
        late = await h.joined(Role.classroom, "famous-1")
        assert await late.recv() == {"type": "recording", "on": False, "enabled": True}

        # the teacher restarts it: a second part
        await teacher._send({"type": "set_recording", "on": True})
        await classroom.expect("recording", on=True, enabled=True)
        assert await _until(partials), "no second part"
        await asyncio.sleep(3)

        # a coordinator stops it over HTTP: part 2 finished
        status, reply = await _put(h, "famous-1", {"on": False}, coordinator)
        assert (status, reply) == (200, {"room_id": "famous-1", "on": False, "enabled": True})
        await classroom.expect("recording", on=False, enabled=True)
        parts = await _records_until(store, lambda b: len(_parts(b)) == 2 and _parts(b))
        assert [p.part for p in parts] == [1, 2]
        _playable_faststart(recordings / parts[1].file)
        # stopping what is stopped changes nothing and is no audit entry
        assert await _put(h, "famous-1", {"on": False}, coordinator) == (200, reply)
        got = await h.session.get(h.url("/api/v1/rooms/famous-1/recording"), headers=coordinator)
        assert await got.json() == reply

        # and starts it again: part 3, finished when the room closes
        status, reply = await _put(h, "famous-1", {"on": True}, coordinator)
        assert status == 200 and reply["on"] is True
        assert await _until(partials), "no third part"
        await asyncio.sleep(2.5)
        service = h.app[SERVICE_KEY]
        await service.close_room("famous-1")
        worker = service.media
        assert isinstance(worker, Worker)
        await worker.recordings_finished()
    finally:
        await teacher.close()
    bodies = [json.loads(line)["body"] for line in await RecordLog(store, KEY).raw()]
    parts = _parts(bodies)
    assert [p.part for p in parts] == [1, 2, 3], parts
    assert len({p.file for p in parts}) == 3
    for part in parts:
        _playable_faststart(recordings / part.file)
    assert not list(recordings.rglob(f"*{PARTIAL}"))
    who = [(a["action"], a["actor"], a["actor_role"], a["target"]) for a in _audits(bodies)]
    assert who == [
        ("recording.stopped", "teacher-1", "teacher", "famous-1"),
        ("recording.started", "teacher-1", "teacher", "famous-1"),
        ("recording.stopped", "coord-1", "coordinator", "famous-1"),
        ("recording.started", "coord-1", "coordinator", "famous-1"),
    ]
    # each record is part of the chain the records verify
    assert (await RecordLog(store, KEY).verify()).ok


async def _error(client: Client, message: dict[str, Any]) -> dict[str, Any]:
    await client.send(message)
    return await client.expect("error")


async def test_a_classroom_may_not_and_a_dedicated_room_cannot_switch_recording(
    embedded: tuple[Harness, MemoryStore, Path],
) -> None:
    h, store, _ = embedded
    await h.room("famous-1", kind=RoomKind.broadcast)
    await h.room("dedicated-1", kind=RoomKind.dedicated)
    teacher = await h.joined(Role.teacher, "famous-1")
    classroom = await h.joined(Role.classroom, "famous-1")
    await teacher.silent(0.3)

    refused = await _error(classroom, {"type": "set_recording", "on": False, "rid": "r1"})
    assert refused["code"] == "forbidden" and refused["rid"] == "r1"
    assert await teacher.silent(0.3) == []  # nobody is told anything: nothing changed
    room = await h.rooms.get("famous-1")
    assert room is not None and room.recording

    # a 专递 room is not recorded by default: its teacher gets recording_unavailable
    dedicated = await h.joined(Role.teacher, "dedicated-1")
    assert await dedicated.silent(0.3) == []  # no recording status: never recorded
    unavailable = await _error(dedicated, {"type": "set_recording", "on": False})
    assert unavailable["code"] == "recording_unavailable"
    coordinator = _coordinator(h)
    status, body = await _put(h, "dedicated-1", {"on": False}, coordinator)
    assert status == 409 and body["error"]["code"] == "recording_unavailable"
    room = await h.rooms.get("dedicated-1")
    assert room is not None and room.recording  # unchanged

    # malformed messages and bodies: a clear error, nothing changes
    bad = await _error(teacher, {"type": "set_recording"})
    assert bad["code"] == "invalid_message" and "on" in bad["message"]
    bad = await _error(teacher, {"type": "set_recording", "on": "maybe"})
    assert bad["code"] == "invalid_message"
    for body_sent in ({}, {"on": "maybe"}, {"on": True, "extra": 1}, "not json", "[1]"):
        status, body = await _put(h, "famous-1", body_sent, coordinator)
        assert 400 <= status < 500 and body["error"]["code"], (body_sent, status, body)
    status, body = await _put(h, "no-such-room", {"on": False}, coordinator)
    assert status == 404 and body["error"]["code"] == "room_not_found"
    status, body = await _put(h, "famous-1", {"on": False}, {})
    assert status == 401
    teacher_token = {"Authorization": f"Bearer {h.token(Role.teacher, 'famous-1')}"}
    status, body = await _put(h, "famous-1", {"on": False}, teacher_token)
    assert status == 403 and body["error"]["code"] == "forbidden"
    room = await h.rooms.get("famous-1")
    assert room is not None and room.recording
    assert await teacher.silent(0.3) == []
    lines = await RecordLog(store, KEY).raw()
    assert not _audits([json.loads(line)["body"] for line in lines])

    # a closed room's recording cannot be switched any more
    await h.app[SERVICE_KEY].close_room("famous-1")
    status, body = await _put(h, "famous-1", {"on": False}, coordinator)
    assert status == 410 and body["error"]["code"] == "room_closed"


async def test_a_server_that_records_nothing_answers_recording_unavailable() -> None:
    async with running_app() as h:  # no media plane: nothing records here
        await h.room("famous-1", kind=RoomKind.broadcast)
        teacher = await h.joined(Role.teacher, "famous-1")
        assert await teacher.silent(0.3) == []
        refused = await _error(teacher, {"type": "set_recording", "on": False})
        assert refused["code"] == "recording_unavailable"
        status, body = await _put(h, "famous-1", {"on": True}, _coordinator(h))
        assert status == 409 and body["error"]["code"] == "recording_unavailable"
        got = await h.session.get(
            h.url("/api/v1/rooms/famous-1/recording"), headers=_coordinator(h)
        )
        assert await got.json() == {"room_id": "famous-1", "on": False, "enabled": False}


async def test_a_stopped_lesson_stays_stopped_when_its_media_starts_again() -> None:
    """The policy the SFU asks when a room's media starts (again, or on another node after a
    failover) reads the room's switch."""
    from contracts.rooms import Room
    from lessons.recordings import LessonRecordings
    from lessons.repository import SessionRepository
    from signaling.rooms import RoomRepository

    store = MemoryStore()
    rooms = RoomRepository(store)
    await rooms.create(Room(id="on-1", kind=RoomKind.broadcast))
    await rooms.create(Room(id="off-1", kind=RoomKind.broadcast, recording=False))
    hooks = LessonRecordings(rooms, SessionRepository(store), RecordLog(store, KEY))
    assert await hooks.should_record("on-1")
    assert not await hooks.should_record("off-1")
