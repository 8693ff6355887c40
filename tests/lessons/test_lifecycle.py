"""Lesson states, attendance, make-up lessons and the records chain, on both stores."""

from __future__ import annotations

from typing import Any

import pytest
from support.harness import Harness, running_app

from contracts.rooms import Role
from contracts.store import Store
from lessons.models import LessonSession, RemoteClass, SessionState
from lessons.records import RecordLog, VerifyReport
from lessons.service import LessonService
from lessons.sessions import SessionWindow
from sanke.app import LESSON_SERVICE_KEY

MIN = 60.0


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, minutes: float) -> None:
        self.now += minutes * MIN


def lesson(starts_at: float, sid: str = "off-1.2026-11-02", minutes: float = 40) -> LessonSession:
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
        date="2026-11-02",
        starts_at=starts_at,
        ends_at=starts_at + minutes * MIN,
        opens_at=starts_at - 10 * MIN,
        closes_at=starts_at + (minutes + 10) * MIN,
        remotes=[
            RemoteClass(class_id="jd-1-g3", school="jd-1"),
            RemoteClass(class_id="jd-2-g3", school="jd-2"),
        ],
    )


@pytest.fixture
async def lessons(store: Store) -> LessonService:
    from contracts.media import NullMediaPlane
    from signaling.hub import RoomHub
    from signaling.service import RoomService

    rooms = RoomService(store, RoomHub(store), NullMediaPlane(), "node-test")
    return LessonService(
        rooms, RecordLog(store, "k" * 32), SessionWindow(), clock=FakeClock(1_800_000_000.0)
    )


def clock_of(lessons: LessonService) -> FakeClock:
    assert isinstance(lessons.clock, FakeClock)
    return lessons.clock


async def test_missed_when_no_teacher_ten_minutes_after_start(lessons: LessonService) -> None:
    clock = clock_of(lessons)
    await lessons.sessions.put(lesson(clock.now + 30 * MIN))
    clock.advance(19)
    await lessons.tick()
    assert (await lessons.get("off-1.2026-11-02")).state is SessionState.scheduled
    assert await lessons.room_repo.get("off-1.2026-11-02") is None  # not open yet
    clock.advance(2)  # 9 min before the start: the room is open
    await lessons.tick()
    assert await lessons.room_repo.get("off-1.2026-11-02") is not None
    clock.advance(9 + 9)  # 9 min after the start
    await lessons.tick()
    assert (await lessons.get("off-1.2026-11-02")).state is SessionState.scheduled
    clock.advance(1.5)
    await lessons.tick()
    assert (await lessons.get("off-1.2026-11-02")).state is SessionState.missed
    clock.advance(60)
    await lessons.tick()
    records = await lessons.records.raw()
    assert len(records) == 1 and '"outcome":"missed"' in records[0]
    assert (await lessons.room_repo.get("off-1.2026-11-02")) is not None
    assert (await lessons.room_repo.get("off-1.2026-11-02")).state.value == "closed"  # type: ignore[union-attr]


async def test_cancel_and_move_once(lessons: LessonService) -> None:
    clock = clock_of(lessons)
    await lessons.sessions.put(lesson(clock.now + 120 * MIN))
    makeup = await lessons.move("off-1.2026-11-02", clock.now + 3 * 86400, "teacher at a training")
    original = await lessons.get("off-1.2026-11-02")
    assert original.state is SessionState.cancelled and original.moved_to == makeup.id
    assert makeup.moved_from == original.id and makeup.ends_at - makeup.starts_at == 40 * MIN
    assert makeup.opens_at == makeup.starts_at - 10 * MIN
    for class_id in ("jd-1-g3", "jd-2-g3"):
        notices = await lessons.notices(class_id)
        assert [n.kind for n in notices] == ["moved"]
    from contracts.errors import SankeError

    with pytest.raises(SankeError) as again:
        await lessons.move(makeup.id, clock.now + 4 * 86400, "again")
    assert again.value.code.value == "conflict"
    with pytest.raises(SankeError):
        await lessons.cancel(original.id, "already moved")
    cancelled = await lessons.cancel(makeup.id, "snow day")
    assert cancelled.state is SessionState.cancelled
    assert [n.kind for n in await lessons.notices("jd-1-g3")] == ["moved", "cancelled"]


async def test_publish_changes_future_sessions_only(lessons: LessonService) -> None:
    from scheduler.demo import demo_district
    from scheduler.solver.solve import SolveOptions, solve

    district = demo_district()
    timetable = solve(district, SolveOptions(time_limit=20))
    clock = clock_of(lessons)
    from datetime import datetime

    from lessons.sessions import SHANGHAI

    clock.now = datetime(2026, 11, 2, 12, 0, tzinfo=SHANGHAI).timestamp()
    first = await lessons.publish(district, timetable)
    assert first.created > 0 and first.removed == 0
    # Pretend Monday morning's English lesson happened; then a new version drops it.
    held_id = "xian-shiyan-g3-英语-mon3.2026-11-02"
    assert await lessons.sessions.get(held_id) is None  # in the past when published
    past = lesson(clock.now - 3600, sid=held_id)
    past.state = SessionState.ended
    await lessons.sessions.put(past)
    fewer = timetable.model_copy(
        update={
            "assignments": [
                a for a in timetable.assignments if a.offering_id != "xian-shiyan-g3-英语-mon3"
            ]
        }
    )
    second = await lessons.publish(district, fewer)
    assert second.removed > 0 and second.created == 0
    assert (await lessons.get(held_id)).state is SessionState.ended  # history kept
    future = await lessons.sessions.get("xian-shiyan-g3-英语-mon3.2026-11-09")
    assert future is None


async def test_attendance_minutes_from_join_and_leave(lessons: LessonService) -> None:
    from contracts.rooms import Participant

    clock = clock_of(lessons)
    start = clock.now + 10 * MIN
    session = lesson(start)
    await lessons.sessions.put(session)
    await lessons.tick()
    teacher = Participant(id="p_t", room_id=session.id, subject="t", role=Role.teacher, node_id="n")
    kiosk = Participant(
        id="p_a",
        room_id=session.id,
        subject="dev",
        role=Role.classroom,
        classroom_id="jd-1-g3",
        node_id="n",
    )
    kiosk2 = kiosk.model_copy(update={"id": "p_b"})
    clock.now = start + 3 * MIN
    await lessons.participant_joined(teacher)
    clock.now = start - 2 * MIN  # the kiosk is early: presence counts from the start only
    await lessons.participant_joined(kiosk)
    clock.now = start + 10 * MIN
    await lessons.participant_left(kiosk, "disconnected")
    clock.now = start + 13 * MIN
    await lessons.participant_joined(kiosk2)
    clock.now = start + 60 * MIN
    await lessons.tick()
    done = await lessons.get(session.id)
    assert done.state is SessionState.ended and done.recorded
    attendance = {a.class_id: a for a in await lessons.attendance(done)}
    a = attendance["jd-1-g3"]
    assert a.minutes_present == 37.0  # 0–10 and 13–40
    assert a.reconnects == 1
    assert a.minutes_lost == 3.0
    assert attendance["jd-2-g3"].minutes_present == 0 and attendance["jd-2-g3"].joined_at is None
    record = (await lessons.records.raw())[0]
    assert '"outcome":"held"' in record and '"late_minutes":3.0' in record


async def test_records_chain_detects_tampering(lessons: LessonService) -> None:
    clock = clock_of(lessons)
    for i in range(4):
        await lessons.sessions.put(lesson(clock.now - 2 * 3600 + i, sid=f"off-{i}.2026-11-02"))
    await lessons.tick()
    report = await lessons.records.verify()
    assert report == VerifyReport(ok=True, records=4, head=4)
    lines = await lessons.records.raw()
    forged = lines[2].replace('"outcome":"missed"', '"outcome":"held"')
    assert forged != lines[2]
    await lessons.store.replace_at("l:records", 2, forged)
    report = await lessons.records.verify()
    assert not report.ok and report.first_broken == 2 and "hash" in (report.problem or "")
    # A wrong key cannot vouch for an intact chain either.
    await lessons.store.replace_at("l:records", 2, lines[2])
    assert (await lessons.records.verify()).ok
    other = RecordLog(lessons.store, "x" * 32)
    bad = await other.verify()
    assert not bad.ok and bad.first_broken == 0 and "signature" in (bad.problem or "")
    # Removing a record breaks the link of the next one.
    await lessons.store.replace_at("l:records", 1, lines[2])
    assert (await lessons.records.verify()).first_broken == 1


async def test_session_room_goes_live_when_the_teacher_joins() -> None:
    """Through the real WebSocket: the teacher's join makes the lesson live."""
    import time

    async with running_app() as h:
        service = h.app[LESSON_SERVICE_KEY]
        now = time.time()
        session = lesson(now + 2 * MIN)
        await h.sessions.put(session)
        await service.tick()
        teacher = await join_session(h, session, Role.teacher)
        live = await service.get(session.id)
        assert live.state is SessionState.live and live.teacher_joined_at is not None
        del teacher


async def join_session(h: Harness, session: LessonSession, role: Role, **kw: Any) -> object:
    token = h.tokens.mint(
        subject=f"{role.value}-x",
        role=role,
        room=session.room_id,
        not_before=session.opens_at,
        expires=session.closes_at,
        **kw,
    )
    client = await h.connect()
    await client.join(token)
    return client


async def test_records_verify_command(tmp_path: object, redis_url: str) -> None:
    """`sanke records verify` on an export file and on the Redis store finds the broken record."""
    import os
    import subprocess
    from pathlib import Path

    from support.processes import SANKE
    from support.redis_helpers import fresh_prefix, purge_prefix

    from contracts.store.redis import RedisStore

    prefix = fresh_prefix()
    store = RedisStore(redis_url, prefix=prefix)
    key = "r" * 40
    log = RecordLog(store, key)
    try:
        for i in range(3):
            body = lesson(1_800_000_000.0 + i, sid=f"off-{i}.2026-11-02")
            from lessons.records import SessionOutcome

            await log.append(
                SessionOutcome(
                    session_id=body.id,
                    offering_id=body.offering_id,
                    teacher=body.teacher,
                    master_school=body.master_school,
                    subject=body.subject,
                    date=body.date,
                    outcome="held",
                    starts_at=body.starts_at,
                    ends_at=body.ends_at,
                ),
                at=1_800_000_100.0 + i,
            )
        env = {
            **os.environ,
            "REDIS_URL": redis_url,
            "SANKE_KEY_PREFIX": prefix,
            "SANKE_RECORDS_KEY": key,
        }
        ok = subprocess.run([SANKE, "records", "verify"], env=env, capture_output=True, text=True)
        assert ok.returncode == 0 and "3 records" in ok.stdout
        lines = await log.raw()
        export = Path(str(tmp_path)) / "records.jsonl"
        export.write_text("\n".join(lines) + "\n")
        assert (
            subprocess.run(
                [SANKE, "records", "verify", "--file", str(export), "--key", key]
            ).returncode
            == 0
        )
        export.write_text(
            "\n".join([lines[0], lines[1].replace('"held"', '"missed"'), lines[2]]) + "\n"
        )
        broken = subprocess.run(
            [SANKE, "records", "verify", "--file", str(export), "--key", key],
            capture_output=True,
            text=True,
        )
        assert broken.returncode == 1 and "record 1" in broken.stdout
        await store.replace_at("l:records", 2, lines[1])
        broken = subprocess.run(
            [SANKE, "records", "verify"], env=env, capture_output=True, text=True
        )
        assert broken.returncode == 1 and "record 2" in broken.stdout
    finally:
        await store.close()
        purge_prefix(redis_url, prefix)


async def test_teacher_ends_the_lesson_for_everyone() -> None:
    import time

    async with running_app() as h:
        service = h.app[LESSON_SERVICE_KEY]
        now = time.time()
        session = lesson(now - 5 * MIN)
        await h.sessions.put(session)
        await service.tick()
        teacher = await join_session(h, session, Role.teacher)
        # One of the session's remote classrooms: taught together, the lesson was held.
        classroom = await join_session(h, session, Role.classroom, classroom_id="jd-1-g3")
        await classroom.send({"type": "end_lesson"})  # type: ignore[attr-defined]
        assert (await classroom.expect("error"))["code"] == "forbidden"  # type: ignore[attr-defined]
        await teacher.send({"type": "end_lesson"})  # type: ignore[attr-defined]
        for client in (teacher, classroom):
            assert await client.expect("room_closed")  # type: ignore[attr-defined]
        ended = await service.get(session.id)
        assert ended.state is SessionState.ended and ended.recorded
        assert ended.ended_at is not None and ended.ended_at < session.ends_at
        [record] = await service.records.raw()
        assert '"outcome":"held"' in record
        room = await h.rooms.get(session.room_id)
        assert room is not None and room.state.value == "closed"


async def test_going_on_stage_lowers_the_hand_for_everyone() -> None:
    async with running_app() as h:
        await h.room("room-1")
        teacher = await h.joined(Role.teacher)
        a = await h.joined(Role.classroom)
        await a.send({"type": "raise_hand"})
        await teacher.expect("hand_raised", raised=True)
        await teacher.send(
            {"type": "set_stage", "participant_id": a.participant_id, "on_stage": True}
        )
        assert await a.expect("hand_raised", participant_id=a.participant_id, raised=False)
        assert await teacher.expect("stage_changed", on_stage=True)
