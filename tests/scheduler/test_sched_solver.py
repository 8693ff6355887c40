"""Solver behaviour on the demo county and hand-built districts with known optima."""

from __future__ import annotations

from datetime import date, time

from scheduler.demo import demo_district
from scheduler.domain import (
    Ban,
    BellSchedule,
    Demand,
    District,
    Offering,
    Period,
    Pin,
    Policy,
    Region,
    School,
    Slot,
    TermCalendar,
    Weekday,
)
from scheduler.solver.solve import SolveOptions, solve
from scheduler.solver.verify import violations
from scheduler.timetable import Timetable

INLINE = SolveOptions(time_limit=10, workers=0)


def reasons(tt: Timetable, demand_id: str) -> dict[str, str]:
    unmet = [u for u in tt.unmet if u.demand_id == demand_id]
    return {r.code: r.message for u in unmet for r in u.reasons}


def served_by(tt: Timetable, demand_id: str) -> list[str]:
    return sorted(a.offering_id for a in tt.assignments if a.demand_id == demand_id)


def test_demo_county_expected_answers() -> None:
    district = demo_district()
    tt = solve(district, INLINE)
    assert violations(district, tt) == []
    english = ["jd-1-g3-en", "jd-2-g3-en", "jd-3-g3-en", "jd-4-g3-en", "jd-6-g3-en"]
    served = [d for d in english if len(served_by(tt, d)) == 2]
    assert len(served) == 4
    (left,) = set(english) - set(served)
    full = [
        r for u in tt.unmet if u.demand_id == left for r in u.reasons if r.code == "offering_full"
    ]
    assert len(full) == 1 and "张老师" in full[0].message
    assert "mon 3" in full[0].message and "wed 3" in full[0].message
    assert sorted(full[0].class_ids) == sorted(d.removesuffix("-en") for d in served)
    assert (
        "no_offering" in reasons(tt, "jd-5-g4-en")
        and "外研版" in reasons(tt, "jd-5-g4-en")["no_offering"]
    )
    for demand in ("zhen-xi-g3-2-en", "jd-4-g3-art"):
        why = [r for u in tt.unmet if u.demand_id == demand for r in u.reasons]
        assert [r.code for r in why] == ["no_overlap"] and why[0].best_overlap_minutes == 30
    assert [a.teacher for a in tt.assignments if a.demand_id == "jd-3-g1-music"] == [
        "王老师",
        "王老师",
    ]
    assert tt.stats.served == tt.stats.bound  # proven optimal


def test_demo_policy_minimum_30_serves_zhen_xi() -> None:
    district = demo_district(Policy(min_overlap_minutes=30))
    tt = solve(district, INLINE)
    assert "no_overlap" not in reasons(tt, "zhen-xi-g3-2-en")
    assert "no_overlap" not in reasons(tt, "jd-4-g3-art")
    assert len(served_by(tt, "jd-4-g3-art")) == 2  # 李老师 has room
    # Without the teaching points competing for 张老师's seats, zhen-xi is served at 30 min.
    alone = district.model_copy(
        update={
            "demands": [
                d
                for d in district.demands
                if not (d.id.startswith("jd-") and d.id.endswith("g3-en"))
            ]
        }
    )
    tt2 = solve(alone, INLINE)
    assert [a.overlap_minutes for a in tt2.assignments if a.demand_id == "zhen-xi-g3-2-en"] == [
        30,
        30,
    ]


REGION = Region(province="41", city="4101", county="410101")
TERM = TermCalendar(first_day=date(2026, 9, 1), weeks=4)


def school(
    sid: str, periods: list[tuple[str, str]], *, down: float = 100, region: Region = REGION
) -> School:
    ps = [
        Period(number=n, start=time.fromisoformat(a), end=time.fromisoformat(b))
        for n, (a, b) in enumerate(periods, 1)
    ]
    return School(
        id=sid,
        name=sid,
        region=region,
        uplink_mbps=100,
        downlink_mbps=down,
        bell_schedules=[BellSchedule(periods=ps)],
    )


def offering(
    oid: str,
    teacher: str,
    sch: str,
    day: str,
    period: int,
    cap: int = 4,
    grade: int = 3,
    subject: str = "英语",
) -> Offering:
    return Offering(
        id=oid,
        teacher=teacher,
        school=sch,
        classroom="c",
        grade=grade,
        subject=subject,
        edition="PEP",
        weekday=Weekday(day),
        period=period,
        max_remote=cap,
    )


def demand(
    did: str, cls: str, sch: str, free: str, n: int = 1, subject: str = "英语", size: int = 20
) -> Demand:
    return Demand(
        id=did,
        class_id=cls,
        school=sch,
        grade=3,
        class_size=size,
        subject=subject,
        edition="PEP",
        periods_per_week=n,
        free_periods=[Slot(weekday=Weekday(s[:3]), period=int(s[3:])) for s in free.split()],
    )


def district(
    schools: list[School], offerings: list[Offering], demands: list[Demand], **kw: object
) -> District:
    return District.model_validate(
        {
            "id": "t",
            "term": TERM,
            "schools": schools,
            "offerings": offerings,
            "demands": demands,
            **kw,
        }
    )


def test_45_and_40_minute_periods_overlap_exactly_the_minimum_and_one_less() -> None:
    master = school("m", [("08:00", "08:45")])  # a 45-minute period
    exact = school("r1", [("08:10", "08:50")])  # 40 min: overlap 08:10-08:45 = 35
    short = school("r2", [("08:11", "08:51")])  # overlap 34
    d = district(
        [master, exact, short],
        [offering("o", "T", "m", "mon", 1)],
        [demand("d1", "c1", "r1", "mon1"), demand("d2", "c2", "r2", "mon1")],
    )
    tt = solve(d, INLINE)
    assert served_by(tt, "d1") == ["o"] and tt.assignments[0].overlap_minutes == 35
    why = [r for u in tt.unmet if u.demand_id == "d2" for r in u.reasons]
    assert [r.code for r in why] == ["no_overlap"] and why[0].best_overlap_minutes == 34
    relaxed = solve(d.model_copy(update={"policy": Policy(min_overlap_minutes=34)}), INLINE)
    assert relaxed.stats.served == 2


def test_known_optimum() -> None:
    # Each offering has one seat; c1 may take o1 or o2, c2 only o1, c3 only o2.
    # At most 2 periods can be served (the bound proves it); c3 is told who holds the seat.
    m, r = (
        school("m", [("08:00", "08:40"), ("09:00", "09:40")]),
        school("r", [("08:00", "08:40"), ("09:00", "09:40")]),
    )
    d = district(
        [m, r],
        [offering("o1", "A", "m", "mon", 1, cap=1), offering("o2", "B", "m", "tue", 2, cap=1)],
        [
            demand("d1", "c1", "r", "mon1 tue2", size=40),
            demand("d2", "c2", "r", "mon1", size=10),
            demand("d3", "c3", "r", "tue2", size=5),
        ],
    )
    tt = solve(d, INLINE)
    assert tt.stats.served == tt.stats.bound == 2
    # Tie on served periods: the bigger classes win (c1 40 and c2 10 pupils over c3 5).
    assert served_by(tt, "d1") == ["o2"] and served_by(tt, "d2") == ["o1"]
    full = [r for u in tt.unmet if u.demand_id == "d3" for r in u.reasons]
    assert [r.code for r in full] == ["offering_full"] and full[0].class_ids == ["c1"]


def test_pins_and_bans_are_honoured() -> None:
    base = demo_district()
    pinned = base.model_copy(
        update={"pins": [Pin(class_id="jd-6-g3", offering_id="xian-shiyan-g3-英语-mon3")]}
    )
    tt = solve(pinned, INLINE)
    assert "xian-shiyan-g3-英语-mon3" in served_by(tt, "jd-6-g3-en")
    assert violations(pinned, tt) == []
    banned = base.model_copy(
        update={"bans": [Ban(class_id="jd-1-g3", offering_id="xian-shiyan-g3-英语-mon3")]}
    )
    tt = solve(banned, INLINE)
    assert "xian-shiyan-g3-英语-mon3" not in served_by(tt, "jd-1-g3-en")
    assert violations(banned, tt) == []


def test_constraint_explanations() -> None:
    m = school("m", [("08:00", "08:40"), ("09:00", "09:40")])
    r = school("r", [("08:00", "08:40"), ("09:00", "09:40")], down=2)  # one 2 Mbps stream at a time
    far = school(
        "far", [("08:00", "08:40")], region=Region(province="42", city="4201", county="420101")
    )
    d = district(
        [m, r, far],
        [
            offering("o1", "A", "m", "mon", 1),
            offering("o2", "B", "m", "tue", 1),
            offering("o3", "C", "m", "wed", 1),
            offering("o4", "C", "m", "thu", 1),
        ],
        [
            # Same class, two subjects offered at one time: the class can sit in one.
            demand("busy-a", "c1", "r", "mon1", size=30),
            demand("busy-b", "c1", "r", "mon1", subject="英语2", size=10),
            # Another class at the same school and time as c1's lesson: downlink full.
            demand("bw", "c2", "r", "mon1"),
            # Teacher C may stream once a week.
            demand("load1", "c4", "r", "wed1", size=30),
            demand("load2", "c5", "r", "thu1", size=10),
            demand("region", "c6", "far", "mon1"),
            demand("ban", "c7", "r", "tue1"),
        ],
        policy=Policy(cross_region=False, teacher_load_overrides={"C": 1}),
        bans=[Ban(class_id="c7", offering_id="o2")],
    )
    d = d.model_copy(
        update={
            "offerings": [
                *d.offerings,
                offering("o5", "D", "m", "mon", 1).model_copy(update={"subject": "英语2"}),
            ]
        }
    )
    tt = solve(d, INLINE)
    assert violations(d, tt) == []
    assert served_by(tt, "busy-a") == ["o1"]
    assert "free_periods_conflict" in reasons(tt, "busy-b")
    assert "bandwidth" in reasons(tt, "bw")
    assert tt.stats.served == tt.stats.bound
    assert "teacher_load" in reasons(tt, "load2")
    assert "cross_region" in reasons(tt, "region")
    assert "banned" in reasons(tt, "ban")


def test_one_per_day_and_sfu_capacity_explained() -> None:
    m = school("m", [("08:00", "08:40"), ("09:00", "09:40")])
    r = school("r", [("08:00", "08:40"), ("09:00", "09:40")])
    d = district(
        [m, r],
        [
            offering("o1", "A", "m", "tue", 1),
            offering("o2", "A", "m", "tue", 2),
            offering("o3", "B", "m", "wed", 1),
            offering("o4", "C", "m", "wed", 1, subject="音乐"),
        ],
        [
            demand("day", "c1", "r", "tue1 tue2", n=2),
            demand("s1", "c2", "r", "wed1", size=30),
            demand("s2", "c3", "r", "wed1", subject="音乐"),
        ],
        policy=Policy(sfu_capacity={"41/4101/410101": 1}),
    )
    tt = solve(d, INLINE)
    assert violations(d, tt) == []
    assert len(served_by(tt, "day")) == 1 and "one_per_day" in reasons(tt, "day")
    # One lesson room at a time in the region: o3 and o4 cannot both stream on Wed 1.
    assert len(served_by(tt, "s1")) + len(served_by(tt, "s2")) == 1
    assert "sfu_capacity" in {**reasons(tt, "s1"), **reasons(tt, "s2")}


def test_resolve_without_change_changes_nothing_and_after_cancel_moves_little() -> None:
    base = demo_district()
    first = solve(base, INLINE)
    again = solve(base, INLINE, previous=first)
    assert again.assignments == first.assignments
    assert again.stats.changed == 0 and again.stats.forced == 0
    cancelled = base.model_copy(
        update={"offerings": [o for o in base.offerings if o.id != "zhen-dong-g1-音乐-mon6"]}
    )
    after = solve(cancelled, INLINE, previous=first)
    assert after.stats.forced == 2  # jd-3 and zhen-xi lost their Monday music
    assert after.stats.changed == 2
    kept = {(a.demand_id, a.offering_id) for a in after.assignments}
    assert {
        (a.demand_id, a.offering_id)
        for a in first.assignments
        if a.offering_id != "zhen-dong-g1-音乐-mon6"
    } <= kept


def test_worker_processes_match_inline_and_cancel_stops() -> None:
    import threading

    import pytest

    from scheduler.solver.parts import SolveCancelled

    d = demo_district()
    inline = solve(d, INLINE)
    parallel = solve(d, SolveOptions(time_limit=20, workers=1))
    assert parallel.assignments == inline.assignments
    flag = threading.Event()
    flag.set()
    with pytest.raises(SolveCancelled):
        solve(d, SolveOptions(workers=1), cancel=flag)
