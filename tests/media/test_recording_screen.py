"""The teacher's screen share recorded as its own track: a real aiortc teacher publishes its
camera, microphone and an H264 screen share through the SFU; each share becomes a video-only
part of its own (``…-part<n>-screen.mp4``), hashed into the teaching records like the camera's."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCPeerConnection,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from media_peers import Peer, load_clip, prefer, wait_for
from recording_probe import probe, strictly_increasing
from support.clips import Clip, ClipTrack, make_clip

from contracts.recording import RecordingCheckpoint, RecordingFinished
from contracts.rooms import Role, Room, RoomKind
from contracts.store import MemoryStore
from lessons.recordings import LessonRecordings, check_recording
from lessons.records import RecordedFile, RecordLog
from lessons.repository import SessionRepository
from media.recorder import PARTIAL, RecorderSettings
from media.recording_mux import FragmentedMp4Writer
from media.recording_recovery import PART_NAME, recover
from media.recording_room import part_name
from media.worker import Worker, WorkerSettings
from signaling.rooms import RoomRepository

KEY = "k" * 40
SCREEN = (960, 540)  # not the camera's 640x360


class ChainedRecordings(LessonRecordings):
    """The real hooks (a broadcast room is kept, each part a record of the chain), keeping
    what the SFU reported."""

    def __init__(self, store: MemoryStore) -> None:
        super().__init__(RoomRepository(store), SessionRepository(store), RecordLog(store, KEY))
        self.parts: list[RecordingFinished] = []
        self.checkpoints: list[RecordingCheckpoint] = []

    async def checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        self.checkpoints.append(checkpoint)
        await super().checkpoint(checkpoint)

    async def finished(self, recording: RecordingFinished) -> None:
        self.parts.append(recording)
        await super().finished(recording)


async def offer_again(peer: Peer) -> None:
    """The publisher renegotiates its own m-lines (a client offer on the same connection)."""
    async with peer._offer_lock:
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        answer = await peer.worker.offer(
            peer.participant.room_id, peer.id, peer.pc.localDescription.sdp
        )
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


def moov_first(path: Path) -> bool:
    head = path.read_bytes()[:4096]
    moov, mdat = head.find(b"moov"), head.find(b"mdat")
    return moov >= 0 and (mdat < 0 or moov < mdat)


async def recorded_worker(tmp_path: Path) -> tuple[Worker, ChainedRecordings, Path]:
    store = MemoryStore()
    await RoomRepository(store).create(Room(id="room-1", kind=RoomKind.broadcast))
    hooks = ChainedRecordings(store)
    recordings = tmp_path / "recordings"
    worker = Worker(
        WorkerSettings(recordings_dir=recordings, recorder=RecorderSettings(checkpoint_interval=2)),
        recording=hooks,
    )
    return worker, hooks, recordings


def screen_clip(tmp_path: Path) -> Clip:
    size = f"{SCREEN[0]}x{SCREEN[1]}"
    return load_clip(make_clip(tmp_path, "screen.ts", size=size, seconds=6), "video")


async def sharing_teacher(
    worker: Worker, clips: dict[str, Path], tmp_path: Path
) -> tuple[Peer, RTCRtpTransceiver]:
    """A teacher publishing camera, microphone and an H264 screen share (its m-line labelled
    ``screen`` before the offer, as the client does)."""
    teacher = Peer(worker, "teacher", Role.teacher)
    # one transport for every m-line, as browsers do (tests/media/test_screen_share.py)
    teacher.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    teacher.pc.on("track", teacher._on_track)
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["high"], "video"), "video/H264")]
    )
    screen_t = teacher.pc.addTransceiver(
        ClipTrack("video", screen_clip(tmp_path)), direction="sendonly"
    )
    prefer(screen_t, "video/H264")
    await worker.join(teacher.participant, teacher._send)
    await teacher.pc.setLocalDescription(await teacher.pc.createOffer())
    await worker.set_source("room-1", "teacher", str(screen_t.mid), "screen")
    answer = await worker.offer("room-1", "teacher", teacher.pc.localDescription.sdp)
    await teacher.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    teacher._answered.set()
    return teacher, screen_t


def writing_both(worker: Worker) -> Callable[[], bool]:
    """Whether the camera part and a screen part both got their first keyframe."""

    def writing() -> bool:
        router = worker.routers.get("room-1")
        rec = router.recording if router is not None else None
        return bool(
            rec is not None
            and rec.recorder is not None
            and rec.recorder.started_at is not None
            and rec.screen_recorder is not None
            and rec.screen_recorder.started_at is not None
        )

    return writing


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_each_screen_share_is_a_video_only_part_of_its_own_in_the_records(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    worker, hooks, recordings = await recorded_worker(tmp_path)
    teacher: Peer | None = None
    shares: list[float] = []
    try:
        teacher, screen_t = await sharing_teacher(worker, clips, tmp_path)
        transport = worker.transport("room-1", "teacher")
        assert transport is not None
        router = worker.routers["room-1"]
        writing = writing_both(worker)
        assert await wait_for(writing, 20)
        lesson_started = time.monotonic()
        share_started = time.monotonic()
        await asyncio.sleep(4)

        # the share stops (its m-line inactive): its part is finished, the camera's goes on
        screen_t.direction = "inactive"
        await offer_again(teacher)
        shares.append(time.monotonic() - share_started)
        assert not transport.producer_group("video", "screen")
        assert await wait_for(lambda: len(hooks.parts) == 1, 20), hooks.parts
        assert router.recording is not None and router.recording.recorder is not None
        await asyncio.sleep(2)

        # shared again: a new screen part
        screen_t.direction = "sendonly"
        await offer_again(teacher)
        assert await wait_for(writing, 20)
        share_started = time.monotonic()
        await asyncio.sleep(4)

        # the lesson's switch off: the camera part ends and the screen part with it
        await worker.set_recording("room-1", False)
        ended = time.monotonic()
        shares.append(ended - share_started)
        lesson = ended - lesson_started
        assert await wait_for(lambda: len(hooks.parts) == 3, 30), hooks.parts
        await worker.leave("room-1", "teacher")
    finally:
        if teacher is not None:
            await teacher.close()
        await worker.recordings_finished()
        await worker.close()

    assert len(hooks.parts) == 3, hooks.parts  # nothing more when the teacher left
    screens = [p for p in hooks.parts if p.track == "screen"]
    (camera,) = [p for p in hooks.parts if p.track == "camera"]
    assert [p.part for p in screens] == [1, 2], screens
    assert not list(recordings.rglob(f"*{PARTIAL}"))

    for part, shared in zip(screens, shares, strict=True):
        path = recordings / part.file
        assert path.name.endswith("-screen.mp4") and PART_NAME.match(path.name), path
        assert part.faststart and part.audio_frames == 0 and part.dropped_frames == 0
        assert (part.width, part.height) == SCREEN
        found = probe(path)
        assert found.errors == "", found.errors
        assert [s["codec_type"] for s in found.streams] == ["video"]  # video only
        video = found.stream("video")
        assert (video["codec_name"], video["codec_tag_string"]) == ("h264", "avc3")
        assert (video["width"], video["height"]) == SCREEN
        print(f"{part.file}: {found.duration:.2f} s for a {shared:.2f} s share")
        assert abs(found.duration - shared) < 1.5, (found.duration, shared)
        assert strictly_increasing(found.dts_seconds("video"))
        assert moov_first(path)

    # the camera's part is what it was: H264 at its size and AAC, the whole lesson long
    path = recordings / camera.file
    assert camera.part == 1 and not path.name.endswith("-screen.mp4")
    found = probe(path)
    assert found.errors == ""
    assert sorted(s["codec_type"] for s in found.streams) == ["audio", "video"]
    video, audio = found.stream("video"), found.stream("audio")
    assert (video["codec_name"], video["width"], video["height"]) == ("h264", 640, 360)
    assert audio["codec_name"] == "aac"
    assert abs(found.duration - lesson) < 2.0, (found.duration, lesson)
    assert moov_first(path)

    # each part a record of the chain, the screen's saying so; the files check against it
    records = hooks.records
    assert (await records.verify()).ok
    lines = await records.raw()
    files = [json.loads(line)["body"] for line in lines if '"kind":"recording"' in line]
    assert {(f["file"], f.get("track", "camera")) for f in files} == {
        (p.file, p.track) for p in hooks.parts
    }
    assert "track" not in next(f for f in files if f["file"] == camera.file)  # as before
    assert any(c.track == "screen" for c in hooks.checkpoints)
    for part in hooks.parts:
        check = check_recording(lines, recordings / part.file)
        assert check.ok and check.covered_bytes == part.bytes, check
        assert RecordedFile.model_validate(
            next(f for f in files if f["file"] == part.file)
        ).track == (part.track)


def test_a_screen_part_name_is_recovered_as_the_screen_track() -> None:
    screen = Path(part_name("room-1", "teacher-part2", 3, 0.0, "screen")).name
    camera = Path(part_name("room-1", "teacher", 1, 0.0)).name
    assert (screen, camera) == (
        "19700101T000000Z-teacher-part2-part3-screen.mp4",
        "19700101T000000Z-teacher-part1.mp4",
    )
    match = PART_NAME.match(screen)
    assert match is not None and match.groups()[1:] == ("teacher-part2", "3", "-screen")
    match = PART_NAME.match(camera)
    assert match is not None and match.groups()[1:] == ("teacher", "1", None)


def test_a_camera_record_hashes_as_it_did_before_the_track_field() -> None:
    """Chains written before screen shares were recorded still verify: the default track is
    left out of a record's body, so its hash is unchanged."""
    fields = {
        "room_id": "room-1",
        "participant_id": "teacher",
        "part": 1,
        "file": "room-1/x.mp4",
        "sha256": "a" * 64,
        "bytes": 1,
        "started_at": 1.0,
        "ended_at": 2.0,
        "duration_seconds": 1.0,
    }
    assert "track" not in RecordedFile.model_validate(fields).model_dump(mode="json")
    assert RecordedFile.model_validate(fields).track == "camera"
    screen = RecordedFile.model_validate({**fields, "track": "screen"})
    assert screen.model_dump(mode="json")["track"] == "screen"


@pytest.mark.slow
@pytest.mark.timeout(120)
async def test_the_screen_part_ends_when_the_teacher_leaves(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    worker, hooks, recordings = await recorded_worker(tmp_path)
    teacher: Peer | None = None
    try:
        teacher, _ = await sharing_teacher(worker, clips, tmp_path)
        assert await wait_for(writing_both(worker), 20)
        started = time.monotonic()
        await asyncio.sleep(3)
        await worker.leave("room-1", "teacher")  # the room closes with its only participant
        shared = time.monotonic() - started
        await worker.recordings_finished()
    finally:
        if teacher is not None:
            await teacher.close()
        await worker.close()
    assert sorted((p.track, p.part) for p in hooks.parts) == [("camera", 1), ("screen", 1)]
    (screen,) = [p for p in hooks.parts if p.track == "screen"]
    found = probe(recordings / screen.file)
    assert found.errors == "" and [s["codec_type"] for s in found.streams] == ["video"]
    assert abs(found.duration - shared) < 1.5, (found.duration, shared)
    lines = await hooks.records.raw()
    assert check_recording(lines, recordings / screen.file).ok


def test_a_screen_part_a_crash_left_is_recovered_as_the_screen_track(tmp_path: Path) -> None:
    """A video-only working file (what a screen part writes) named as a screen part: the
    recovery finishes it with its index in front and reports it as the screen track."""
    clip = screen_clip(tmp_path)
    partial = tmp_path / "room-1" / ("20261202T030000Z-teacher-part2-screen.mp4" + PARTIAL)
    partial.parent.mkdir()
    first = next(p for p in clip.packets if p.keyframe)
    writer = FragmentedMp4Writer(partial, first.data, *SCREEN, audio=False)
    for packet in clip.packets[:90]:  # 3 s
        writer.video(packet.data, round(packet.pts * clip.time_base * 90_000), packet.keyframe)
    writer.close()
    finished = recover(tmp_path, partial)
    assert finished is not None and finished.recovered
    assert (finished.track, finished.part, finished.participant_id) == ("screen", 2, "teacher")
    final = tmp_path / finished.file
    assert final.name == "20261202T030000Z-teacher-part2-screen.mp4" and not partial.exists()
    found = probe(final)
    assert found.errors == "" and [s["codec_type"] for s in found.streams] == ["video"]
    assert (found.stream("video")["width"], found.stream("video")["height"]) == SCREEN
    assert abs(found.duration - 3.0) < 0.5 and moov_first(final)
