"""What counts as held for 开课率 (issue 15, item 5): the teacher taught a remote classroom
during the lesson's scheduled time."""

from __future__ import annotations

import time

from support.harness import running_app

from contracts.media import NullMediaPlane
from contracts.rooms import Participant, Role
from contracts.store import MemoryStore
from lessons.models import LessonSession, RemoteClass, SessionState
from lessons.records import RecordLog
from lessons.service import LessonService, SchoolPlace
from lessons.sessions import SessionWindow
from sanke.app import LESSON_SERVICE_KEY
from signaling.hub import RoomHub
from signaling.service import RoomService

MIN = 60.0


def lesson(starts_at: float, sid: str = "off-1.2026-11-02") -> LessonSession:
    return LessonSession(
        id=sid,
        room_id=sid,
        offering_id="off-1",
        district_id="d",
        teacher="张老师",
        master_school="xian-shiyan",
        master_classroom="3-1",
        subject="英语",
        grade=3,
        date=time.strftime("%Y-%m-%d", time.localtime(starts_at)),
        starts_at=starts_at,
        ends_at=starts_at + 40 * MIN,
        opens_at=starts_at - 10 * MIN,
        closes_at=starts_at + 50 * MIN,
        remotes=[RemoteClass(class_id="jd-1-g3", school="jd-1")],
    )


async def test_a_lesson_ended_before_its_start_is_not_held() -> None:
    """Through the real WebSocket: the teacher opens the room early and ends it at once."""
    async with running_app() as h:
        service = h.app[LESSON_SERVICE_KEY]
        session = lesson(time.time() + 5 * MIN)  # the room is open (10 min before the start)
        await h.sessions.put(session)
        await h.store.hset(
            "h:lesson-schools",
            "xian-shiyan",
            SchoolPlace(name="实验小学", region="41/4117/411721").model_dump_json(),
        )
        await service.tick()
        token = h.tokens.mint(
            subject="teacher-x",
            role=Role.teacher,
            room=session.room_id,
            not_before=session.opens_at,
            expires=session.closes_at,
        )
        teacher = await h.connect()
        await teacher.join(token)
        assert (await service.get(session.id)).state is SessionState.live
        await teacher.send({"type": "end_lesson"})
        await teacher.expect("room_closed")
        done = await service.get(session.id)
        assert done.recorded and done.state is SessionState.missed
        [record] = await service.records.raw()
        assert '"outcome":"missed"' in record
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        reply = await h.session.get(
            h.url("/api/v1/lessons/stats"),
            params={"group_by": "none"},
            headers={"Authorization": f"Bearer {coordinator}"},
        )
        total = (await reply.json())["total"]
        assert (total["held"], total["missed"], total["opening_rate"]) == (0, 1, 0.0)


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def _service(clock: Clock) -> LessonService:
    store = MemoryStore()
    rooms = RoomService(store, RoomHub(store), NullMediaPlane(), "node-test")
    return LessonService(rooms, RecordLog(store, "k" * 32), SessionWindow(), clock=clock)


def _teacher(session: LessonSession) -> Participant:
    return Participant(id="p_t", room_id=session.id, subject="t", role=Role.teacher, node_id="n")


def _kiosk(session: LessonSession, class_id: str = "jd-1-g3") -> Participant:
    return Participant(
        id=f"p_{class_id}",
        room_id=session.id,
        subject="dev",
        role=Role.classroom,
        classroom_id=class_id,
        node_id="n",
    )


async def test_outcome_needs_the_teacher_and_a_remote_classroom_in_lesson_time() -> None:
    start = 1_800_000_000.0
    clock = Clock(start - 20 * MIN)
    service = await _service(clock)
    cases = {
        # both there early, the teacher ends one minute before the start: nothing taught
        "early": [(-8, "join", "t"), (-7, "join", "k"), (-1, "close", "")],
        # the teacher alone through the lesson: no remote classroom got it
        "alone": [(-2, "join", "t"), (45, "tick", "")],
        # a classroom of another school in the room does not count
        "stranger": [(-2, "join", "t"), (0, "join", "x"), (45, "tick", "")],
        # taught for a minute and a half from the start, then ended: held (short, but held)
        "short": [(-2, "join", "t"), (-1, "join", "k"), (1.5, "close", "")],
        # the whole lesson, ended by the clock
        "full": [(-3, "join", "t"), (0, "join", "k"), (55, "tick", "")],
    }
    for name, steps in cases.items():
        session = lesson(start, sid=f"{name}.2026-11-02")
        await service.sessions.put(session)
        for minute, what, who in steps:
            clock.now = start + minute * MIN
            if what == "join":
                p = {"t": _teacher(session), "k": _kiosk(session), "x": _kiosk(session, "far")}[who]
                await service.participant_joined(p)
            elif what == "close":
                await service.room_closed(session.room_id)
            else:
                await service.tick()
        clock.now = start + 60 * MIN
        await service.tick()
        assert (await service.get(session.id)).recorded, name
    outcomes = {s.id.split(".")[0]: s.state for s in await service.sessions.all()}
    assert outcomes == {
        "early": SessionState.missed,
        "alone": SessionState.missed,
        "stranger": SessionState.missed,
        "short": SessionState.ended,
        "full": SessionState.ended,
    }
    records = {r.split('"session_id":"')[1].split(".")[0]: r for r in await service.records.raw()}
    assert all(('"outcome":"held"' in records[n]) == (n in ("short", "full")) for n in cases)
