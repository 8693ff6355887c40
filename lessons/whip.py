"""A WHIP publish as the teacher of the lesson its master classroom has open now.

The encoder is a room participant like a browser teacher (``RoomService.join``, so
attendance, the lesson's "live" state and every classroom see it), marked ``publish_only``:
the SFU forwards it nothing, since an encoder cannot answer a renegotiation. Its offer goes
to the media plane like a page's (``MediaPlane.offer``), so it becomes a Producer on the
room's Router, local or on the SFU node hosting the room.

``WhipPeer`` stands where a WebSocket connection stands for a page: the room hub delivers
it the room's messages (it keeps only its own quality report, as the source's status) and
terminates it when the room closes, the teacher console kicks it, or the same source
publishes again; ``signaling.rights`` ends it when the source is deleted.

A publish's session is kept in the store (``h:whip-sessions``: source id → WhipSession; one
publish per source at a time, so it is bounded by the sources), so that a DELETE or PATCH
reaching another signaling process than the POST finds it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable, Coroutine
from typing import Any

from pydantic import BaseModel, ConfigDict

from contracts.errors import ErrorCode
from contracts.protocol import Quality, ServerMessage
from contracts.rooms import Participant, Role, RoomState
from lessons.metrics import INGEST_PUBLISHING
from lessons.models import LessonSession, SessionState
from lessons.repository import SessionRepository
from lessons.sessions import local_date
from lessons.sources import Source, SourceLive, SourceRegistry, source_subject
from signaling.rooms import RoomRepository
from signaling.service import RoomService
from signaling.tokens import Claims

log = logging.getLogger(__name__)

WHIP_SESSIONS = "h:whip-sessions"
# Lessons open minutes before they start: a lesson that starts just after midnight is open
# on the evening before (its date is the next day).
LOOKAHEAD_SECONDS = 6 * 3600
# The SFU reports every publisher's quality every 2 s while its media connection lives; a
# publish without a report for this long lost its connection (the encoder went away
# without a DELETE, its ICE consent expired) and leaves the room.
SILENCE_SECONDS = 20.0
B_FRAMES = (
    "the encoder sends H.264 B-frames, which classrooms play out of order (stutter): turn "
    "them off (OBS x264: Tune zerolatency or x264 options bframes=0; NVENC/QuickSync: Max "
    "B-frames 0; a hardware encoder: B-frames / GOP structure IP only)"
)


class WhipSession(BaseModel):
    """One publish: its resource URL's id and where it sits."""

    model_config = ConfigDict(extra="forbid")

    id: str
    source_id: str
    lesson_id: str
    room_id: str
    participant_id: str
    etag: str
    # the client's ICE credentials: a PATCH with others is an ICE restart
    ice_ufrag: str | None = None
    created_at: float


class LessonLookup(BaseModel):
    """The source's lesson open now, or when its next one opens (today or tonight)."""

    open: LessonSession | None = None
    next_opens_at: float | None = None


async def open_lesson(
    sessions: SessionRepository, rooms: RoomRepository, source: Source, now: float
) -> LessonLookup:
    """The lesson of the source's master classroom whose room is open now, if one is: the
    room the teacher console's token names (``lessons.api.session_tokens``)."""
    days = sorted({local_date(now).isoformat(), local_date(now + LOOKAHEAD_SECONDS).isoformat()})
    candidates = [s for day in days for s in await sessions.list_on(day)]
    found = LessonLookup()
    for session in sorted(candidates, key=lambda s: s.starts_at):
        if (session.master_school, session.master_classroom) != (source.school, source.classroom):
            continue
        if session.state is SessionState.cancelled or session.recorded:
            continue
        if session.opens_at > now:
            if found.next_opens_at is None:
                found.next_opens_at = session.opens_at
            continue
        if now >= session.closes_at:
            continue
        room = await rooms.get(session.room_id)
        if room is not None and room.state is RoomState.open:
            found.open = session
            return found
    return found


def source_claims(source: Source, lesson: LessonSession, now: float) -> Claims:
    """What a teacher console's token for this lesson carries, for the source (no token is
    minted: the source's own bearer token was checked)."""
    return Claims(
        sub=source_subject(source.id),
        role=Role.teacher,
        room=lesson.room_id,
        classroom_id=lesson.master_classroom or None,
        school_id=lesson.master_school or None,
        name=lesson.teacher or source.name,
        nbf=int(lesson.opens_at),
        exp=int(lesson.closes_at),
        iat=int(now),
    )


class WhipSessions:
    def __init__(self, registry: SourceRegistry) -> None:
        self.store = registry.store

    async def put(self, session: WhipSession) -> None:
        await self.store.hset(WHIP_SESSIONS, session.source_id, session.model_dump_json())

    async def get(self, source_id: str) -> WhipSession | None:
        raw = await self.store.hget(WHIP_SESSIONS, source_id)
        return WhipSession.model_validate_json(raw) if raw else None

    async def discard(self, source_id: str, participant_id: str) -> None:
        """Forget the source's session if it is still the publish of ``participant_id`` (a
        newer publish of the same source replaced it and must stay)."""
        current = await self.get(source_id)
        if current is not None and current.participant_id == participant_id:
            await self.store.hdel(WHIP_SESSIONS, source_id)


def new_session_id() -> str:
    return secrets.token_urlsafe(18)


class WhipPeer:
    """The room hub's and the rights' view of one publish (``LocalPeer`` and ``Holder``)."""

    def __init__(
        self,
        service: RoomService,
        registry: SourceRegistry,
        sessions: WhipSessions,
        source: Source,
        issued_at: int,
        silence_seconds: float = SILENCE_SECONDS,
        on_end: Callable[[], None] = lambda: None,
    ) -> None:
        self.service = service
        self.registry = registry
        self.sessions = sessions
        self.source = source
        self.issued_at = issued_at
        self.participant_id = ""
        self.role = Role.teacher
        self.participant: Participant | None = None
        self.since = time.time()
        self.silence_seconds = silence_seconds
        self._on_end = on_end
        self._heard = time.monotonic()
        self.ended = asyncio.Event()
        self._closing = False
        self._status_write: asyncio.Task[None] | None = None
        self._told_b_frames = False
        self._tasks: set[asyncio.Task[None]] = set()

    # --- LocalPeer -----------------------------------------------------------
    def deliver(self, message: ServerMessage) -> None:
        # An encoder reads nothing: only its own quality report is kept, as its status.
        if not isinstance(message, Quality) or message.participant_id != self.participant_id:
            return
        self._heard = time.monotonic()
        if self._closing or (self._status_write is not None and not self._status_write.done()):
            return  # one status write at a time; the next sample comes in 2 s
        self._status_write = self._spawn(self._write_status(message))

    async def terminate(self, message: ServerMessage | None, close_code: int) -> None:
        self.end()

    # --- Holder (signaling.rights) ---------------------------------------------
    async def end_right(self, code: ErrorCode, message: str, close_code: int) -> None:
        self.end()

    # --- lifecycle -------------------------------------------------------------
    def joined(self, participant: Participant) -> None:
        self.participant = participant
        self.participant_id = participant.id
        self._heard = time.monotonic()
        INGEST_PUBLISHING.labels(self.source.kind.value, self.source.school).inc()
        self._spawn(self._watch())

    async def _watch(self) -> None:
        while not self._closing:
            await asyncio.sleep(self.silence_seconds / 4)
            if time.monotonic() - self._heard > self.silence_seconds:
                log.info("WHIP source %s: no media reports, ending its publish", self.source.id)
                self.end()

    def end(self) -> None:
        """Leave the room and forget the publish (idempotent; in a task of its own, since the
        room hub's pump may be the caller and the cleanup detaches from that pump)."""
        if self._closing:
            return
        self._closing = True
        self._spawn(self._cleanup())

    async def _cleanup(self) -> None:
        participant = self.participant
        if participant is not None:
            INGEST_PUBLISHING.labels(self.source.kind.value, self.source.school).dec()
        try:
            if participant is not None:
                await self.service.remove(participant, "left", kick=False)
                await self.service.hub.detach(participant.room_id, participant.id)
                await self.sessions.discard(self.source.id, participant.id)
                if self._status_write is not None:  # it would write "connected" back
                    await asyncio.wait([self._status_write])
                await self.registry.clear_live(self.source.id, participant.id)
        except Exception:
            log.exception("ending the WHIP publish of source %s failed", self.source.id)
        finally:
            self.service.rights.release(source_subject(self.source.id), self)
            self._on_end()
            self.ended.set()

    async def _write_status(self, quality: Quality) -> None:
        participant = self.participant
        if participant is None:
            return
        size = quality.resolution
        live = SourceLive(
            room_id=participant.room_id,
            participant_id=participant.id,
            since=self.since,
            updated_at=time.time(),
            bitrate_bps=quality.bitrate_bps,
            width=size.width if size else None,
            height=size.height if size else None,
            fps=quality.fps,
        )
        with contextlib.suppress(Exception):
            await self.registry.set_live(self.source.id, live)
            if quality.b_frames and not self._told_b_frames:
                self._told_b_frames = True
                log.warning("WHIP source %s sends B-frames: %s", self.source.id, B_FRAMES)
                await self.registry.record_error(self.source.id, ErrorCode.media_error, B_FRAMES)

    async def mark_live(self) -> None:
        """Connected from the answer on, before the first quality sample arrives."""
        if self.participant is None:
            return
        now = time.time()
        await self.registry.set_live(
            self.source.id,
            SourceLive(
                room_id=self.participant.room_id,
                participant_id=self.participant.id,
                since=self.since,
                updated_at=now,
            ),
        )

    def _spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task
