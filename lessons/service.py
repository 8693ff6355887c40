"""The lesson lifecycle: scheduled → live (teacher joined) → ended, or missed / cancelled.

Sessions are materialized when a timetable is published (only future ones change), rooms
open ``open_before_minutes`` before the start and close after the grace period, and every
outcome is appended to the tamper-evident record log once the session's window is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from datetime import datetime

from pydantic import BaseModel

from contracts.errors import ErrorCode, SankeError
from contracts.events import RoomEvent
from contracts.protocol import LeaveReason, LessonChanged
from contracts.rooms import Participant, Role, Room, RoomKind
from contracts.store.outage import OutageLog
from lessons.attendance import (
    FAULT_REASONS,
    AttendanceEvent,
    attendance_list,
    classroom_attendance,
    late_minutes,
    source_outage_seconds,
    was_held,
)
from lessons.metrics import (
    LESSONS,
    LESSONS_LIVE,
    LESSONS_MISSED,
    LESSONS_SCHEDULED_TODAY,
    RECONNECTS,
)
from lessons.models import LessonSession, SessionState
from lessons.records import ClassroomAttendance, RecordLog, SessionOutcome
from lessons.repository import SessionRepository
from lessons.sessions import (
    SHANGHAI,
    PublishPlan,
    PublishReport,
    SessionWindow,
    local_date,
    plan_publish,
)
from scheduler.domain import District
from scheduler.timetable import Timetable
from signaling.service import RoomService

log = logging.getLogger(__name__)
TICK_LOCK = "kv:lock:lessons-tick"
NOTICE_LIMIT = 50


class SchoolPlace(BaseModel):
    """Where a school is, kept for grouping statistics by county / city / province."""

    name: str
    region: str  # province/city/county


SCHOOLS = "h:lesson-schools"


class Notice(BaseModel):
    at: float
    session_id: str
    kind: str
    message: str


def notices_list(class_id: str) -> str:
    return f"l:notices:{class_id}"


class LessonService:
    def __init__(
        self,
        rooms: RoomService,
        records: RecordLog,
        window: SessionWindow,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rooms = rooms
        self.store = rooms.store
        self.room_repo = rooms.repo
        self.sessions = SessionRepository(rooms.store)
        self.records = records
        self.window = window
        self.clock = clock
        self._task: asyncio.Task[None] | None = None

    # --- publishing --------------------------------------------------------
    async def publish(self, district: District, timetable: Timetable) -> PublishReport:
        """Materialize the term; sessions that started or have history stay as they are."""
        plan = await self._plan(district, timetable)
        for school in district.schools:
            place = SchoolPlace(name=school.name, region=school.region.key("county"))
            await self.store.hset(SCHOOLS, school.id, place.model_dump_json())
        for sid in plan.removals:
            await self.sessions.delete(sid)
        for session in plan.writes:
            await self.sessions.put(session)
        return plan.report

    async def publish_refusal(self, district: District, timetable: Timetable) -> str | None:
        """Why publishing ``timetable`` needs the coordinator's confirmation, if it does: it
        would remove every future lesson of the district and put none in their place."""
        report = (await self._plan(district, timetable)).report
        if report.removed and not report.created + report.updated:
            return (
                f"publishing removes all {report.removed} future lessons of the district "
                "and creates none"
            )
        return None

    async def _plan(self, district: District, timetable: Timetable) -> PublishPlan:
        existing = [s for s in await self.sessions.all() if s.district_id == district.id]
        return plan_publish(existing, district, timetable, self.window, self.clock())

    # --- the clock ---------------------------------------------------------
    async def tick(self) -> None:
        now = self.clock()
        today = local_date(now).isoformat()
        # Only sessions not yet recorded up to today (an index): a term holds every lesson of
        # every week, and the clock ticks every few seconds.
        for session in await self.sessions.list_open(today):
            try:
                await self._advance(session, now)
            except Exception:
                log.exception("advancing lesson %s failed", session.id)
        states: dict[str, int] = dict.fromkeys((s.value for s in SessionState), 0)
        for session in await self.sessions.list_on(today):
            states[session.state.value] += 1
        LESSONS_LIVE.set(states[SessionState.live.value])
        for state, count in states.items():
            LESSONS_SCHEDULED_TODAY.labels(state).set(count)

    async def _advance(self, session: LessonSession, now: float) -> None:
        state = session.state
        if state is SessionState.scheduled and session.opens_at <= now < session.closes_at:
            await self._ensure_room(session)
        if (
            state is SessionState.scheduled
            and now >= session.starts_at + self.window.missed_after_minutes * 60
        ):
            session.state = SessionState.missed
            LESSONS_MISSED.labels(session.master_school).inc()
            await self.sessions.put(session)
        if now >= session.closes_at and not session.recorded:
            if session.state is SessionState.live:
                session.state = SessionState.ended
                session.ended_at = session.closes_at
            if session.state is SessionState.scheduled:
                session.state = SessionState.missed
            await self._record(session, now)
            if await self.room_repo.get(session.room_id) is not None:
                await self.rooms.close_room(session.room_id)

    async def _ensure_room(self, session: LessonSession) -> None:
        room = Room(
            id=session.room_id,
            name=f"{session.subject} {session.teacher}",
            kind=RoomKind.dedicated,
            school_id=session.master_school,
        )
        await self.room_repo.create(room)

    async def _record(self, session: LessonSession, now: float) -> None:
        if session.state is SessionState.ended and not was_held(
            session, await self.events(session.id), now
        ):
            # The room was live (the teacher came) but no lesson took place in its time.
            session.state = SessionState.missed
        outcome = {
            SessionState.ended: "held",
            SessionState.live: "held",
            SessionState.missed: "missed",
            SessionState.cancelled: "cancelled",
        }.get(session.state, "missed")
        body = SessionOutcome(
            session_id=session.id,
            offering_id=session.offering_id,
            teacher=session.teacher,
            master_school=session.master_school,
            subject=session.subject,
            date=session.date,
            outcome=outcome,
            starts_at=session.starts_at,
            ends_at=session.ends_at,
            teacher_joined_at=session.teacher_joined_at,
            late_minutes=late_minutes(session),
            classrooms=await self.attendance(session, now),
            teacher_source_outage_seconds=await self.source_outage(session, now),
        )
        await self.records.append(body, now)
        LESSONS.labels(outcome, session.master_school).inc()
        session.recorded = True
        await self.sessions.put(session)

    async def start(self, interval: float = 5.0) -> None:
        async def loop() -> None:
            # A Redis outage must not end the clock: it ticks again once the store is back.
            outage = OutageLog(log, "lesson clock")
            while True:
                try:
                    # One process ticks at a time; the others skip this round.
                    if await self.store.set(TICK_LOCK, self.rooms.node_id, ttl=interval, nx=True):
                        await self.tick()
                    outage.ok()
                except Exception as exc:
                    outage.failed(exc)
                await asyncio.sleep(interval)

        self._task = asyncio.create_task(loop(), name="lessons-tick")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- attendance (a RoomObserver) ----------------------------------------
    async def participant_joined(self, participant: Participant) -> None:
        session = await self.sessions.get(participant.room_id)
        if session is None:
            return
        now = self.clock()
        if await self._rejoining(participant):
            RECONNECTS.labels(participant.role.value).inc()
        await self._event(participant, "join", None, now)
        if participant.role is Role.teacher and session.state in (
            SessionState.scheduled,
            SessionState.live,
        ):
            if session.teacher_joined_at is None:
                session.teacher_joined_at = now
            session.state = SessionState.live
            await self.sessions.put(session)

    async def _rejoining(self, p: Participant) -> bool:
        """The same classroom (or the teacher) comes back after its link dropped."""
        for event in reversed(await self.events(p.room_id)):
            if event.kind not in ("join", "leave"):
                continue
            if event.role is p.role and event.classroom_id == p.classroom_id:
                return event.kind == "leave" and event.reason in FAULT_REASONS
        return False

    async def participant_left(self, participant: Participant, reason: LeaveReason) -> None:
        if await self.sessions.get(participant.room_id) is None:
            return
        await self._event(participant, "leave", reason, self.clock())

    async def room_closed(self, room_id: str) -> None:
        """The teacher ended the lesson (or a coordinator closed its room): record it now."""
        session = await self.sessions.get(room_id)
        if session is None or session.recorded or session.state is not SessionState.live:
            return
        now = self.clock()
        session.state = SessionState.ended
        session.ended_at = now
        await self._record(session, now)

    async def _event(self, p: Participant, kind: str, reason: str | None, now: float) -> None:
        event = AttendanceEvent(
            t=now,
            kind=kind,
            participant_id=p.id,
            role=p.role,
            classroom_id=p.classroom_id,
            reason=reason,
        )
        await self.store.append(attendance_list(p.room_id), event.model_dump_json())

    async def events(self, session_id: str) -> list[AttendanceEvent]:
        return [
            AttendanceEvent.model_validate_json(raw)
            for raw in await self.store.range(attendance_list(session_id))
        ]

    async def attendance(
        self, session: LessonSession, now: float | None = None
    ) -> list[ClassroomAttendance]:
        events = await self.events(session.id)
        at = self.clock() if now is None else now
        return [
            classroom_attendance(session, r.class_id, r.school, events, at) for r in session.remotes
        ]

    async def source_outage(self, session: LessonSession, now: float | None = None) -> float:
        """Seconds of the lesson its hardware teacher source had no picture (rounded to 0.1)."""
        events = await self.events(session.id)
        at = self.clock() if now is None else now
        return round(source_outage_seconds(session, events, at), 1)

    # --- coordinator changes -----------------------------------------------
    async def get(self, session_id: str) -> LessonSession:
        session = await self.sessions.get(session_id)
        if session is None:
            raise SankeError(ErrorCode.not_found, f"no lesson session {session_id}", 404)
        return session

    async def cancel(self, session_id: str, reason: str) -> LessonSession:
        session = await self.get(session_id)
        if session.state is not SessionState.scheduled or session.starts_at <= self.clock():
            raise SankeError(
                ErrorCode.conflict,
                f"only a lesson that has not started can be cancelled (it is {session.state.value})",
                409,
            )
        session.state = SessionState.cancelled
        session.cancelled_reason = reason
        await self.sessions.put(session)
        await self._tell(session, "cancelled", f"课程已取消 Lesson cancelled: {reason}", None)
        return session

    async def move(self, session_id: str, new_start: float, reason: str) -> LessonSession:
        """Make-up lesson: the session moves once to a new time; the original is cancelled."""
        session = await self.get(session_id)
        now = self.clock()
        if session.moved_from or session.moved_to:
            raise SankeError(ErrorCode.conflict, "a lesson can be moved only once", 409)
        if session.state is not SessionState.scheduled or session.starts_at <= now:
            raise SankeError(
                ErrorCode.conflict, "only a lesson that has not started can be moved", 409
            )
        if new_start <= now:
            raise SankeError(
                ErrorCode.invalid_request, "the make-up lesson must be in the future", 422
            )
        length = session.ends_at - session.starts_at
        makeup = session.model_copy(
            update={
                "id": f"{session.id}.makeup",
                "room_id": f"{session.id}.makeup",
                "starts_at": new_start,
                "ends_at": new_start + length,
                "opens_at": new_start - self.window.open_before_minutes * 60,
                "closes_at": new_start + length + self.window.close_after_minutes * 60,
                "moved_from": session.id,
                "date": _local_day(new_start),
            }
        )
        session.state = SessionState.cancelled
        session.cancelled_reason = f"moved: {reason}"
        session.moved_to = makeup.id
        await self.sessions.put(makeup)
        await self.sessions.put(session)
        await self._tell(
            session, "moved", f"课程调至 {_local_text(new_start)} Lesson moved: {reason}", makeup
        )
        return makeup

    async def _tell(
        self, session: LessonSession, kind: str, message: str, makeup: LessonSession | None
    ) -> None:
        """Every remote classroom is told: a notice on its device schedule, and live in the room."""
        notice = Notice(at=self.clock(), session_id=session.id, kind=kind, message=message)
        for remote in session.remotes:
            await self.store.append(notices_list(remote.class_id), notice.model_dump_json())
        await self.rooms.hub.publish(
            RoomEvent(
                room_id=session.room_id,
                message=LessonChanged(
                    session_id=session.id,
                    state=session.state.value,
                    message=message,
                    moved_to=makeup.id if makeup else None,
                    new_starts_at=makeup.starts_at if makeup else None,
                ),
            )
        )

    async def notices(self, class_id: str) -> list[Notice]:
        raws = await self.store.range(notices_list(class_id), -NOTICE_LIMIT, -1)
        return [Notice.model_validate_json(raw) for raw in raws]

    async def school_places(self) -> dict[str, SchoolPlace]:
        raw = await self.store.hgetall(SCHOOLS)
        return {sid: SchoolPlace.model_validate_json(v) for sid, v in raw.items()}

    async def sessions_for_class(self, class_id: str) -> list[LessonSession]:
        sessions = [
            s for s in await self.sessions.all() if any(r.class_id == class_id for r in s.remotes)
        ]
        return sorted(sessions, key=lambda s: s.starts_at)


def _local_day(timestamp: float) -> str:
    return local_date(timestamp).isoformat()


def _local_text(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, SHANGHAI).strftime("%Y-%m-%d %H:%M")
