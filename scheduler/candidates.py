"""Candidate pairs: which demand could take which offering, in which of its free periods.

Built in plain Python before any solver runs. A pair is a candidate when grade, subject and
edition match, the region policy allows it, it is not banned, and the master period overlaps
one of the class's free periods on the same weekday by at least the policy minimum (clock
times from both bell schedules). ``rejections`` recomputes, for one demand, why every other
offering of its grade and subject was rejected; explanations are derived from those.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

from scheduler.clock import SeasonTable, weekly_overlap
from scheduler.domain import Demand, District, Offering, School, Weekday


@dataclass(frozen=True)
class Candidate:
    index: int
    demand: int  # index into district.demands
    offering: int  # index into district.offerings
    weekday: Weekday
    remote_period: int
    overlap: int  # minutes, on every teaching day of the term


@dataclass(frozen=True)
class Rejection:
    offering_id: str
    code: str  # edition | banned | cross_region | no_free_period | overlap
    best_overlap: int = 0
    remote_period: int | None = None


class OverlapBook:
    """Overlap minutes cached by bell-schedule signature (many schools share a schedule)."""

    def __init__(self, district: District) -> None:
        self._seasons = SeasonTable(district.term)
        sigs: dict[str, int] = {}
        self.signature: dict[str, int] = {}
        self._representative: dict[int, School] = {}
        for school in district.schools:
            key = "|".join(s.model_dump_json() for s in school.bell_schedules)
            sig = sigs.setdefault(key, len(sigs))
            self.signature[school.id] = sig
            self._representative.setdefault(sig, school)
        self._cache: dict[tuple[int, int, int, int, Weekday], int] = {}

    def overlap(self, master: str, mp: int, remote: str, rp: int, weekday: Weekday) -> int:
        ms, rs = self.signature[master], self.signature[remote]
        key = (ms, mp, rs, rp, weekday)
        value = self._cache.get(key)
        if value is None:
            value = weekly_overlap(
                self._seasons,
                self._representative[ms],
                mp,
                self._representative[rs],
                rp,
                weekday,
            )
            self._cache[key] = value
        return value


@dataclass
class CandidateSet:
    district: District
    candidates: list[Candidate]
    by_demand: dict[int, list[int]] = field(default_factory=dict)
    book: OverlapBook | None = None

    def offering(self, c: Candidate) -> Offering:
        return self.district.offerings[c.offering]

    def demand(self, c: Candidate) -> Demand:
        return self.district.demands[c.demand]


class RegionCheck:
    """Whether the region policy lets a demand take an offering."""

    def __init__(self, district: District) -> None:
        self.any = district.policy.cross_region
        level = district.policy.region_level
        self.key = {s.id: s.region.key(level) for s in district.schools}

    def __call__(self, demand: Demand, offering: Offering) -> bool:
        return self.any or self.key[demand.school] == self.key[offering.school]


def build_candidates(district: District, book: OverlapBook | None = None) -> CandidateSet:
    book = book or OverlapBook(district)
    minimum = district.policy.min_overlap_minutes
    index: dict[tuple[int, str, str, Weekday], list[int]] = defaultdict(list)
    for oi, o in enumerate(district.offerings):
        index[(o.grade, o.subject, o.edition, o.weekday)].append(oi)
    banned = {(b.class_id, b.offering_id) for b in district.bans}
    region_ok = RegionCheck(district)
    candidates: list[Candidate] = []
    by_demand: dict[int, list[int]] = {}
    for di, d in enumerate(district.demands):
        mine: list[int] = []
        for slot in d.free_periods:
            for oi in index.get((d.grade, d.subject, d.edition, slot.weekday), ()):
                o = district.offerings[oi]
                if (d.class_id, o.id) in banned or not region_ok(d, o):
                    continue
                minutes = book.overlap(o.school, o.period, d.school, slot.period, slot.weekday)
                if minutes >= minimum:
                    mine.append(len(candidates))
                    candidates.append(
                        Candidate(len(candidates), di, oi, slot.weekday, slot.period, minutes)
                    )
        by_demand[di] = mine
    return CandidateSet(district, candidates, by_demand, book)


class RejectionIndex:
    """Offerings by grade and subject, for explaining many demands quickly."""

    def __init__(self, district: District) -> None:
        self.banned = {(b.class_id, b.offering_id) for b in district.bans}
        self.region_ok = RegionCheck(district)
        self.by_need: dict[tuple[int, str], list[Offering]] = defaultdict(list)
        for o in district.offerings:
            self.by_need[(o.grade, o.subject)].append(o)


def rejections(
    district: District, demand: Demand, book: OverlapBook, index: RejectionIndex | None = None
) -> list[Rejection]:
    """Why each offering of the demand's grade and subject is not a candidate for it."""
    index = index or RejectionIndex(district)
    banned, region_ok = index.banned, index.region_ok
    out: list[Rejection] = []
    for o in index.by_need.get((demand.grade, demand.subject), []):
        if o.edition != demand.edition:
            out.append(Rejection(o.id, "edition"))
        elif (demand.class_id, o.id) in banned:
            out.append(Rejection(o.id, "banned"))
        elif not region_ok(demand, o):
            out.append(Rejection(o.id, "cross_region"))
        else:
            slots = [s for s in demand.free_periods if s.weekday == o.weekday]
            if not slots:
                out.append(Rejection(o.id, "no_free_period"))
                continue
            best, where = max(
                (book.overlap(o.school, o.period, demand.school, s.period, o.weekday), s.period)
                for s in slots
            )
            if best < district.policy.min_overlap_minutes:
                out.append(Rejection(o.id, "overlap", best, where))
    return out
