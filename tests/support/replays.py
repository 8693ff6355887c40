"""Recorded lessons for the replay library's tests: a lesson session and its room in the store,
and finished parts filed through the real recording hooks (``LessonRecordings.finished``)."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from contracts.recording import RecordedTrack, RecordingFinished
from contracts.rooms import Room, RoomKind
from contracts.store import Store
from lessons.models import LessonSession
from lessons.recordings import LessonRecordings
from lessons.records import RecordLog
from lessons.replay_catalogue import ReplayCatalogue
from lessons.repository import SessionRepository
from lessons.sessions import SHANGHAI
from signaling.rooms import RoomRepository

KEY = "k" * 40
DAY = 86400.0


def hooks(store: Store) -> LessonRecordings:
    return LessonRecordings(
        RoomRepository(store),
        SessionRepository(store),
        RecordLog(store, KEY),
        kinds=list(RoomKind),
        catalogue=ReplayCatalogue(store),
    )


async def lesson(
    store: Store,
    session_id: str,
    *,
    kind: RoomKind = RoomKind.broadcast,
    school: str = "sch-a",
    teacher: str = "wang",
    subject: str = "math",
    grade: int = 5,
    day: str = "2026-11-02",
) -> LessonSession:
    from datetime import datetime

    starts = datetime.fromisoformat(f"{day}T09:00:00").replace(tzinfo=SHANGHAI).timestamp()
    session = LessonSession(
        id=session_id,
        room_id=session_id,
        teacher=teacher,
        master_school=school,
        master_classroom=f"{school}-room1",
        subject=subject,
        grade=grade,
        date=day,
        starts_at=starts,
        ends_at=starts + 2700,
    )
    await SessionRepository(store).put(session)
    await RoomRepository(store).create(Room(id=session_id, kind=kind, name=f"{subject} {grade}"))
    return session


async def part(
    store: Store,
    directory: Path,
    room_id: str,
    *,
    data: bytes = b"not really an mp4",
    track: RecordedTrack = "camera",
    n: int = 1,
    started_at: float | None = None,
    age_days: float = 0.0,
    seconds: float = 60.0,
) -> RecordingFinished:
    """A finished part of ``room_id``'s lesson on disk, told to the hooks as the SFU does."""
    at = started_at if started_at is not None else time.time() - age_days * DAY
    suffix = "-screen" if track == "screen" else ""
    name = f"{room_id}/{int(at)}-teacher-part{n}{suffix}.mp4"
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if age_days:
        os.utime(path, (at + seconds, at + seconds))
    finished = RecordingFinished(
        room_id=room_id,
        participant_id="p_teacher",
        part=n,
        track=track,
        file=name,
        sha256=hashlib.sha256(data).hexdigest(),
        bytes=len(data),
        started_at=at,
        ended_at=at + seconds,
        duration_seconds=seconds,
    )
    await hooks(store).finished(finished)
    return finished
