"""Sessions from the demo county's timetable: holidays, 调休 and summer→winter bell times."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from lessons.models import LessonSession
from lessons.sessions import SHANGHAI, SessionWindow, materialize
from scheduler.demo import demo_district
from scheduler.domain import District
from scheduler.solver.solve import SolveOptions, solve
from scheduler.timetable import Timetable


@pytest.fixture(scope="module")
def county() -> tuple[District, Timetable]:
    district = demo_district()
    return district, solve(district, SolveOptions(time_limit=20))


@pytest.fixture(scope="module")
def sessions(county: tuple[District, Timetable]) -> list[LessonSession]:
    return materialize(*county, SessionWindow())


def _local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, SHANGHAI)


def _english_mon3(sessions: list[LessonSession]) -> list[LessonSession]:
    return [s for s in sessions if s.offering_id == "xian-shiyan-g3-英语-mon3"]


def test_only_offerings_with_remote_classes_become_sessions(
    county: tuple[District, Timetable], sessions: list[LessonSession]
) -> None:
    _, timetable = county
    assert {s.offering_id for s in sessions} == {a.offering_id for a in timetable.assignments}
    for s in _english_mon3(sessions)[:1]:
        expected = sorted(
            a.class_id for a in timetable.assignments if a.offering_id == s.offering_id
        )
        assert [r.class_id for r in s.remotes] == expected
        assert len(s.remotes) == 4  # the fifth 三年级 class is unmet: the lesson is full


def test_holidays_are_skipped_and_makeup_days_follow_the_named_weekday(
    sessions: list[LessonSession],
) -> None:
    days = {s.date for s in sessions}
    assert not any("2026-10-01" <= d <= "2026-10-08" for d in days)
    mon3 = {s.date for s in _english_mon3(sessions)}
    # Sun 2026-09-27 runs Monday's timetable; Sat 2026-10-10 runs Friday's (not Monday's).
    assert "2026-09-27" in mon3
    assert "2026-10-10" not in mon3
    assert "2026-09-07" in mon3 and "2026-09-14" in mon3
    fridays = {s.date for s in sessions if s.offering_id and s.offering_id.endswith("fri5")}
    if fridays:
        assert "2026-10-10" in fridays


def test_every_session_is_on_its_weekday_within_the_term(sessions: list[LessonSession]) -> None:
    makeup = {"2026-09-27": 0, "2026-10-10": 4}
    for s in sessions:
        day = date.fromisoformat(s.date)
        follows = makeup.get(s.date, day.weekday())
        assert s.offering_id is not None
        assert s.offering_id.endswith(
            ("mon", "tue", "wed", "thu", "fri")[follows] + s.offering_id[-1]
        )
        assert date(2026, 8, 31) <= day <= date(2027, 1, 17)


def test_summer_and_winter_bell_times(sessions: list[LessonSession]) -> None:
    music = [
        s
        for s in sessions
        if s.subject == "音乐" and s.offering_id and s.offering_id.endswith("mon6")
    ]
    assert music, "王老师's Monday period 6 music lesson has remote classes"
    september = next(s for s in music if s.date == "2026-09-07")
    november = next(s for s in music if s.date == "2026-11-02")
    # Township schedule B, period 6: 15:00–15:40 in winter, 30 minutes later in summer.
    assert (_local(september.starts_at).hour, _local(september.starts_at).minute) == (15, 30)
    assert (_local(november.starts_at).hour, _local(november.starts_at).minute) == (15, 0)
    assert november.ends_at - november.starts_at == 40 * 60


def test_join_window_and_ids(sessions: list[LessonSession]) -> None:
    for s in sessions[:20]:
        assert s.opens_at == s.starts_at - 600
        assert s.closes_at == s.ends_at + 600
        assert s.room_id == s.id == f"{s.offering_id}.{s.date}"
    assert len({s.id for s in sessions}) == len(sessions)


def test_window_is_configurable(county: tuple[District, Timetable]) -> None:
    custom = materialize(*county, SessionWindow(open_before_minutes=5, close_after_minutes=2))
    assert custom[0].opens_at == custom[0].starts_at - 300
    assert custom[0].closes_at == custom[0].ends_at + 120


def test_date_range(county: tuple[District, Timetable]) -> None:
    week = materialize(*county, SessionWindow(), start=date(2026, 11, 2), end=date(2026, 11, 8))
    assert week and all("2026-11-02" <= s.date <= "2026-11-08" for s in week)
