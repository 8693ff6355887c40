"""Recording in the embedded server (`sanke serve`): the room's kind decides, the finished file's
SHA-256 goes into the teaching records, and `sanke records verify --recording` tells the
recorded file from a modified one."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from support.clips import load_clip, make_clip
from support.harness import SECRET, Harness
from support.processes import SANKE
from support.rtc_client import RtcClient

from contracts.recording import RecordingFinished
from contracts.rooms import Role, Room, RoomKind
from contracts.store import MemoryStore
from lessons.recordings import LessonRecordings
from lessons.records import RecordedFile, RecordLog
from lessons.repository import SessionRepository
from media.worker import Worker
from sanke.app import SERVICE_KEY, create_app
from sanke.settings import Settings
from signaling.rooms import RoomRepository
from signaling.tokens import TokenService

KEY = "k" * 40


async def test_the_policy_follows_the_room_kind_and_dedicated_rooms_by_setting() -> None:
    store = MemoryStore()
    rooms = RoomRepository(store)
    for kind in RoomKind:
        await rooms.create(Room(id=f"room-{kind.value}", kind=kind))
    records = RecordLog(store, KEY)
    default = LessonRecordings(rooms, SessionRepository(store), records)
    kept = {k.value: await default.should_record(f"room-{k.value}") for k in RoomKind}
    assert kept == {"master": True, "broadcast": True, "dedicated": False}
    assert not await default.should_record("no-such-room")
    settings = Settings(record_kinds="master,broadcast,dedicated")  # type: ignore[arg-type]
    everything = LessonRecordings(
        rooms, SessionRepository(store), records, settings.recorded_kinds()
    )
    assert await everything.should_record("room-dedicated")
    assert Settings().recorded_kinds() == [RoomKind.master, RoomKind.broadcast]
    with pytest.raises(ValueError, match="unknown room kinds"):
        Settings(record_kinds="lecture")  # type: ignore[arg-type]


async def test_a_finished_recording_is_a_record_the_chain_verifies() -> None:
    store = MemoryStore()
    records = RecordLog(store, KEY)
    hooks = LessonRecordings(RoomRepository(store), SessionRepository(store), records)
    await hooks.finished(
        RecordingFinished(
            room_id="room-1",
            participant_id="teacher",
            part=1,
            file="room-1/20261202T030000Z-teacher-part1.mp4",
            sha256="a" * 64,
            bytes=10,
            started_at=1.0,
            ended_at=2.0,
            duration_seconds=1.0,
        )
    )
    (line,) = await records.raw()
    assert '"kind":"recording"' in line
    report = await records.verify()
    assert report.ok and report.records == 1
    # the hash is covered: changing the recorded SHA-256 breaks the chain
    await store.delete("l:records")
    await store.append("l:records", line.replace("a" * 64, "b" * 64))
    assert not (await records.verify()).ok


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_a_broadcast_lesson_in_the_embedded_server_is_recorded_and_verified(
    tmp_path: Path,
) -> None:
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
    app = create_app(settings, store=store)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    h = Harness(server, store, TokenService(SECRET))
    clip = load_clip(make_clip(tmp_path, "camera.ts", size="640x360", seconds=4), "video")
    try:
        await h.room("broadcast-1", kind=RoomKind.broadcast)
        await h.room("dedicated-1", kind=RoomKind.dedicated)
        teachers = [
            RtcClient(h.session, h.url("/ws"), h.token(Role.teacher, room), clip)
            for room in ("broadcast-1", "dedicated-1")
        ]
        for teacher in teachers:
            await teacher.start()
        await asyncio.sleep(6)
        service = app[SERVICE_KEY]
        for room in ("broadcast-1", "dedicated-1"):
            await service.close_room(room)
        worker = service.media
        assert isinstance(worker, Worker)
        await worker.recordings_finished()
        for teacher in teachers:
            await teacher.close()
        lines = await RecordLog(store, KEY).raw()
    finally:
        await h.close()
        await server.close()

    (recorded,) = [RecordedFile.model_validate_json(_body(line)) for line in _recordings(lines)]
    assert recorded.room_id == "broadcast-1"  # 专递 is not kept by default
    assert not list(recordings.glob("dedicated-1*"))
    path = recordings / recorded.file
    assert path.is_file() and recorded.bytes == path.stat().st_size
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(lines) + "\n")

    def verify() -> subprocess.CompletedProcess[str]:
        args = ["--file", str(export), "--key", KEY, "--recording", str(path)]
        return subprocess.run([SANKE, "records", "verify", *args], capture_output=True, text=True)

    good = verify()
    assert good.returncode == 0, good.stdout + good.stderr
    assert "is the recording of record" in good.stdout
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one byte of the media changed
    path.write_bytes(bytes(data))
    bad = verify()
    assert bad.returncode == 1 and "modified" in bad.stdout, bad.stdout


def _recordings(lines: list[str]) -> list[str]:
    return [line for line in lines if '"kind":"recording"' in line]


def _body(line: str) -> str:
    import json

    return json.dumps(json.loads(line)["body"])


def test_an_sfu_node_records_only_where_it_was_given_a_directory(tmp_path: Path) -> None:
    from sanke.recording import worker_settings
    from sanke.sfu_main import _recording

    store = MemoryStore()
    assert _recording(Settings(dev=True), store) is None
    settings = Settings(dev=True, recordings_dir=str(tmp_path), records_key=KEY)
    assert isinstance(_recording(settings, store), LessonRecordings)
    assert worker_settings(settings).recordings_dir == tmp_path
    with pytest.raises(SystemExit):  # it signs into the shared chain: it needs the shared key
        _recording(Settings(recordings_dir=str(tmp_path), redis_url="redis://localhost:1"), store)


async def test_a_part_cut_short_is_checked_against_its_newest_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    from contracts.recording import RecordingCheckpoint
    from sanke.cli import main

    store = MemoryStore()
    records = RecordLog(store, KEY)
    hooks = LessonRecordings(RoomRepository(store), SessionRepository(store), records)
    partial = tmp_path / "20261202T030000Z-teacher-part1.mp4.partial"
    data = bytes(range(256)) * 64  # what the crash left: 16 KiB
    partial.write_bytes(data)
    for covered in (4096, 12288):  # two checkpoints as the file grew
        await hooks.checkpoint(
            RecordingCheckpoint(
                room_id="room-1",
                participant_id="teacher",
                part=1,
                file="room-1/20261202T030000Z-teacher-part1.mp4",
                bytes=covered,
                sha256=hashlib.sha256(data[:covered]).hexdigest(),
            )
        )
    assert (await records.verify()).ok
    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(await records.raw()) + "\n")
    args = ["records", "verify", "--file", str(export), "--key", KEY, "--recording", str(partial)]

    assert main(args) == 0
    assert (
        "its first 12288 of 16384 bytes are the ones checkpoint record 1" in capsys.readouterr().out
    )
    partial.write_bytes(data[:-1] + b"\x00")  # past the newest checkpoint: not covered
    assert main(args) == 0
    capsys.readouterr()
    partial.write_bytes(data[:100] + b"\x00" + data[101:])  # inside it: detected
    assert main(args) == 1
    assert "not the checkpointed ones: modified" in capsys.readouterr().out
    partial.write_bytes(data[:1000])  # shorter than any checkpoint
    assert main(args) == 1
    assert "no checkpoint covers" in capsys.readouterr().out
