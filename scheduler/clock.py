"""Clock times: which bell schedule is in force on which teaching day, and period overlap.

Matching uses clock times, never period numbers. A weekly match must hold on every teaching
day of the term, so the overlap of a master period and a remote period is the minimum over
every (master season, remote season) combination that occurs on a teaching day of that weekday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from scheduler.domain import Period, School, TermCalendar, Weekday


@dataclass(frozen=True)
class TeachingDay:
    day: date
    follows: Weekday  # the weekday whose timetable runs (differs on 调休 make-up days)
    week: int  # 1-based term week


def term_end(term: TermCalendar) -> date:
    monday = term.first_day - timedelta(days=term.first_day.weekday())
    return monday + timedelta(days=7 * term.weeks - 1)


def is_holiday(term: TermCalendar, day: date) -> bool:
    return any(h.start <= day <= h.end for h in term.holidays)


def teaching_days(term: TermCalendar) -> list[TeachingDay]:
    """Every day a weekday timetable runs: workdays minus holidays, plus make-up days."""
    monday = term.first_day - timedelta(days=term.first_day.weekday())
    makeup = {m.date: m.follows for m in term.makeup_days}
    days: list[TeachingDay] = []
    day = term.first_day
    end = term_end(term)
    while day <= end:
        week = (day - monday).days // 7 + 1
        if day in makeup:
            days.append(TeachingDay(day, makeup[day], week))
        elif day.weekday() < 5 and not is_holiday(term, day):
            days.append(TeachingDay(day, Weekday.of(day), week))
        day += timedelta(days=1)
    return days


class SeasonTable:
    """For each weekday, the distinct (master season, remote season) pairs in force."""

    def __init__(self, term: TermCalendar) -> None:
        self._days = teaching_days(term)
        self._seasons: dict[str, tuple[int, ...]] = {}
        self._combos: dict[tuple[str, str, Weekday], list[tuple[int, int]]] = {}

    def _season_indices(self, school: School) -> tuple[int, ...]:
        cached = self._seasons.get(school.id)
        if cached is None:
            indices: list[int] = []
            for td in self._days:
                idx = next((i for i, s in enumerate(school.bell_schedules) if s.covers(td.day)), -1)
                indices.append(idx)
            cached = tuple(indices)
            self._seasons[school.id] = cached
        return cached

    def combos(self, master: School, remote: School, weekday: Weekday) -> list[tuple[int, int]]:
        key = (master.id, remote.id, weekday)
        cached = self._combos.get(key)
        if cached is None:
            ms, rs = self._season_indices(master), self._season_indices(remote)
            found = {(ms[i], rs[i]) for i, td in enumerate(self._days) if td.follows == weekday}
            cached = sorted(found)
            self._combos[key] = cached
        return cached


def overlap_minutes(a: Period, b: Period) -> int:
    (a0, a1), (b0, b1) = a.minutes, b.minutes
    return max(0, min(a1, b1) - max(a0, b0))


PeriodTimes = dict[tuple[str, int, int, Weekday], tuple[int, int] | None]


def _times(
    school: School, season: int, number: int, weekday: Weekday, cache: PeriodTimes
) -> tuple[int, int] | None:
    key = (school.id, season, number, weekday)
    if key in cache:
        return cache[key]
    period = school.bell_schedules[season].period(number, weekday)
    found = cache[key] = period.minutes if period is not None else None
    return found


def weekly_overlap(
    seasons: SeasonTable,
    master: School,
    master_period: int,
    remote: School,
    remote_period: int,
    weekday: Weekday,
    times: PeriodTimes | None = None,
) -> int:
    """Minutes the two periods overlap on *every* teaching day of that weekday (0 if none).

    ``times`` caches the periods' clock times between calls."""
    combos = seasons.combos(master, remote, weekday)
    if not combos:
        return 0
    cache: PeriodTimes = {} if times is None else times
    best = 10_000
    for mi, ri in combos:
        if mi < 0 or ri < 0:
            return 0
        a = _times(master, mi, master_period, weekday, cache)
        b = _times(remote, ri, remote_period, weekday, cache)
        if a is None or b is None:
            return 0
        best = min(best, max(0, min(a[1], b[1]) - max(a[0], b[0])))
    return best


def period_interval(school: School, number: int, weekday: Weekday) -> tuple[int, int] | None:
    """The period's minutes-of-day in the school's first schedule that defines it."""
    for schedule in school.bell_schedules:
        period = schedule.period(number, weekday)
        if period is not None:
            return period.minutes
    return None
