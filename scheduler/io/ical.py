"""iCalendar export per classroom, per teacher and per school.

One VEVENT per weekly lesson and bell-schedule season: a weekly RRULE within the term (until
the season's last occurrence), EXDATE on holidays, RDATE for 调休 make-up days that follow
that weekday's timetable, Asia/Shanghai local times. UIDs are derived from the lesson and the
season only, so re-importing an updated calendar updates events instead of duplicating them.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from icalendar import Calendar, Event

from scheduler.clock import is_holiday, term_end
from scheduler.domain import District, School, Weekday
from scheduler.timetable import Timetable


@dataclass(frozen=True)
class Lesson:
    uid: str
    summary: str
    description: str
    school: School  # whose bell times apply
    period: int
    weekday: Weekday


def _occurrences(
    district: District, school: School, weekday: Weekday
) -> list[tuple[int, list[date], list[date], list[date]]]:
    """Per season run: (schedule index, regular dates, holiday dates, make-up dates)."""
    term = district.term
    first = term.first_day + timedelta(days=(weekday.iso - term.first_day.isoweekday()) % 7)
    runs: list[tuple[int, list[date], list[date], list[date]]] = []
    day = first
    end = term_end(term)
    makeups = [m.date for m in term.makeup_days if m.follows == weekday]

    def season(d: date) -> int:
        return next((i for i, s in enumerate(school.bell_schedules) if s.covers(d)), -1)

    while day <= end:
        idx = season(day)
        if not runs or runs[-1][0] != idx:
            runs.append((idx, [], [], []))
        runs[-1][1].append(day)
        if is_holiday(term, day):
            runs[-1][2].append(day)
        day += timedelta(days=7)
    for m in makeups:
        idx = season(m)
        run = next(
            (r for r in runs if r[0] == idx and r[1][0] <= m <= r[1][-1] + timedelta(days=6)), None
        )
        run = run or next((r for r in runs if r[0] == idx), None)
        if run is not None:
            run[3].append(m)
    return [r for r in runs if r[0] >= 0]


def _events(district: District, lesson: Lesson) -> list[Event]:
    tz = ZoneInfo(district.term.timezone)
    out = []
    for idx, dates, holidays, makeups in _occurrences(district, lesson.school, lesson.weekday):
        schedule = lesson.school.bell_schedules[idx]
        period = schedule.period(lesson.period, lesson.weekday)
        if period is None or (len(holidays) == len(dates) and not makeups):
            continue

        def at(d: date, t: time) -> datetime:
            return datetime.combine(d, t, tzinfo=tz)

        event = Event()
        event.add("uid", f"{lesson.uid}-{schedule.season}@sanke")
        event.add("summary", lesson.summary)
        event.add("description", lesson.description)
        event.add("dtstamp", datetime(2026, 1, 1, tzinfo=ZoneInfo("UTC")))
        event.add("dtstart", at(dates[0], period.start))
        event.add("dtend", at(dates[0], period.end))
        until = at(dates[-1], period.end).astimezone(ZoneInfo("UTC"))
        event.add("rrule", {"freq": "weekly", "until": until})
        for d in holidays:
            event.add("exdate", at(d, period.start))
        for d in makeups:
            event.add("rdate", at(d, period.start))
        out.append(event)
    return out


def _calendar(district: District, name: str, lessons: list[Lesson]) -> bytes:
    cal = Calendar()
    cal.add("prodid", "-//Sanke//scheduler//ZH")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", name)
    cal.add("x-wr-timezone", district.term.timezone)
    for lesson in sorted(lessons, key=lambda x: x.uid):
        for event in _events(district, lesson):
            cal.add_component(event)
    data: bytes = cal.to_ical()
    return data


def _class_lessons(
    district: District, tt: Timetable, class_id: str | None = None, school: str | None = None
) -> list[Lesson]:
    schools = district.school_index()
    out = []
    for a in tt.assignments:
        if (class_id is not None and a.class_id != class_id) or (
            school is not None and a.school != school
        ):
            continue
        out.append(
            Lesson(
                uid=f"{district.id}-{a.class_id}-{a.offering_id}",
                summary=f"专递课堂 {a.teacher} ({a.class_id})",
                description=f"offering {a.offering_id} from {a.master_school}, period {a.remote_period}",
                school=schools[a.school], period=a.remote_period, weekday=a.weekday,
            )
        )  # fmt: skip
    return out


def _master_lessons(
    district: District, tt: Timetable, teacher: str | None = None, school: str | None = None
) -> list[Lesson]:
    schools = district.school_index()
    offerings = {o.id: o for o in district.offerings}
    remote: dict[str, list[str]] = {}
    for a in tt.assignments:
        remote.setdefault(a.offering_id, []).append(a.class_id)
    out = []
    for oid, classes in sorted(remote.items()):
        o = offerings[oid]
        if (teacher is not None and o.teacher != teacher) or (
            school is not None and o.school != school
        ):
            continue
        out.append(
            Lesson(
                uid=f"{district.id}-{o.id}-master",
                summary=f"专递课堂 {o.grade}年级{o.subject} {o.teacher}",
                description=f"remote classes: {', '.join(sorted(classes))}",
                school=schools[o.school], period=o.period, weekday=o.weekday,
            )
        )  # fmt: skip
    return out


def class_calendar(district: District, tt: Timetable, class_id: str) -> bytes:
    return _calendar(
        district, f"{class_id} 专递课堂", _class_lessons(district, tt, class_id=class_id)
    )


def teacher_calendar(district: District, tt: Timetable, teacher: str) -> bytes:
    return _calendar(
        district, f"{teacher} 专递课堂", _master_lessons(district, tt, teacher=teacher)
    )


def school_calendar(district: District, tt: Timetable, school: str) -> bytes:
    lessons = _class_lessons(district, tt, school=school) + _master_lessons(
        district, tt, school=school
    )
    return _calendar(district, f"{school} 专递课堂", lessons)


def _safe(name: str) -> str:
    return re.sub(r"[^\w.-]+", "_", name)


def export_all(district: District, tt: Timetable, directory: Path) -> list[Path]:
    """Every classroom's, teacher's and school's calendar under ``directory``."""
    written = []
    groups: list[tuple[str, set[str], Callable[[District, Timetable, str], bytes]]] = [
        ("class", {a.class_id for a in tt.assignments}, class_calendar),
        ("teacher", {a.teacher for a in tt.assignments}, teacher_calendar),
        (
            "school",
            {s for a in tt.assignments for s in (a.school, a.master_school)},
            school_calendar,
        ),
    ]
    for kind, keys, fn in groups:
        (directory / kind).mkdir(parents=True, exist_ok=True)
        for key in sorted(keys):
            path = directory / kind / f"{_safe(key)}.ics"
            path.write_bytes(fn(district, tt, key))
            written.append(path)
    return written
