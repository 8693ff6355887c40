"""The teacher source's outage seconds from a lesson's attendance events (pure: the
browser test, test_source_outage_browser.py, drives it with a real camera)."""

from __future__ import annotations

from datetime import date

from support.sessions import english_lesson

from contracts.rooms import Role
from lessons.attendance import (
    AttendanceEvent,
    classroom_attendance,
    source_outage_seconds,
    together_seconds,
)
from lessons.models import SessionState
from lessons.stats import compute, to_csv

T0 = 1_000_000.0


def ev(t: float, kind: str, pid: str = "p_src", role: Role = Role.teacher) -> AttendanceEvent:
    classroom = "jd-1-g3" if role is Role.classroom else None
    return AttendanceEvent.model_validate(
        {"t": T0 + t, "kind": kind, "participant_id": pid, "role": role, "classroom_id": classroom}
    )


def test_outages_count_once_inside_the_lesson_and_end_with_the_source() -> None:
    lesson = english_lesson("s1", T0, minutes=40)
    events = [
        ev(-60, "join"),
        ev(-30, "source_down"),  # before the start: counted from the start
        ev(10, "source_up"),
        ev(100, "source_down"),
        ev(101, "source_down"),  # two looks saw it: one outage
        ev(130, "source_up"),
        ev(600, "source_down"),
        ev(620, "leave"),  # the source left (the lesson ended early): the outage ends
    ]
    assert source_outage_seconds(lesson, events, T0 + 3000) == 10 + 30 + 20
    # an outage still going on counts up to now
    ongoing = [ev(0, "join"), ev(50, "source_down")]
    assert source_outage_seconds(lesson, ongoing, T0 + 80) == 30


def test_outage_events_change_no_presence() -> None:
    lesson = english_lesson("s1", T0, minutes=40)
    classroom = [ev(0, "join", "p_k", Role.classroom)]
    teacher = [ev(0, "join"), ev(100, "source_down"), ev(200, "source_up")]
    now = T0 + 600
    assert together_seconds(lesson, classroom + teacher, now) == 600
    present = classroom_attendance(lesson, "jd-1-g3", "jd-1", classroom + teacher, now)
    assert present.minutes_present == 10 and present.minutes_lost == 0


def test_the_statistics_sum_the_held_lessons_outage_minutes() -> None:
    held = english_lesson("s1", T0, state=SessionState.ended)
    other = english_lesson("s2", T0 + 3600, state=SessionState.ended)
    missed = english_lesson("s3", T0 + 7200, state=SessionState.missed)
    day = date(2026, 11, 2)
    outages = {"s1": 90.0, "s2": 30.0, "s3": 600.0}  # a missed lesson taught nothing: not counted
    report = compute([held, other, missed], {}, day, day, None, T0 + 9000, outages)
    assert report.total.teacher_source_outage_minutes == 2.0
    assert report.total.held == 2
    assert "teacher_source_outage_minutes" in to_csv(report).splitlines()[0]
