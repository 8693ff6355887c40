"""The 专递课堂 timetable domain: schools, bell schedules, term calendar, offerings, demands.

JSON is the canonical format; every model here is what crosses a boundary (files, HTTP bodies,
store values). The cross-record checks a single field cannot make (unknown school ids,
duplicate ids, ...) are in ``scheduler.district_checks``, with ``parse_district``.
"""

from __future__ import annotations

from datetime import date, time
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    model_validator,
)

ID = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s/]+$")]


def _day_of_the_year(value: str) -> str:
    """MM-DD that names a real day (02-29 is one: a leap year's season may start on it)."""
    try:
        date(2000, int(value[:2]), int(value[3:]))
    except ValueError:
        raise ValueError(f"{value} is not a day of the year (MM-DD)") from None
    return value


MonthDay = Annotated[
    str,
    Field(pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$"),
    AfterValidator(_day_of_the_year),
]


class Weekday(StrEnum):
    mon = "mon"
    tue = "tue"
    wed = "wed"
    thu = "thu"
    fri = "fri"
    sat = "sat"
    sun = "sun"

    @property
    def iso(self) -> int:
        """ISO weekday number, Monday = 1."""
        return list(Weekday).index(self) + 1

    @classmethod
    def of(cls, day: date) -> Weekday:
        return list(Weekday)[day.isoweekday() - 1]


WORKDAYS = [Weekday.mon, Weekday.tue, Weekday.wed, Weekday.thu, Weekday.fri]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Region(Strict):
    province: str = Field(min_length=1, max_length=32)
    city: str = Field(min_length=1, max_length=32)
    county: str = Field(min_length=1, max_length=32)

    def key(self, level: Literal["province", "city", "county"]) -> str:
        parts = {"province": 1, "city": 2, "county": 3}[level]
        return "/".join([self.province, self.city, self.county][:parts])


class Period(Strict):
    number: int = Field(ge=1, le=20)
    start: time
    end: time
    weekdays: list[Weekday] = Field(default_factory=lambda: list(WORKDAYS), min_length=1)

    @model_validator(mode="after")
    def _ends_after_start(self) -> Period:
        if self.end <= self.start:
            raise ValueError("a period must end after it starts")
        return self

    @property
    def minutes(self) -> tuple[int, int]:
        return self.start.hour * 60 + self.start.minute, self.end.hour * 60 + self.end.minute


class BellSchedule(Strict):
    """One season's bell times; ``start``/``end`` are MM-DD (inclusive, may wrap the new year).

    A schedule without dates applies all year.
    """

    season: str = Field(default="all-year", min_length=1, max_length=32)
    start: MonthDay | None = None
    end: MonthDay | None = None
    periods: list[Period] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> BellSchedule:
        if (self.start is None) != (self.end is None):
            raise ValueError("give both start and end (MM-DD) or neither")
        # Runs for every schedule of every school (~35,000 in a large province): the common
        # case (distinct numbers, no weekday listed twice) is settled by set sizes alone, and
        # only a schedule that fails it is walked in order to name the first clash.
        if len({p.number for p in self.periods}) == len(self.periods) and all(
            len(set(p.weekdays)) == len(p.weekdays) for p in self.periods
        ):
            return self
        seen: set[tuple[int, Weekday]] = set()
        for period in self.periods:
            for day in period.weekdays:
                if (period.number, day) in seen:
                    raise ValueError(f"period {period.number} is defined twice on {day.value}")
                seen.add((period.number, day))
        return self

    def covers(self, day: date) -> bool:
        if self.start is None or self.end is None:
            return True
        md = day.strftime("%m-%d")
        if self.start <= self.end:
            return self.start <= md <= self.end
        return md >= self.start or md <= self.end

    def period(self, number: int, weekday: Weekday) -> Period | None:
        for period in self.periods:
            if period.number == number and weekday in period.weekdays:
                return period
        return None


class School(Strict):
    id: ID
    name: str = Field(min_length=1, max_length=100)
    region: Region
    uplink_mbps: float = Field(gt=0, le=100_000)
    downlink_mbps: float = Field(gt=0, le=100_000)
    bell_schedules: list[BellSchedule] = Field(min_length=1)

    def schedule_on(self, day: date) -> BellSchedule | None:
        for schedule in self.bell_schedules:
            if schedule.covers(day):
                return schedule
        return None


class DateRange(Strict):
    start: date
    end: date

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.end < self.start:
            raise ValueError("end is before start")
        return self


class MakeupDay(Strict):
    """调休: a weekend day that follows another weekday's timetable."""

    date: date
    follows: Weekday


class TermCalendar(Strict):
    first_day: date
    weeks: int = Field(ge=1, le=30)
    holidays: list[DateRange] = Field(default_factory=list)
    makeup_days: list[MakeupDay] = Field(default_factory=list)
    timezone: str = "Asia/Shanghai"


class Offering(Strict):
    """A master lesson on the master school's timetable."""

    id: ID
    teacher: str = Field(min_length=1, max_length=100)
    school: ID
    classroom: str = Field(min_length=1, max_length=100)
    grade: int = Field(ge=1, le=12)
    subject: str = Field(min_length=1, max_length=32)
    edition: str = Field(min_length=1, max_length=32)
    weekday: Weekday
    period: int = Field(ge=1, le=20)
    max_remote: int = Field(default=4, ge=1, le=16)


class Slot(Strict):
    weekday: Weekday
    period: int = Field(ge=1, le=20)


class Demand(Strict):
    """A remote class that needs a subject for n periods a week, in its free periods."""

    id: ID
    class_id: ID
    school: ID
    grade: int = Field(ge=1, le=12)
    class_size: int = Field(default=30, ge=1, le=200)
    subject: str = Field(min_length=1, max_length=32)
    edition: str = Field(min_length=1, max_length=32)
    periods_per_week: int = Field(ge=1, le=10)
    free_periods: list[Slot] = Field(min_length=1)


class Policy(Strict):
    min_overlap_minutes: int = Field(default=35, ge=1, le=240)
    one_per_day: bool = True
    same_teacher: Literal["soft", "hard"] = "soft"
    stream_mbps: float = Field(default=2.0, gt=0, le=1000)
    # Lesson rooms one region's SFU nodes host at once (the SFU nodes' own capacity unit);
    # absent = unlimited. The scheduler API fills it from the live nodes when left empty.
    sfu_capacity: dict[str, int] = Field(default_factory=dict)
    region_level: Literal["province", "city", "county"] = "county"
    # Offerings of other regions too; not consulted once the district names any pairing
    # (Pairing says what pairings mean).
    cross_region: bool = True
    teacher_weekly_streams: int = Field(default=20, ge=0, le=100)
    teacher_load_overrides: dict[str, int] = Field(default_factory=dict)

    def teacher_load(self, teacher: str) -> int:
        return self.teacher_load_overrides.get(teacher, self.teacher_weekly_streams)


class Pin(Strict):
    """This class joins this offering (hard)."""

    class_id: ID
    offering_id: ID


class Ban(Strict):
    """Never this class on this offering."""

    class_id: ID
    offering_id: ID


SubjectName = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[^;]+$")]


class Party(Strict):
    """One side of a pairing: one school (``school``), or every school of a region
    (``region``: a region key at any level, as ``Region.key`` writes it: ``"41"`` a
    province, ``"41/4117"`` a city, ``"41/4117/411721"`` a county)."""

    school: ID | None = None
    region: str | None = Field(default=None, min_length=1, max_length=100)

    @model_validator(mode="after")
    def _one_side(self) -> Party:
        if (self.school is None) == (self.region is None):
            raise ValueError("name a region or a school (exactly one)")
        return self


class Pairing(Strict):
    """结对帮扶: the master teachers of ``serving`` may teach the classes of ``served``, in
    ``subjects`` only (absent: every subject). Directed: it lets ``served`` take ``serving``'s
    offerings, never the reverse (add a second pairing for that).

    What a district's pairings mean (``scheduler.pairings.Reach``): a class may take an
    offering of its own region (``policy.region_level``) as before. Without any pairing an
    offering of another region is allowed exactly when ``policy.cross_region`` is on, as it
    always was. With at least one pairing, ``cross_region`` is no longer consulted: an
    offering of another region is allowed exactly when some pairing's ``serving`` holds the
    offering's school, its ``served`` holds the class's school, and its subjects (or all)
    include the demand's subject. So naming partners opens those cross-region matches even
    when ``cross_region`` is off (the point of naming them), and closes every other one even
    when it is on. A pairing inside one region changes nothing: same-region matching is
    always allowed (bans narrow it)."""

    serving: Party
    served: Party
    subjects: list[SubjectName] | None = Field(default=None, min_length=1, max_length=32)

    @model_validator(mode="after")
    def _two_sides(self) -> Pairing:
        if self.serving == self.served:
            raise ValueError("serving and served are the same: a pairing needs two sides")
        if self.subjects is not None and len(set(self.subjects)) < len(self.subjects):
            raise ValueError("a subject is listed twice")
        return self


class District(Strict):
    id: ID
    name: str = Field(default="", max_length=100)
    term: TermCalendar
    policy: Policy = Field(default_factory=Policy)
    schools: list[School] = Field(min_length=1)
    offerings: list[Offering] = Field(default_factory=list)
    demands: list[Demand] = Field(default_factory=list)
    pins: list[Pin] = Field(default_factory=list)
    bans: list[Ban] = Field(default_factory=list)
    pairings: list[Pairing] = Field(default_factory=list)

    def school(self, school_id: str) -> School:
        return self.school_index()[school_id]

    def school_index(self) -> dict[str, School]:
        return {s.id: s for s in self.schools}
