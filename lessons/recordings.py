"""Which lesson rooms are recorded, and each finished recording's hash in the teaching records.

The SFU asks (``contracts.recording.RecordingHooks``); the answer comes from the room's kind:
名校网络课堂 (broadcast) and 名师课堂 (master) are kept by default, 专递课堂 (dedicated) when
the deployment says so (``SANKE_RECORD_KINDS``). A finished file's SHA-256 becomes a record
of the chain (``RecordedFile``), so ``sanke records verify --recording FILE`` can tell whether
a file is the one the SFU wrote.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.recording import RecordingFinished
from contracts.rooms import RoomKind
from lessons.records import Record, RecordedFile, RecordLog
from lessons.repository import SessionRepository
from signaling.rooms import RoomRepository

HASH_CHUNK = 1 << 20
DEFAULT_RECORDED_KINDS = frozenset({RoomKind.master, RoomKind.broadcast})


class LessonRecordings:
    """The recording hooks of a process that hosts an SFU worker."""

    def __init__(
        self,
        rooms: RoomRepository,
        sessions: SessionRepository,
        records: RecordLog,
        kinds: Iterable[RoomKind] = DEFAULT_RECORDED_KINDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rooms = rooms
        self.sessions = sessions
        self.records = records
        self.kinds = frozenset(kinds)
        self.clock = clock

    async def should_record(self, room_id: str) -> bool:
        room = await self.rooms.get(room_id)
        return room is not None and room.kind in self.kinds

    async def finished(self, recording: RecordingFinished) -> None:
        session = await self.sessions.get(recording.room_id)
        body = RecordedFile(
            room_id=recording.room_id,
            session_id=session.id if session is not None else None,
            participant_id=recording.participant_id,
            part=recording.part,
            file=recording.file,
            sha256=recording.sha256,
            bytes=recording.bytes,
            started_at=recording.started_at,
            ended_at=recording.ended_at,
            duration_seconds=recording.duration_seconds,
        )
        await self.records.append(body, self.clock())


class RecordingCheck(BaseModel):
    """Whether a file on disk is the recording a record of the chain names."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    file: str
    record: int | None = Field(default=None, description="the record naming this file")
    problem: str | None = None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_recording(lines: list[str], path: Path) -> RecordingCheck:
    """Compare a file's SHA-256 with the newest record that names its file. Call it on a chain
    that verified: a record is only as good as the chain."""
    named: Record | None = None
    for line in lines:
        try:
            record = Record.model_validate_json(line)
        except ValidationError:
            continue  # the chain's verification reports it
        body = record.body
        if isinstance(body, RecordedFile) and Path(body.file).name == path.name:
            named = record
    if named is None or not isinstance(named.body, RecordedFile):
        return RecordingCheck(ok=False, file=str(path), problem="no record names this file")
    if named.body.sha256 != file_sha256(path):
        return RecordingCheck(
            ok=False,
            file=str(path),
            record=named.seq,
            problem="the file's SHA-256 is not the recorded one: it was modified or replaced",
        )
    return RecordingCheck(ok=True, file=str(path), record=named.seq)
