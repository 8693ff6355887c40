"""The demo county from shared/data/demo-district.md (for ``sanke serve --demo`` and tests).

One Henan county: a county experimental primary school (master, bell schedule A), two
township central schools (B), six village teaching points (C). 40 offerings a week.

Note: the source says "First day Mon 2026-09-01" but 2026-09-01 is a Tuesday. We use
2026-09-01 as the first day; week 1 is the week containing it (Mon 2026-08-31 .. Sun 09-06).
"""

from __future__ import annotations

from datetime import date, time

from scheduler.domain import (
    BellSchedule,
    DateRange,
    Demand,
    District,
    MakeupDay,
    Offering,
    Period,
    Policy,
    Region,
    School,
    Slot,
    TermCalendar,
    Weekday,
)

REGION = Region(province="41", city="4117", county="411721")

# Winter (1 Oct – 30 Apr) clock times per period; summer moves every afternoon 30 min later.
_WINTER: dict[str, list[tuple[str, str]]] = {
    "A": [("08:00", "08:40"), ("08:50", "09:30"), ("10:00", "10:40"), ("10:50", "11:30"),
          ("14:00", "14:40"), ("14:50", "15:30"), ("15:40", "16:20")],
    "B": [("08:10", "08:50"), ("09:00", "09:40"), ("10:10", "10:50"), ("11:00", "11:40"),
          ("14:10", "14:50"), ("15:00", "15:40"), ("15:50", "16:30")],
    "C": [("08:05", "08:45"), ("08:55", "09:35"), ("10:05", "10:45"), ("10:55", "11:35"),
          ("14:10", "14:50"), ("15:00", "15:40")],
}  # fmt: skip


def _t(text: str, shift: int = 0) -> time:
    h, m = map(int, text.split(":"))
    total = h * 60 + m + shift
    return time(total // 60, total % 60)


def bell_schedules(kind: str) -> list[BellSchedule]:
    out = []
    for season, start, end, shift in (
        ("winter", "10-01", "04-30", 0),
        ("summer", "05-01", "09-30", 30),
    ):
        periods = [
            Period(number=n, start=_t(a, shift if n >= 5 else 0), end=_t(b, shift if n >= 5 else 0))
            for n, (a, b) in enumerate(_WINTER[kind], start=1)
        ]
        out.append(BellSchedule(season=season, start=start, end=end, periods=periods))
    return out


def _school(sid: str, name: str, up: float, down: float, kind: str) -> School:
    return School(
        id=sid, name=name, region=REGION, uplink_mbps=up, downlink_mbps=down,
        bell_schedules=bell_schedules(kind),
    )  # fmt: skip


SCHOOLS = [
    _school("xian-shiyan", "示范县实验小学", 200, 200, "A"),
    _school("zhen-dong", "东镇中心校", 100, 100, "B"),
    _school("zhen-xi", "西镇中心校", 100, 100, "B"),
    _school("jd-1", "李庄教学点", 100, 30, "C"),
    _school("jd-2", "王营教学点", 100, 30, "C"),
    _school("jd-3", "河湾教学点", 100, 30, "C"),
    _school("jd-4", "杨树岭教学点", 100, 30, "C"),
    _school("jd-5", "北坡教学点", 50, 10, "C"),
    _school("jd-6", "南岗教学点", 50, 10, "C"),
]

# teacher, school, grade, subject, edition, slots, max remote
_OFFERINGS: list[tuple[str, str, int, str, str, str, int]] = [
    ("张老师", "xian-shiyan", 3, "英语", "人教PEP", "mon3 wed3", 4),
    ("张老师", "xian-shiyan", 4, "英语", "人教PEP", "tue3 thu3", 4),
    ("李老师", "xian-shiyan", 3, "美术", "人美版", "tue5 fri5", 3),
    ("王老师", "zhen-dong", 1, "音乐", "人音版", "mon6 thu6", 4),
    ("赵老师", "xian-shiyan", 5, "科学", "教科版", "wed4 fri4", 4),
    ("陈老师", "xian-shiyan", 5, "英语", "人教PEP", "mon1 wed1", 4),
    ("刘老师", "xian-shiyan", 6, "英语", "人教PEP", "tue1 thu1 fri2", 4),
    ("孙老师", "xian-shiyan", 4, "科学", "教科版", "mon2 thu2", 4),
    ("周老师", "xian-shiyan", 6, "科学", "教科版", "tue4 thu4", 4),
    ("吴老师", "zhen-dong", 2, "音乐", "人音版", "tue6 fri6", 4),
    ("郑老师", "zhen-dong", 3, "音乐", "人音版", "wed5 fri6", 4),
    ("冯老师", "zhen-dong", 4, "美术", "人美版", "mon5 wed6", 4),
    ("钱老师", "zhen-dong", 5, "美术", "人美版", "tue5 thu5", 4),
    ("马老师", "xian-shiyan", 2, "美术", "人美版", "mon4 thu4", 4),
    ("胡老师", "zhen-dong", 6, "音乐", "人音版", "mon5 wed5", 4),
    ("许老师", "xian-shiyan", 3, "科学", "教科版", "tue2 fri3", 4),
    ("宋老师", "xian-shiyan", 6, "美术", "人美版", "wed2 fri1", 4),
    ("唐老师", "zhen-dong", 4, "音乐", "人音版", "wed6 fri5", 4),
    ("谢老师", "xian-shiyan", 1, "美术", "人美版", "thu1", 4),
    ("黄老师", "xian-shiyan", 5, "音乐", "人音版", "mon3 thu3", 4),
]

# demand id, class id, school, grade, size, subject, edition, per week, free periods
_DEMANDS: list[tuple[str, str, str, int, int, str, str, int, str]] = [
    *[
        (f"{s}-g3-en", f"{s}-g3", s, 3, size, "英语", "人教PEP", 2, "mon3 wed3 tue1 thu2")
        for s, size in (("jd-1", 14), ("jd-2", 9), ("jd-3", 12), ("jd-4", 8), ("jd-6", 6))
    ],
    ("jd-5-g4-en", "jd-5-g4", "jd-5", 4, 11, "英语", "外研版", 2, "tue3 thu3"),
    ("zhen-xi-g3-2-en", "zhen-xi-g3-2", "zhen-xi", 3, 38, "英语", "人教PEP", 2, "mon3 wed3"),
    ("jd-4-g3-art", "jd-4-g3", "jd-4", 3, 8, "美术", "人美版", 2, "tue5 fri5"),
    ("jd-3-g1-music", "jd-3-g1", "jd-3", 1, 12, "音乐", "人音版", 2, "mon6 thu6"),
    ("zhen-xi-g1-1-music", "zhen-xi-g1-1", "zhen-xi", 1, 40, "音乐", "人音版", 2, "mon6 thu6"),
    ("jd-1-g5-sci", "jd-1-g5", "jd-1", 5, 10, "科学", "教科版", 2, "wed4 fri4"),
    ("jd-2-g5-sci", "jd-2-g5", "jd-2", 5, 7, "科学", "教科版", 2, "wed4 fri4"),
    ("jd-5-g2-music", "jd-5-g2", "jd-5", 2, 9, "音乐", "人音版", 2, "tue6 fri6"),
    ("jd-6-g4-art", "jd-6-g4", "jd-6", 4, 7, "美术", "人美版", 2, "mon5 wed6"),
    ("jd-2-g6-en", "jd-2-g6", "jd-2", 6, 12, "英语", "人教PEP", 2, "tue1 fri2"),
    ("jd-3-g4-sci", "jd-3-g4", "jd-3", 4, 10, "科学", "教科版", 2, "mon2 thu2"),
]


def _slots(text: str) -> list[Slot]:
    return [Slot(weekday=Weekday(s[:3]), period=int(s[3:])) for s in text.split()]


def demo_district(policy: Policy | None = None) -> District:
    offerings = []
    for teacher, school, grade, subject, edition, slots, cap in _OFFERINGS:
        for slot in _slots(slots):
            offerings.append(
                Offering(
                    id=f"{school}-g{grade}-{subject}-{slot.weekday.value}{slot.period}",
                    teacher=teacher, school=school, classroom=f"{grade}年级(1)班",
                    grade=grade, subject=subject, edition=edition,
                    weekday=slot.weekday, period=slot.period, max_remote=cap,
                )
            )  # fmt: skip
    demands = [
        Demand(
            id=did, class_id=cid, school=school, grade=grade, class_size=size, subject=subject,
            edition=edition, periods_per_week=n, free_periods=_slots(free),
        )
        for did, cid, school, grade, size, subject, edition, n, free in _DEMANDS
    ]  # fmt: skip
    term = TermCalendar(
        first_day=date(2026, 9, 1),
        weeks=20,
        holidays=[DateRange(start=date(2026, 10, 1), end=date(2026, 10, 8))],
        makeup_days=[
            MakeupDay(date=date(2026, 9, 27), follows=Weekday.mon),
            MakeupDay(date=date(2026, 10, 10), follows=Weekday.fri),
        ],
    )
    return District(
        id="demo-county", name="示范县", term=term, policy=policy or Policy(),
        schools=SCHOOLS, offerings=offerings, demands=demands,
    )  # fmt: skip
