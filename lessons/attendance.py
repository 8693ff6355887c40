"""Attendance from join/leave events: minutes present, reconnects, minutes lost to faults;
and the seconds a hardware teacher source (an RTSP camera, an RTMP encoder) was in the room
without a picture (``source_down`` … ``source_up``, written by its supervisor)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.rooms import Role
from lessons.models import LessonSession
from lessons.records import ClassroomAttendance

# Leaving for these reasons is a fault (the link or the machine), not a decision.
FAULT_REASONS = frozenset({"disconnected", "timeout", "replaced"})


class AttendanceEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t: float
    # source_down / source_up: the teacher source's picture was lost / is back (its own
    # participant stays in the room meanwhile)
    kind: Literal["join", "leave", "source_down", "source_up"]
    participant_id: str
    role: Role
    classroom_id: str | None = None
    reason: str | None = None


def attendance_list(session_id: str) -> str:
    return f"l:attendance:{session_id}"


def _intervals(
    events: list[AttendanceEvent], until: float
) -> list[tuple[float, float, str | None]]:
    """(joined, left, leave reason) per connection; one still open ends at ``until``."""
    open_at: dict[str, float] = {}
    spans: list[tuple[float, float, str | None]] = []
    for event in sorted(events, key=lambda e: e.t):
        if event.kind == "join":
            open_at[event.participant_id] = event.t
        elif event.kind == "leave" and event.participant_id in open_at:
            spans.append((open_at.pop(event.participant_id), event.t, event.reason))
    spans.extend((joined, max(joined, until), None) for joined in open_at.values())
    return sorted(spans)


def _clip(a: float, b: float, lo: float, hi: float) -> float:
    return max(0.0, min(b, hi) - max(a, lo))


def classroom_attendance(
    session: LessonSession, class_id: str, school: str, events: list[AttendanceEvent], now: float
) -> ClassroomAttendance:
    mine = [e for e in events if e.role is Role.classroom and e.classroom_id == class_id]
    until = min(now, session.ends_at)
    spans = _intervals(mine, until)
    if not spans:
        return ClassroomAttendance(class_id=class_id, school=school)
    present = 0.0
    covered_until = session.starts_at
    for joined, left, _ in spans:
        start = max(joined, covered_until)
        present += _clip(start, left, session.starts_at, session.ends_at)
        covered_until = max(covered_until, left)
    lost = 0.0
    for index, (_joined, left, reason) in enumerate(spans):
        if reason not in FAULT_REASONS:
            continue
        back = spans[index + 1][0] if index + 1 < len(spans) else until
        lost += _clip(left, back, session.starts_at, session.ends_at)
    return ClassroomAttendance(
        class_id=class_id,
        school=school,
        joined_at=spans[0][0],
        minutes_present=round(present / 60, 2),
        reconnects=len(spans) - 1,
        minutes_lost=round(lost / 60, 2),
    )


def source_outage_seconds(
    session: LessonSession, events: list[AttendanceEvent], now: float
) -> float:
    """Seconds of the scheduled lesson time (up to ``now``) when a teacher source was in the
    room without a picture: its camera or encoder dropped and Sanke was reconnecting. An
    outage ends when the picture is back or the source leaves (the lesson ended)."""
    until = min(now, session.ends_at)
    down_at: dict[str, float] = {}
    spans: list[tuple[float, float, str | None]] = []
    for event in sorted(events, key=lambda e: e.t):
        if event.kind == "source_down":
            down_at.setdefault(event.participant_id, event.t)
        elif event.kind in ("source_up", "leave") and event.participant_id in down_at:
            spans.append((down_at.pop(event.participant_id), event.t, None))
    spans.extend((t, max(t, until), None) for t in down_at.values())
    return sum(b - a for a, b in _union(spans, session.starts_at, until))


def _union(spans: list[tuple[float, float, str | None]], lo: float, hi: float) -> list[list[float]]:
    """The spans clipped to [lo, hi] and merged: the time someone of them was there."""
    merged: list[list[float]] = []
    for joined, left, _ in sorted(spans):
        a, b = max(joined, lo), min(left, hi)
        if b <= a:
            continue
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def together_seconds(session: LessonSession, events: list[AttendanceEvent], now: float) -> float:
    """Seconds of the scheduled lesson time (start to end, up to ``now``) when the teacher and
    at least one of the session's remote classrooms were in the room at the same time."""
    until = min(now, session.ends_at)
    teacher = _union(
        _intervals([e for e in events if e.role is Role.teacher], until),
        session.starts_at,
        until,
    )
    remote_ids = {r.class_id for r in session.remotes}
    if not remote_ids:  # a lesson without remote classes: the teacher alone holds it
        return sum(b - a for a, b in teacher)
    classrooms = _union(
        _intervals(
            [e for e in events if e.role is Role.classroom and e.classroom_id in remote_ids],
            until,
        ),
        session.starts_at,
        until,
    )
    total, i, j = 0.0, 0, 0
    while i < len(teacher) and j < len(classrooms):
        total += max(
            0.0, min(teacher[i][1], classrooms[j][1]) - max(teacher[i][0], classrooms[j][0])
        )
        if teacher[i][1] < classrooms[j][1]:
            i += 1
        else:
            j += 1
    return total


def was_held(session: LessonSession, events: list[AttendanceEvent], now: float) -> bool:
    """A 专递课堂 lesson was held when, during its scheduled time, the teacher taught at least
    one remote classroom: both in the room together for some time between start and end.

    A teacher who opened the room early and ended it before the start (no classroom there)
    held nothing, nor did a teacher alone in the room: the remote lesson did not take place.
    """
    return together_seconds(session, events, now) > 0


def teacher_joined_at(events: list[AttendanceEvent]) -> float | None:
    joins = [e.t for e in events if e.role is Role.teacher and e.kind == "join"]
    return min(joins) if joins else None


def late_minutes(session: LessonSession) -> float | None:
    if session.teacher_joined_at is None:
        return None
    return round(max(0.0, session.teacher_joined_at - session.starts_at) / 60, 2)
