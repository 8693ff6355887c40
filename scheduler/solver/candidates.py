"""Candidate pairs: which demand could take which offering, in which of its free periods.

Built before any solver runs. A pair is a candidate when grade, subject and edition match,
the region policy and the pairings allow it (``scheduler.pairings``), it is not banned, and the master period overlaps one of the
class's free periods on the same weekday by at least the policy minimum (clock times from
both bell schedules). ``rejections.py`` says, for one demand, why every other offering of its
grade and subject is not a candidate; explanations are derived from those.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from scheduler.clock import PeriodTimes, SeasonTable, weekly_overlap
from scheduler.domain import (
    Ban,
    Demand,
    District,
    Offering,
    Pairing,
    Policy,
    School,
    TermCalendar,
    Weekday,
)
from scheduler.pairings import Reach, Sources
from scheduler.solver.arrays import IntArray, offsets

DAYS: list[Weekday] = list(Weekday)
DAY_INDEX: dict[Weekday, int] = {d: k for k, d in enumerate(DAYS)}


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

    def offering_of(self, i: int) -> Offering:
        return self.district.offerings[int(self.offering[i])]

    def demand_of(self, i: int) -> Demand:
        return self.district.demands[int(self.demand[i])]


def _candidate_set(
    district: District, columns: tuple[list[int], ...], counts: list[int], book: OverlapBook
) -> CandidateSet:
    demand, offering, day, period, overlap = (np.asarray(c, dtype=np.int64) for c in columns)
    return CandidateSet(district, demand, offering, day, period, overlap, offsets(counts), book)


# An offering as the overlap lookup needs it: index, id, bell signature, period.
_Indexed = tuple[int, str, int, int]


def _merged(lists: list[list[_Indexed]]) -> list[_Indexed]:
    """Offerings of several sources in district order, each once (sources may overlap: a
    pairing's province holds the class's own county)."""
    if len(lists) <= 1:
        return lists[0] if lists else []
    out: list[_Indexed] = []
    last = -1
    for item in heapq.merge(*lists):
        if item[0] != last:
            out.append(item)
            last = item[0]
    return out


def build_candidates(district: District, book: OverlapBook | None = None) -> CandidateSet:
    book = book or OverlapBook(district)
    minimum = district.policy.min_overlap_minutes
    reach = Reach(district)
    # Offerings by source reference (the region or school a class may take them from;
    # scheduler.pairings), need and weekday, in district order. When every region may serve
    # every other, one source holds them all.
    index: dict[tuple[str, int, str, str, Weekday], list[_Indexed]] = defaultdict(list)
    for oi, o in enumerate(district.offerings):
        entry = (oi, o.id, book.signature[o.school], o.period)
        for ref in ("*",) if reach.everywhere else reach.index_refs(o.school):
            index[(ref, o.grade, o.subject, o.edition, o.weekday)].append(entry)
    banned: dict[str, set[str]] = defaultdict(set)
    for b in district.bans:
        banned[b.class_id].add(b.offering_id)
    overlap = book.overlap_by_signature
    # (sources, need, weekday) -> the offerings of every source, merged in district order.
    merged: dict[tuple[Sources, int, str, str, Weekday], list[_Indexed]] = {}
    # (sources, need, remote bell signature) -> (weekday, remote period) -> offerings that
    # overlap enough (classes of one need share a bell schedule and their free periods).
    passing: dict[
        tuple[Sources, int, str, str, int], dict[tuple[Weekday, int], list[tuple[int, str, int]]]
    ] = {}
    demands: list[int] = []
    offerings: list[int] = []
    days: list[int] = []
    periods: list[int] = []
    overlaps: list[int] = []
    counts: list[int] = []
    for di, d in enumerate(district.demands):
        before = len(offerings)
        sources = reach.sources(d.school, d.subject)
        bans = banned.get(d.class_id)
        rs = book.signature[d.school]
        need = (sources, d.grade, d.subject, d.edition, rs)
        table = passing.get(need)
        if table is None:
            table = passing[need] = {}
        for slot in d.free_periods:
            weekday, rp = slot.weekday, slot.period
            found = table.get((weekday, rp))
            if found is None:
                at = (sources, d.grade, d.subject, d.edition, weekday)
                offered = merged.get(at)
                if offered is None:
                    offered = merged[at] = _merged(
                        [
                            index[key]
                            for ref in sources
                            if (key := (ref, d.grade, d.subject, d.edition, weekday)) in index
                        ]
                    )
                found = table[(weekday, rp)] = [
                    (oi, oid, minutes)
                    for oi, oid, ms, mp in offered
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
    pairings: list[Pairing]

    @classmethod
    def of(cls, district: District) -> _Inputs:
        return cls(
            district.term,
            district.policy,
            list(district.schools),
            list(district.offerings),
            list(district.demands),
            list(district.bans),
            list(district.pairings),
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
        and district.pairings == inputs.pairings
    ):
        return None
    remap = _kept_offerings(inputs.offerings, district.offerings)
    if remap is None:
        return None
    new_offering = np.asarray(remap, dtype=np.int64)[old.offering]
    keep = new_offering >= 0
    start = offsets(np.bincount(old.demand[keep], minlength=len(district.demands)))
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
