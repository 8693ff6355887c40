"""Routine-use figures the education authorities ask for: 开课率, late starts, attendance.

开课率 (opening rate) = held ÷ scheduled, where scheduled counts every session that was
due (held + missed); cancelled sessions are reported apart and are not in the rate,
because a coordinator cancelled them on purpose. A session is held when the teacher and at
least one remote classroom were in the room together during its scheduled time
(``attendance.was_held``, decided when its record is written); one the teacher ended before
that is missed.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable
from datetime import date, datetime

from pydantic import BaseModel

from lessons.models import LessonSession, SessionState
from lessons.records import ClassroomAttendance
from lessons.sessions import SHANGHAI


class StatsRow(BaseModel):
    group: str
    scheduled: int = 0
    held: int = 0
    missed: int = 0
    cancelled: int = 0
    upcoming: int = 0
    opening_rate: float | None = None
    average_late_minutes: float | None = None
    remote_attendance_rate: float | None = None
    master_periods_per_week: float | None = None
    # held lessons' minutes without their hardware teacher source's picture (主讲画面重连中)
    teacher_source_outage_minutes: float = 0.0


class StatsReport(BaseModel):
    start: date
    end: date
    group_by: str
    rows: list[StatsRow]
    total: StatsRow


def _day(session: LessonSession) -> date:
    if session.date:
        return date.fromisoformat(session.date)
    return datetime.fromtimestamp(session.starts_at, SHANGHAI).date()


def compute(
    sessions: Iterable[LessonSession],
    attendance: dict[str, list[ClassroomAttendance]],
    start: date,
    end: date,
    group_of: dict[str, str] | None,
    now: float,
    outages: dict[str, float] | None = None,
) -> StatsReport:
    """``group_of`` maps a school id to its group (a school, a county...); None = one group.

    A session belongs to the groups of its master school and of every remote school.
    """
    by_group: dict[str, list[LessonSession]] = defaultdict(list)
    every: list[LessonSession] = []
    for session in sessions:
        if not start <= _day(session) <= end:
            continue
        every.append(session)
        if group_of is None:
            continue
        schools = {session.master_school, *(r.school for r in session.remotes)}
        for group in sorted({group_of[s] for s in schools if s in group_of}):
            by_group[group].append(session)
    weeks = max(1.0, ((end - start).days + 1) / 7)
    lost = outages or {}
    rows = [
        _row(group, items, attendance, weeks, now, lost)
        for group, items in sorted(by_group.items())
    ]
    return StatsReport(
        start=start,
        end=end,
        group_by="all" if group_of is None else "group",
        rows=rows,
        total=_row("total", every, attendance, weeks, now, lost),
    )


def _row(
    group: str,
    sessions: list[LessonSession],
    attendance: dict[str, list[ClassroomAttendance]],
    weeks: float,
    now: float,
    outages: dict[str, float],
) -> StatsRow:
    row = StatsRow(group=group)
    late: list[float] = []
    expected = attended = 0
    classrooms: set[str] = set()
    for s in sessions:
        if s.state is SessionState.cancelled:
            row.cancelled += 1
            continue
        if s.state is SessionState.live and s.starts_at > now:
            row.upcoming += 1  # the teacher opened the room early: not held yet
            continue
        if s.state in (SessionState.ended, SessionState.live):
            row.held += 1
            classrooms.add(f"{s.master_school}/{s.master_classroom}")
            if s.teacher_joined_at is not None:
                late.append(max(0.0, s.teacher_joined_at - s.starts_at) / 60)
            for a in attendance.get(s.id, []):
                expected += 1
                attended += a.minutes_present > 0
            row.teacher_source_outage_minutes += outages.get(s.id, 0.0) / 60
        elif s.state is SessionState.missed:
            row.missed += 1
        elif s.starts_at > now:
            row.upcoming += 1
            continue
        else:
            row.missed += 1  # due, not held, not yet marked by the clock
    row.scheduled = row.held + row.missed
    if row.scheduled:
        row.opening_rate = round(row.held / row.scheduled, 4)
    if late:
        row.average_late_minutes = round(sum(late) / len(late), 2)
    if expected:
        row.remote_attendance_rate = round(attended / expected, 4)
    row.teacher_source_outage_minutes = round(row.teacher_source_outage_minutes, 2)
    if classrooms:
        row.master_periods_per_week = round(row.held / weeks / len(classrooms), 2)
    return row


def to_csv(report: StatsReport) -> str:
    out = io.StringIO()
    fields = list(StatsRow.model_fields)
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in [*report.rows, report.total]:
        writer.writerow({k: "" if v is None else v for k, v in row.model_dump().items()})
    return out.getvalue()
