"""A small district for pairing tests: three counties, A and B in one city, C in another.

A master school in A (英语 Mon 1, 音乐 Tue 1) and one in B (英语 Wed 1); remote schools in all
three (two in C), every bell schedule the same, so only the region rules decide.
"""

from __future__ import annotations

from datetime import date, time

from scheduler.district_checks import parse_district
from scheduler.domain import (
    BellSchedule,
    Demand,
    District,
    Offering,
    Pairing,
    Party,
    Period,
    Policy,
    Region,
    School,
    Slot,
    TermCalendar,
    Weekday,
)

A, B, C = "41/4101/410101", "41/4101/410102", "41/4102/410201"


def _school(sid: str, county: str) -> School:
    province, city, code = county.split("/")
    return School(
        id=sid,
        name=sid,
        region=Region(province=province, city=city, county=code),
        uplink_mbps=100,
        downlink_mbps=100,
        bell_schedules=[BellSchedule(periods=[Period(number=1, start=time(8), end=time(8, 40))])],
    )


def _offering(oid: str, school: str, day: str, subject: str = "英语") -> Offering:
    return Offering(
        id=oid,
        teacher=f"{oid}-teacher",
        school=school,
        classroom="c",
        grade=3,
        subject=subject,
        edition="PEP",
        weekday=Weekday(day),
        period=1,
    )


def _demand(did: str, school: str, days: str, subject: str = "英语") -> Demand:
    return Demand(
        id=did,
        class_id=f"{school}-g3",
        school=school,
        grade=3,
        subject=subject,
        edition="PEP",
        periods_per_week=len(days.split()),
        free_periods=[Slot(weekday=Weekday(d), period=1) for d in days.split()],
    )


def three_counties(*pairings: Pairing, cross_region: bool = False) -> District:
    district = District(
        id="three",
        term=TermCalendar(first_day=date(2026, 9, 1), weeks=2),
        policy=Policy(cross_region=cross_region),
        schools=[
            _school("m-a", A),
            _school("m-b", B),
            _school("r-a", A),
            _school("r-b", B),
            _school("r-c", C),
            _school("r-c2", C),
        ],
        offerings=[
            _offering("a-en-mon", "m-a", "mon"),
            _offering("a-music-tue", "m-a", "tue", "音乐"),
            _offering("b-en-wed", "m-b", "wed"),
        ],
        demands=[
            _demand("r-a-en", "r-a", "wed"),
            _demand("r-b-en", "r-b", "mon"),
            _demand("r-b-music", "r-b", "tue", "音乐"),
            _demand("r-c-en", "r-c", "mon"),
            _demand("r-c2-en", "r-c2", "mon"),
        ],
        pairings=list(pairings),
    )
    return parse_district(district.model_dump_json())


def serves(region: str | None = None, school: str | None = None) -> Party:
    return Party(region=region, school=school)
