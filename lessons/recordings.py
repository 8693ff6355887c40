"""Which lesson rooms are recorded, and each finished recording's hash in the teaching records.

The SFU asks (``contracts.recording.RecordingHooks``); the answer comes from the room's kind:
名校网络课堂 (broadcast) and 名师课堂 (master) are kept by default, 专递课堂 (dedicated) when
the deployment says so (``SANKE_RECORD_KINDS``). A finished file's SHA-256 becomes a record
of the chain (``RecordedFile``), so ``sanke records verify --recording FILE`` can tell whether
a file is the one the SFU wrote.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.recording import RecordingCheckpoint, RecordingFinished
from contracts.rooms import RoomKind
from lessons.recording_uploads import RecordingUploads
from lessons.records import (
    Record,
    RecordedCheckpoint,
    RecordedFile,
    RecordingDeleted,
    RecordLog,
)
from lessons.replay_catalogue import ReplayCatalogue
from lessons.repository import SessionRepository
from signaling.rooms import RoomRepository

log = logging.getLogger(__name__)
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
        catalogue: ReplayCatalogue | None = None,
        uploads: RecordingUploads | None = None,
    ) -> None:
        self.rooms = rooms
        self.sessions = sessions
        self.records = records
        self.kinds = frozenset(kinds)
        self.clock = clock
        # The replay library: each finished part is catalogued after its record.
        self.catalogue = catalogue
        # A bucket: each finished part is uploaded, verified, then catalogued (never before).
        self.uploads = uploads

    async def should_record(self, room_id: str) -> bool:
        room = await self.rooms.get(room_id)
        # ``room.recording``: the lesson's switch, off when the teacher or a coordinator
        # stopped it (a room whose media starts again, on this node or another, stays off)
        recorded = room is not None and room.kind in self.kinds and room.recording
        if recorded:
            await self._noting_teachers(room_id)
        return recorded

    async def _noting_teachers(self, room_id: str) -> None:
        if self.catalogue is None:
            return
        try:
            await self.catalogue.note_teachers(room_id)
        except Exception:  # the library's nicety must not stop a recording
            log.exception("replay: the teachers of %s could not be noted", room_id)

    async def checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        body = RecordedCheckpoint.model_validate(checkpoint.model_dump())
        await self.records.append(body, self.clock())
        await self._noting_teachers(checkpoint.room_id)

    async def finished(self, recording: RecordingFinished) -> None:
        session = await self.sessions.get(recording.room_id)
        body = RecordedFile(
            room_id=recording.room_id,
            session_id=session.id if session is not None else None,
            participant_id=recording.participant_id,
            part=recording.part,
            track=recording.track,
            file=recording.file,
            sha256=recording.sha256,
            bytes=recording.bytes,
            started_at=recording.started_at,
            ended_at=recording.ended_at,
            duration_seconds=recording.duration_seconds,
        )
        await self.records.append(body, self.clock())
        if self.uploads is not None:
            await self.uploads.publish(recording)  # a failure keeps the file for a retry
        elif self.catalogue is not None:
            try:
                await self.catalogue.add(recording)
            except Exception:  # in the records already: indexing it again at start finds it
                log.exception("replay: %s could not be catalogued", recording.file)


class RecordingCheck(BaseModel):
    """Whether a file on disk is the recording a record of the chain names."""

    model_config = ConfigDict(extra="forbid")

    ok: bool
    file: str
    record: int | None = Field(default=None, description="the record naming this file")
    covered_bytes: int | None = Field(
        default=None, description="how much of it the record vouches for (a checkpoint: a prefix)"
    )
    problem: str | None = None


PARTIAL = ".partial"


def file_sha256(path: Path, limit: int | None = None) -> str:
    """The SHA-256 of the file, or of its first ``limit`` bytes."""
    digest = hashlib.sha256()
    left = limit
    with path.open("rb") as f:
        while left is None or left > 0:
            chunk = f.read(HASH_CHUNK if left is None else min(HASH_CHUNK, left))
            if not chunk:
                break
            digest.update(chunk)
            if left is not None:
                left -= len(chunk)
    return digest.hexdigest()


def check_recording(lines: list[str], path: Path) -> RecordingCheck:
    """A finished file against the newest record of its SHA-256; a working file a crash left
    (``….mp4.partial``) against its newest checkpoint that it is long enough for. Call it on a
    chain that verified: a record is only as good as the chain."""
    records = _records(lines)
    if path.name.endswith(PARTIAL):
        return _check_partial(records, path)
    named = [
        (r.seq, r.body)
        for r in records
        if isinstance(r.body, RecordedFile) and Path(r.body.file).name == path.name
    ]
    if not named:
        return RecordingCheck(ok=False, file=str(path), problem="no record names this file")
    seq, body = named[-1]
    if body.sha256 != file_sha256(path):
        return RecordingCheck(
            ok=False,
            file=str(path),
            record=seq,
            problem="the file's SHA-256 is not the recorded one: it was modified or replaced",
        )
    return RecordingCheck(ok=True, file=str(path), record=seq, covered_bytes=body.bytes)


def deletion_of(lines: list[str], path: Path) -> tuple[int, RecordingDeleted] | None:
    """The newest record saying a file of this name was deleted (the retention sweep), with
    its sequence number: for a file that is missing, whether the chain accounts for it."""
    named = [
        (r.seq, r.body)
        for r in _records(lines)
        if isinstance(r.body, RecordingDeleted) and Path(r.body.file).name == path.name
    ]
    return named[-1] if named else None


def _check_partial(records: list[Record], path: Path) -> RecordingCheck:
    final = path.name[: -len(PARTIAL)]
    size = path.stat().st_size
    named = [
        (r.seq, r.body)
        for r in records
        if isinstance(r.body, RecordedCheckpoint)
        and Path(r.body.file).name == final
        and r.body.bytes <= size
    ]
    if not named:
        return RecordingCheck(
            ok=False, file=str(path), problem="no checkpoint covers this working file"
        )
    seq, body = named[-1]
    if body.sha256 != file_sha256(path, body.bytes):
        return RecordingCheck(
            ok=False,
            file=str(path),
            record=seq,
            problem=f"its first {body.bytes} bytes are not the checkpointed ones: modified",
        )
    return RecordingCheck(ok=True, file=str(path), record=seq, covered_bytes=body.bytes)


def _records(lines: list[str]) -> list[Record]:
    found = []
    for line in lines:
        try:
            found.append(Record.model_validate_json(line))
        except ValidationError:
            continue  # the chain's verification reports it
    return found
