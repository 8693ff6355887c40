"""Materializing lesson sessions from a published timetable and the term calendar.

Holidays are skipped, a 调休 make-up day runs the timetable of the weekday it follows,
and the bell schedule in force on that date (summer/winter) gives the clock times.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from lessons.models import LessonSession, RemoteClass, SessionState
from scheduler.clock import teaching_days
from scheduler.domain import District, Offering
from scheduler.timetable import Assignment, Timetable

SHANGHAI = ZoneInfo("Asia/Shanghai")


class SessionWindow(BaseModel):
    """How long before the start a lesson room opens, and after the end it closes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    open_before_minutes: float = Field(default=10, ge=0, le=120)
    close_after_minutes: float = Field(default=10, ge=0, le=120)
    missed_after_minutes: float = Field(default=10, ge=1, le=60)


def session_id(offering_id: str, day: date) -> str:
    """Stable per (offering, date): re-materializing updates instead of duplicating."""
    return f"{offering_id}.{day.isoformat()}"


def local_timestamp(day: date, clock: clock_time) -> float:
    return datetime.combine(day, clock, tzinfo=SHANGHAI).timestamp()


def materialize(
    district: District,
    timetable: Timetable,
    window: SessionWindow,
    *,
    start: date | None = None,
    end: date | None = None,
) -> list[LessonSession]:
    """Every session of the term (or of ``start``..``end``) the timetable produces.

    An offering with no remote class assigned is a plain local lesson: no session.
    """
    offerings = {o.id: o for o in district.offerings}
    schools = district.school_index()
    remotes: dict[str, list[Assignment]] = defaultdict(list)
    for assignment in timetable.assignments:
        remotes[assignment.offering_id].append(assignment)
    by_weekday: dict[str, list[Offering]] = defaultdict(list)
    for offering_id in remotes:
        offering = offerings.get(offering_id)
        if offering is not None:
            by_weekday[offering.weekday.value].append(offering)
    sessions: list[LessonSession] = []
    for day in teaching_days(district.term):
        if (start and day.day < start) or (end and day.day > end):
            continue
        for offering in by_weekday.get(day.follows.value, []):
            school = schools[offering.school]
            schedule = school.schedule_on(day.day)
            period = schedule.period(offering.period, day.follows) if schedule else None
            if period is None:
                continue  # this season's bell schedule has no such period that day
            starts = local_timestamp(day.day, period.start)
            ends = local_timestamp(day.day, period.end)
            sid = session_id(offering.id, day.day)
            sessions.append(
                LessonSession(
                    id=sid,
                    room_id=sid,
                    offering_id=offering.id,
                    district_id=district.id,
                    timetable_version=timetable.version,
                    teacher=offering.teacher,
                    master_school=offering.school,
                    master_classroom=offering.classroom,
                    subject=offering.subject,
                    grade=offering.grade,
                    date=day.day.isoformat(),
                    starts_at=starts,
                    ends_at=ends,
                    opens_at=starts - window.open_before_minutes * 60,
                    closes_at=ends + window.close_after_minutes * 60,
                    remotes=sorted(
                        (
                            RemoteClass(class_id=a.class_id, school=a.school)
                            for a in remotes[offering.id]
                        ),
                        key=lambda r: r.class_id,
                    ),
                )
            )
    sessions.sort(key=lambda s: (s.starts_at, s.id))
    return sessions


class PublishReport(BaseModel):
    created: int
    updated: int
    removed: int
    kept: int


@dataclass(frozen=True)
class PublishPlan:
    report: PublishReport
    removals: list[str]  # session ids
    writes: list[LessonSession]


def plan_publish(
    existing: list[LessonSession],
    district: District,
    timetable: Timetable,
    window: SessionWindow,
    now: float,
) -> PublishPlan:
    """What publishing ``timetable`` changes in the district's sessions (``existing``).

    Sessions that started, have history (not scheduled) or were moved stay as they are; the
    future ones the timetable no longer produces go; the past is not rewritten."""
    fresh = {s.id: s for s in materialize(district, timetable, window)}
    removals: list[str] = []
    kept = 0
    for old in existing:
        if old.starts_at <= now or old.state is not SessionState.scheduled or old.moved_from:
            kept += 1
            fresh.pop(old.id, None)
        elif old.id not in fresh:
            removals.append(old.id)
    writes = [s for s in fresh.values() if s.starts_at > now]
    known = {s.id for s in existing}
    updated = sum(s.id in known for s in writes)
    report = PublishReport(
        created=len(writes) - updated, updated=updated, removed=len(removals), kept=kept
    )
    return PublishPlan(report, removals, writes)


def local_date(timestamp: float) -> date:
    return datetime.fromtimestamp(timestamp, SHANGHAI).date()


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())
