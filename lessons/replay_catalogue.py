"""The replay library's catalogue: one entry per recorded lesson, its parts in order.

A part is catalogued when it is finished (``LessonRecordings.finished``, the same moment its
SHA-256 goes into the teaching records). The lesson's metadata comes from the lesson session
the room belongs to (a session's room id is its id) and, for a room without a session, from
the room itself. All parts of one lesson — the camera and the screen share, a second part
after a reconnect or an SFU failover on another node — are one entry, keyed by the session
(or the room): the library presents them as one lesson.

In the store (memory or Redis, the same keys):

- ``h:replays``: replay id → ``ReplayLesson`` (the lesson's metadata; written again, the same,
  by each part);
- ``h:replay-parts``: file (relative to the recordings directory, unique) → ``ReplayPart``;
  one field per part, so two nodes finishing parts at once never overwrite each other;
- ``h:replays-published``: replay id → ``Publication`` (who published it for viewers, when).

Listing reads the three hashes whole (three commands): fine for a district's thousands of
recordings; a province's would want a sorted-set index by date.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.recording import RecordedTrack, RecordingFinished
from contracts.rooms import Participant, Role, Room, RoomKind
from contracts.store import Store
from lessons.metrics import RECORDINGS_BYTES
from lessons.models import LessonSession
from lessons.records import Record, RecordedFile
from lessons.repository import SessionRepository
from lessons.sessions import SHANGHAI
from signaling.rooms import RoomRepository

log = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

REPLAYS = "h:replays"
PARTS = "h:replay-parts"
PUBLISHED = "h:replays-published"
# Who a recorded room's teacher is, kept while the room is recorded: a part finishes after
# its teacher left the room (that is what ends it), when the participant is no longer there.
TEACHER_KEY = "kv:replay-teacher:{room}:{participant}"
TEACHER_TTL_SECONDS = 2 * 86400.0
# Where nobody knows the school (a room without a session or a school): its metric label.
NO_SCHOOL = "-"


class ReplayLesson(BaseModel):
    """What the library knows of a recorded lesson, apart from its parts."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(max_length=128, description="the lesson session's id, or the room's")
    room_id: str = Field(max_length=128)
    session_id: str | None = Field(default=None, max_length=128)
    kind: RoomKind
    name: str = Field(default="", max_length=200, description="the room's name")
    school: str | None = Field(default=None, max_length=128, description="the master school")
    classroom: str | None = Field(default=None, max_length=128)
    teacher: str = Field(default="", max_length=128)
    subject: str = Field(default="", max_length=100)
    grade: int | None = None
    date: str = Field(default="", description="YYYY-MM-DD, Asia/Shanghai")
    scheduled_start: float | None = Field(default=None, description="the session's start")


class ReplayPart(BaseModel):
    """One finished file of a recorded lesson."""

    model_config = ConfigDict(extra="forbid")

    replay_id: str = Field(max_length=128)
    track: RecordedTrack
    part: int = Field(ge=1, description="the recorder's number of this part of its track")
    participant_id: str = Field(max_length=64)
    file: str = Field(max_length=512, description="relative to the recordings directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    started_at: float
    ended_at: float
    duration_seconds: float = Field(ge=0)
    width: int | None = None
    height: int | None = None
    recovered: bool = False


class Publication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    published: bool
    by: str = Field(max_length=128)
    at: float


class PartView(ReplayPart):
    n: int = Field(ge=1, description="its place in the lesson's parts (1-based): /parts/{n}")
    url: str = Field(default="", description="where a <video> plays it (a short-lived link)")


class Replay(ReplayLesson):
    """A lesson of the library: its metadata, its parts in order and what they add up to."""

    started_at: float
    ended_at: float
    duration_seconds: float = Field(description="from the first part's start to the last's end")
    bytes: int
    tracks: list[RecordedTrack]
    published: bool
    parts: list[PartView]


class ReplayFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    school: str | None = None
    teacher: str | None = None
    subject: str | None = None
    grade: int | None = None
    kind: RoomKind | None = None
    date_from: str | None = Field(default=None, description="YYYY-MM-DD, inclusive")
    date_to: str | None = Field(default=None, description="YYYY-MM-DD, inclusive")
    published: bool | None = None

    def matches(self, replay: Replay) -> bool:
        if self.school is not None and replay.school != self.school:
            return False
        if self.teacher is not None and replay.teacher != self.teacher:
            return False
        if self.subject is not None and replay.subject != self.subject:
            return False
        if self.grade is not None and replay.grade != self.grade:
            return False
        if self.kind is not None and replay.kind is not self.kind:
            return False
        if self.date_from is not None and replay.date < self.date_from:
            return False
        if self.date_to is not None and replay.date > self.date_to:
            return False
        return self.published is None or replay.published is self.published


def local_day(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, SHANGHAI).date().isoformat()


def assemble(
    lesson: ReplayLesson, parts: Iterable[ReplayPart], publication: Publication | None
) -> Replay | None:
    """The library's view of a lesson; None when no part of it is left."""
    ordered = sorted(parts, key=lambda p: (p.started_at, p.track != "camera", p.part))
    if not ordered:
        return None
    started = min(p.started_at for p in ordered)
    ended = max(p.ended_at for p in ordered)
    tracks: list[RecordedTrack] = sorted({p.track for p in ordered})
    return Replay(
        **lesson.model_dump(),
        started_at=started,
        ended_at=ended,
        duration_seconds=round(max(0.0, ended - started), 3),
        bytes=sum(p.bytes for p in ordered),
        tracks=tracks,
        published=publication is not None and publication.published,
        parts=[PartView(**p.model_dump(), n=i) for i, p in enumerate(ordered, start=1)],
    )


class ReplayCatalogue:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.rooms = RoomRepository(store)
        self.sessions = SessionRepository(store)
        self._schools: set[str] = set()

    # --- writing ----------------------------------------------------------------------
    async def add(self, recording: RecordingFinished) -> ReplayPart | None:
        """Catalogue a finished part (None: its room is gone and no session names it)."""
        lesson = await self._lesson(recording.room_id, recording.participant_id)
        if lesson is None:
            log.warning("replay: %s has no room or session, not catalogued", recording.file)
            return None
        part = ReplayPart(
            replay_id=lesson.id,
            track=recording.track,
            part=recording.part,
            participant_id=recording.participant_id,
            file=recording.file,
            sha256=recording.sha256,
            bytes=recording.bytes,
            started_at=recording.started_at,
            ended_at=recording.ended_at,
            duration_seconds=recording.duration_seconds,
            width=recording.width,
            height=recording.height,
            recovered=recording.recovered,
        )
        if not lesson.date:
            lesson = lesson.model_copy(update={"date": local_day(recording.started_at)})
        existing = await self.lesson(lesson.id)
        if existing is not None and existing.date and existing.date != lesson.date:
            # a room's first part set the day; a part after midnight does not move the lesson
            lesson = lesson.model_copy(update={"date": existing.date})
        await self.store.hset(REPLAYS, lesson.id, lesson.model_dump_json())
        await self.store.hset(PARTS, part.file, part.model_dump_json())
        await self.refresh_metrics()
        return part

    async def note_teachers(self, room_id: str) -> None:
        """Remember who the room's teachers are (their token subjects), for the parts that
        finish after they left."""
        for p in await self.rooms.list_participants(room_id):
            if p.role is Role.teacher:
                key = TEACHER_KEY.format(room=room_id, participant=p.id)
                await self.store.set(key, p.model_dump_json(), TEACHER_TTL_SECONDS)

    async def index_recorded(self, recorded: list[RecordedFile], directory: Path) -> int:
        """Catalogue the finished parts the records name that are on disk and not in the
        catalogue yet (recorded before the library existed, or whose cataloguing failed);
        how many were added."""
        added = 0
        for body in recorded:
            if await self.store.hget(PARTS, body.file) is not None:
                continue
            path = directory / body.file
            if not await asyncio.to_thread(path.is_file):
                continue  # swept, or on another node's disk
            finished = RecordingFinished(
                room_id=body.room_id,
                participant_id=body.participant_id,
                part=body.part,
                track=body.track,
                file=body.file,
                sha256=body.sha256,
                bytes=body.bytes,
                started_at=body.started_at,
                ended_at=body.ended_at,
                duration_seconds=body.duration_seconds,
            )
            if await self.add(finished) is not None:
                added += 1
        return added

    async def remove_file(self, file: str) -> ReplayPart | None:
        """A part's file is gone (the retention sweep): its part leaves the catalogue, and the
        lesson with its last part."""
        raw = await self.store.hget(PARTS, file)
        if raw is None:
            return None
        part = ReplayPart.model_validate_json(raw)
        await self.store.hdel(PARTS, file)
        if not await self.parts_of(part.replay_id):
            await self.store.hdel(REPLAYS, part.replay_id)
            await self.store.hdel(PUBLISHED, part.replay_id)
        return part

    async def set_published(self, replay_id: str, published: bool, by: str, at: float) -> None:
        body = Publication(published=published, by=by, at=at)
        await self.store.hset(PUBLISHED, replay_id, body.model_dump_json())

    # --- reading ----------------------------------------------------------------------
    async def lesson(self, replay_id: str) -> ReplayLesson | None:
        raw = await self.store.hget(REPLAYS, replay_id)
        return ReplayLesson.model_validate_json(raw) if raw is not None else None

    async def part_of_file(self, file: str) -> ReplayPart | None:
        raw = await self.store.hget(PARTS, file)
        return ReplayPart.model_validate_json(raw) if raw is not None else None

    async def parts_of(self, replay_id: str) -> list[ReplayPart]:
        return [p for p in await self._all_parts() if p.replay_id == replay_id]

    async def get(self, replay_id: str) -> Replay | None:
        lesson = await self.lesson(replay_id)
        if lesson is None:
            return None
        raw = await self.store.hget(PUBLISHED, replay_id)
        publication = Publication.model_validate_json(raw) if raw is not None else None
        return assemble(lesson, await self.parts_of(replay_id), publication)

    async def all(self) -> list[Replay]:
        """Every lesson of the library, newest first."""
        lessons = [
            lesson
            for raw in await self.store.hvals(REPLAYS)
            if (lesson := _parse(ReplayLesson, raw)) is not None
        ]
        parts: dict[str, list[ReplayPart]] = defaultdict(list)
        for part in await self._all_parts():
            parts[part.replay_id].append(part)
        publications = {
            rid: pub
            for rid, raw in (await self.store.hgetall(PUBLISHED)).items()
            if (pub := _parse(Publication, raw)) is not None
        }
        found = [
            replay
            for lesson in lessons
            if (replay := assemble(lesson, parts[lesson.id], publications.get(lesson.id)))
            is not None
        ]
        found.sort(key=lambda r: (r.started_at, r.id), reverse=True)
        return found

    async def bytes_by_school(self) -> dict[str, int]:
        lessons = {
            lesson.id: lesson
            for raw in await self.store.hvals(REPLAYS)
            if (lesson := _parse(ReplayLesson, raw)) is not None
        }
        totals: dict[str, int] = defaultdict(int)
        for part in await self._all_parts():
            lesson = lessons.get(part.replay_id)
            school = (lesson.school if lesson is not None else None) or NO_SCHOOL
            totals[school] += part.bytes
        return dict(totals)

    async def refresh_metrics(self) -> None:
        """``sanke_recordings_bytes{school}`` from the catalogue: what every school's finished
        recordings take (a school whose last one went reads 0 until the process restarts)."""
        try:
            totals = await self.bytes_by_school()
        except Exception:  # the store is down: the gauge waits for the next change
            log.exception("replay: the storage metric could not be refreshed")
            return
        for school in self._schools - totals.keys():
            RECORDINGS_BYTES.labels(school=school).set(0)
        for school, total in totals.items():
            RECORDINGS_BYTES.labels(school=school).set(total)
        self._schools |= totals.keys()

    async def _all_parts(self) -> list[ReplayPart]:
        return [
            part
            for raw in await self.store.hvals(PARTS)
            if (part := _parse(ReplayPart, raw)) is not None
        ]

    async def _lesson(self, room_id: str, participant_id: str) -> ReplayLesson | None:
        session = await self.sessions.get(room_id)
        room = await self.rooms.get(room_id)
        if session is not None:
            return _from_session(session, room)
        if room is None:
            return None
        teacher = await self.rooms.get_participant(room_id, participant_id)
        if teacher is None:
            raw = await self.store.get(TEACHER_KEY.format(room=room_id, participant=participant_id))
            teacher = _parse(Participant, raw) if raw is not None else None
        subject = teacher.subject if teacher is not None else None
        return ReplayLesson(
            id=room.id,
            room_id=room.id,
            kind=room.kind,
            name=room.name,
            school=room.school_id or (teacher.school_id if teacher is not None else None),
            classroom=teacher.classroom_id if teacher is not None else None,
            teacher=_teacher_name(subject) if subject is not None else participant_id,
        )


def _from_session(session: LessonSession, room: Room | None) -> ReplayLesson:
    return ReplayLesson(
        id=session.id,
        room_id=session.room_id,
        session_id=session.id,
        kind=room.kind if room is not None else RoomKind.dedicated,
        name=room.name if room is not None else "",
        school=session.master_school or None,
        classroom=session.master_classroom or None,
        teacher=session.teacher,
        subject=session.subject,
        grade=session.grade,
        date=session.date,
        scheduled_start=session.starts_at,
    )


def _teacher_name(subject: str) -> str:
    """A teacher token's subject (``teacher:<id>`` when a session minted it) as the id."""
    return subject.removeprefix("teacher:")


def teacher_matches(subject: str, teacher: str) -> bool:
    return bool(teacher) and _teacher_name(subject) == teacher


def _parse(model: type[M], raw: str) -> M | None:
    try:
        return model.model_validate_json(raw)
    except ValidationError:
        log.warning("replay: skipping a malformed %s in the store", model.__name__)
        return None


def recorded_files(lines: list[str]) -> list[RecordedFile]:
    """The finished parts a records chain names, the newest record of each file."""
    newest: dict[str, RecordedFile] = {}
    for line in lines:
        if '"kind":"recording"' not in line:
            continue  # most records are checkpoints and audits: skip them unparsed
        try:
            body = Record.model_validate_json(line).body
        except ValidationError:
            continue
        if isinstance(body, RecordedFile):
            newest[body.file] = body
    return list(newest.values())
