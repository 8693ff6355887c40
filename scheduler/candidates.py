"""Candidate pairs: which demand could take which offering, in which of its free periods.

Built in plain Python before any solver runs. A pair is a candidate when grade, subject and
edition match, the region policy allows it, it is not banned, and the master period overlaps
one of the class's free periods on the same weekday by at least the policy minimum (clock
times from both bell schedules). ``rejections`` recomputes, for one demand, why every other
offering of its grade and subject was rejected; explanations are derived from those.
"""

from __future__ import annotations

import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from scheduler.clock import PeriodTimes, SeasonTable, weekly_overlap
from scheduler.domain import Ban, Demand, District, Offering, Policy, School, TermCalendar, Weekday
from scheduler.timetable import Reason

DAYS: list[Weekday] = list(Weekday)
DAY_INDEX: dict[Weekday, int] = {d: k for k, d in enumerate(DAYS)}

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Candidate:
    """One candidate pair, as a value (``CandidateSet.candidate``)."""

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


def _schedule_key(school: School) -> tuple[object, ...]:
    """Every field of a school's bell schedules, as a hashable value (equal iff equal)."""
    return tuple(
        (
            s.season,
            s.start,
            s.end,
            tuple((p.number, p.start, p.end, tuple(p.weekdays)) for p in s.periods),
        )
        for s in school.bell_schedules
    )


class OverlapBook:
    """Overlap minutes cached by bell-schedule signature (many schools share a schedule)."""

    def __init__(self, district: District) -> None:
        self._seasons = SeasonTable(district.term)
        sigs: dict[tuple[object, ...], int] = {}
        self.signature: dict[str, int] = {}
        self._representative: dict[int, School] = {}
        for school in district.schools:
            sig = sigs.setdefault(_schedule_key(school), len(sigs))
            self.signature[school.id] = sig
            self._representative.setdefault(sig, school)
        self._cache: dict[tuple[int, int, int, int, Weekday], int] = {}
        self._times: PeriodTimes = {}

    def overlap(self, master: str, mp: int, remote: str, rp: int, weekday: Weekday) -> int:
        return self.overlap_by_signature(
            self.signature[master], mp, self.signature[remote], rp, weekday
        )

    def overlap_by_signature(self, ms: int, mp: int, rs: int, rp: int, weekday: Weekday) -> int:
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
                self._times,
            )
            self._cache[key] = value
        return value


@dataclass
class CandidateSet:
    """Candidate pairs as parallel arrays, grouped by demand in district order.

    Pair ``i`` is demand ``demand[i]`` taking offering ``offering[i]`` in its free period
    ``remote_period[i]`` on ``DAYS[day[i]]``; a demand's pairs follow its free periods, then
    the offerings in district order, and are ``demand_start[d]:demand_start[d + 1]``.
    """

    district: District
    demand: IntArray
    offering: IntArray
    day: IntArray
    remote_period: IntArray
    overlap: IntArray
    demand_start: IntArray
    book: OverlapBook | None = None

    def __len__(self) -> int:
        return len(self.demand)

    def of_demand(self, di: int) -> range:
        return range(int(self.demand_start[di]), int(self.demand_start[di + 1]))

    def candidate(self, i: int) -> Candidate:
        return Candidate(
            i,
            int(self.demand[i]),
            int(self.offering[i]),
            DAYS[int(self.day[i])],
            int(self.remote_period[i]),
            int(self.overlap[i]),
        )

    def offering_of(self, i: int) -> Offering:
        return self.district.offerings[int(self.offering[i])]

    def demand_of(self, i: int) -> Demand:
        return self.district.demands[int(self.demand[i])]


def _candidate_set(
    district: District, columns: tuple[list[int], ...], counts: list[int], book: OverlapBook
) -> CandidateSet:
    demand, offering, day, period, overlap = (np.asarray(c, dtype=np.int64) for c in columns)
    start = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=start[1:])
    return CandidateSet(district, demand, offering, day, period, overlap, start, book)


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
    region_ok = RegionCheck(district)
    # Offerings by need and weekday (and region, unless cross-region matching is allowed), in
    # district order, with what the overlap lookup needs.
    index: dict[tuple[str, int, str, str, Weekday], list[tuple[int, str, int, int]]] = defaultdict(
        list
    )
    for oi, o in enumerate(district.offerings):
        region = "" if region_ok.any else region_ok.key[o.school]
        index[(region, o.grade, o.subject, o.edition, o.weekday)].append(
            (oi, o.id, book.signature[o.school], o.period)
        )
    banned: dict[str, set[str]] = defaultdict(set)
    for b in district.bans:
        banned[b.class_id].add(b.offering_id)
    overlap = book.overlap_by_signature
    # (need, region, remote bell signature) -> (weekday, remote period) -> offerings that
    # overlap enough (classes of one need share a bell schedule and their free periods).
    passing: dict[
        tuple[str, int, str, str, int], dict[tuple[Weekday, int], list[tuple[int, str, int]]]
    ] = {}
    demands: list[int] = []
    offerings: list[int] = []
    days: list[int] = []
    periods: list[int] = []
    overlaps: list[int] = []
    counts: list[int] = []
    for di, d in enumerate(district.demands):
        before = len(offerings)
        region = "" if region_ok.any else region_ok.key[d.school]
        bans = banned.get(d.class_id)
        rs = book.signature[d.school]
        need = (region, d.grade, d.subject, d.edition, rs)
        table = passing.get(need)
        if table is None:
            table = passing[need] = {}
        for slot in d.free_periods:
            weekday, rp = slot.weekday, slot.period
            found = table.get((weekday, rp))
            if found is None:
                found = table[(weekday, rp)] = [
                    (oi, oid, minutes)
                    for oi, oid, ms, mp in index.get(
                        (region, d.grade, d.subject, d.edition, weekday), ()
                    )
                    if (minutes := overlap(ms, mp, rs, rp, weekday)) >= minimum
                ]
            if not found:
                continue
            wd = DAY_INDEX[weekday]
            for oi, oid, minutes in found:
                if bans and oid in bans:
                    continue
                offerings.append(oi)
                overlaps.append(minutes)
                days.append(wd)
                periods.append(rp)
        n = len(offerings) - before
        demands.extend(itertools.repeat(di, n))
        counts.append(n)
    return _candidate_set(district, (demands, offerings, days, periods, overlaps), counts, book)


@dataclass(frozen=True)
class _Inputs:
    """What candidates depend on, as shallow copies (the models themselves are frozen)."""

    term: TermCalendar
    policy: Policy
    schools: list[School]
    offerings: list[Offering]
    demands: list[Demand]
    bans: list[Ban]

    @classmethod
    def of(cls, district: District) -> _Inputs:
        return cls(
            district.term,
            district.policy,
            list(district.schools),
            list(district.offerings),
            list(district.demands),
            list(district.bans),
        )


_last_lock = threading.Lock()
_last: list[tuple[_Inputs, CandidateSet]] = []


def _kept_offerings(before: list[Offering], after: list[Offering]) -> list[int] | None:
    """For each offering of ``before``, its index in ``after`` (-1 if gone), when ``after``
    is ``before`` with some offerings removed (same order); otherwise None."""
    remap = [-1] * len(before)
    j = 0
    for oi, o in enumerate(before):
        if j < len(after) and (after[j] is o or after[j] == o):
            remap[oi] = j
            j += 1
    return remap if j == len(after) else None


def _derive(inputs: _Inputs, old: CandidateSet, district: District) -> CandidateSet | None:
    """``build_candidates(district)`` from the set of a district that differs only by
    removed offerings (and pins, which candidates do not depend on); None otherwise.

    The candidates of the kept offerings are the same pairs in the same order (every demand's
    pairs follow its free periods, then district order): only their indices change."""
    if not (
        district.term == inputs.term
        and district.policy == inputs.policy
        and district.schools == inputs.schools
        and district.demands == inputs.demands
        and district.bans == inputs.bans
    ):
        return None
    remap = _kept_offerings(inputs.offerings, district.offerings)
    if remap is None:
        return None
    new_offering = np.asarray(remap, dtype=np.int64)[old.offering]
    keep = new_offering >= 0
    counts = np.bincount(old.demand[keep], minlength=len(district.demands))
    start = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(counts, out=start[1:])
    return CandidateSet(
        district,
        old.demand[keep],
        new_offering[keep],
        old.day[keep],
        old.remote_period[keep],
        old.overlap[keep],
        start,
        old.book,
    )


def candidates_for(district: District) -> CandidateSet:
    """``build_candidates``, derived from the previous call's set when the district only lost
    offerings or changed pins since (a re-solve after cancellations); one set is kept."""
    with _last_lock:
        last = _last[0] if _last else None
    cs = _derive(last[0], last[1], district) if last is not None else None
    if cs is None:
        cs = build_candidates(district)
    with _last_lock:
        _last[:] = [(_Inputs.of(district), cs)]
    return cs


class RejectionIndex:
    """Offerings by grade and subject, for explaining many demands quickly.

    With ``carried`` (``rejection_index_for``), a need whose offerings to check are unchanged
    since the previous solve keeps the per-class results explanations memoised for it.
    """

    def __init__(
        self, district: District, carried: dict[NeedKey, NeedOfferings] | None = None
    ) -> None:
        self.minimum = district.policy.min_overlap_minutes
        self._carried = carried or {}
        self.banned = {(b.class_id, b.offering_id) for b in district.bans}
        self.banned_classes = {b.class_id for b in district.bans}
        self.region_ok = RegionCheck(district)
        self.by_need: dict[tuple[int, str], list[Offering]] = defaultdict(list)
        for o in district.offerings:
            self.by_need[(o.grade, o.subject)].append(o)
        # (grade, subject, edition, region) -> rejections that do not depend on the class
        # (edition, cross_region) by code, and the offerings left to check against its periods.
        self._static: dict[NeedKey, NeedOfferings] = {}
        self._by_edition: dict[tuple[int, str, str], tuple[list[Rejection], list[Offering]]] = {}
        self._by_id: dict[tuple[int, str], dict[str, Offering]] = {}
        self._ids: dict[int, tuple[list[Rejection], list[str]]] = {}
        # Rejections that do not depend on the class, by (offering id, code); frozen, shared.
        self._shared: dict[tuple[str, str], Rejection] = {}

    def offerings_of(self, grade: int, subject: str) -> dict[str, Offering]:
        """Offerings of a grade and subject by id (shared: do not modify)."""
        found = self._by_id.get((grade, subject))
        if found is None:
            found = {o.id: o for o in self.by_need.get((grade, subject), [])}
            self._by_id[(grade, subject)] = found
        return found

    def ids(self, group: list[Rejection]) -> list[str]:
        """Offering ids of a group of rejections; the shared class-independent groups are
        converted once."""
        cached = self._ids.get(id(group))
        if cached is not None and cached[0] is group:
            return list(cached[1])
        ids = [r.offering_id for r in group]
        if len(group) > 8:
            self._ids[id(group)] = (group, ids)
        return list(ids)

    def static(self, demand: Demand) -> NeedOfferings:
        """Class-independent rejections of a demand's need; valid for classes without bans."""
        region = self.region_ok.key[demand.school]
        key = (demand.grade, demand.subject, demand.edition, region)
        cached = self._static.get(key)
        if cached is None:
            cached = self._static[key] = self._need_offerings(demand, region)
            before = self._carried.get(key)
            if before is not None and before.rest == cached.rest:
                cached.memo = before.memo
        return cached

    def _need_offerings(self, demand: Demand, region: str) -> NeedOfferings:
        need = (demand.grade, demand.subject, demand.edition)
        split = self._by_edition.get(need)
        if split is None:
            # Other editions (shared by every region), and this edition's offerings.
            edition: list[Rejection] = []
            same: list[Offering] = []
            for o in self.by_need.get((demand.grade, demand.subject), []):
                if o.edition != demand.edition:
                    edition.append(self._rejection(o.id, "edition"))
                else:
                    same.append(o)
            split = self._by_edition[need] = (edition, same)
        edition, same = split
        by_code: dict[str, list[Rejection]] = {}
        if edition:
            by_code["edition"] = edition
        if self.region_ok.any:
            return NeedOfferings(by_code, list(same))
        region_of = self.region_ok.key
        rest = [o for o in same if region_of[o.school] == region]
        if len(rest) < len(same):
            by_code["cross_region"] = [
                self._rejection(o.id, "cross_region") for o in same if region_of[o.school] != region
            ]
        return NeedOfferings(by_code, rest)

    def _rejection(self, offering_id: str, code: str) -> Rejection:
        found = self._shared.get((offering_id, code))
        if found is None:
            found = self._shared[(offering_id, code)] = Rejection(offering_id, code)
        return found


@dataclass
class NeedOfferings:
    """The offerings of one need (grade, subject, edition) seen from one region: those
    rejected whatever the class (by code, in district order) and those left to check
    against the class's free periods."""

    by_code: dict[str, list[Rejection]]
    rest: list[Offering]
    # What explanations derive from these alone, built once per need (explain.py).
    rest_keys: list[tuple[Offering, int, int, Weekday, str]] | None = None
    reasons: dict[str, Reason] = field(default_factory=dict)
    # Per class (demand id): the demand and the reasons its free periods give against
    # ``rest``; valid while ``rest``, the bell schedules and the minimum overlap are unchanged.
    memo: dict[str, tuple[Demand, list[Reason]]] = field(default_factory=dict)


NeedKey = tuple[int, str, str, str]  # grade, subject, edition, region


_last_index: list[tuple[OverlapBook, RejectionIndex]] = []


def rejection_index_for(district: District, book: OverlapBook) -> RejectionIndex:
    """A RejectionIndex that carries the previous solve's memoised explanations over when the
    bell schedules (the same ``book``, as ``candidates_for`` derives it) and the minimum
    overlap are unchanged; one index is kept."""
    with _last_lock:
        last = _last_index[0] if _last_index else None
    carried = None
    if (
        last is not None
        and last[0] is book
        and last[1].minimum == district.policy.min_overlap_minutes
    ):
        carried = last[1]._static
    index = RejectionIndex(district, carried)
    with _last_lock:
        _last_index[:] = [(book, index)]
    return index


def _slot_rejection(
    district: District, demand: Demand, o: Offering, book: OverlapBook
) -> Rejection | None:
    slots = [s for s in demand.free_periods if s.weekday == o.weekday]
    if not slots:
        return Rejection(o.id, "no_free_period")
    best, where = max(
        (book.overlap(o.school, o.period, demand.school, s.period, o.weekday), s.period)
        for s in slots
    )
    if best < district.policy.min_overlap_minutes:
        return Rejection(o.id, "overlap", best, where)
    return None


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
            found = _slot_rejection(district, demand, o, book)
            if found is not None:
                out.append(found)
    return out


def rejections_by_code(
    district: District, demand: Demand, book: OverlapBook, index: RejectionIndex
) -> dict[str, list[Rejection]]:
    """``rejections`` grouped by code (each group in district order); shares the
    class-independent groups between demands of the same need and region."""
    if demand.class_id in index.banned_classes:
        grouped: dict[str, list[Rejection]] = defaultdict(list)
        for r in rejections(district, demand, book, index):
            grouped[r.code].append(r)
        return dict(grouped)
    need = index.static(demand)
    out = dict(need.by_code)
    # _slot_rejection for each offering left, with the class's periods grouped by day once.
    periods: dict[str, list[int]] = {}
    for slot in demand.free_periods:
        periods.setdefault(slot.weekday._value_, []).append(slot.period)
    minimum = district.policy.min_overlap_minutes
    signature, overlap = book.signature, book.overlap_by_signature
    rs = signature[demand.school]
    for o in need.rest:
        mine = periods.get(o.weekday._value_)
        if not mine:
            found = Rejection(o.id, "no_free_period")
        else:
            ms, mp, day = signature[o.school], o.period, o.weekday
            best, where = max((overlap(ms, mp, rs, p, day), p) for p in mine)
            if best >= minimum:
                continue
            found = Rejection(o.id, "overlap", best, where)
        out.setdefault(found.code, []).append(found)
    return out
