"""Why offerings are not candidates for a demand (edition, ban, region or no pairing, no free
period that day, too little overlap with the best found), for explanations of unmet demand.

``RejectionIndex`` shares what does not depend on the class between the demands of one need
and the same sources (their region and the pairings serving it: ``scheduler.pairings``), and
carries the per-class results over from the previous solve when the offerings to check, the
bell schedules and the minimum overlap are unchanged (``rejection_index_for``).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field

from scheduler.domain import Demand, District, Offering, Weekday
from scheduler.pairings import Reach, Sources
from scheduler.solver.candidates import OverlapBook
from scheduler.timetable import Reason


@dataclass(frozen=True)
class Rejection:
    offering_id: str
    code: str  # edition | banned | cross_region | no_partner | no_free_period | overlap
    best_overlap: int = 0
    remote_period: int | None = None


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
        self.reach = Reach(district)
        self.by_need: dict[tuple[int, str], list[Offering]] = defaultdict(list)
        for o in district.offerings:
            self.by_need[(o.grade, o.subject)].append(o)
        # (grade, subject, edition, sources) -> rejections that do not depend on the class
        # (edition, cross_region or no_partner) by code, and the offerings left to check
        # against its periods.
        self._static: dict[NeedKey, NeedOfferings] = {}
        self._by_edition: dict[tuple[int, str, str], tuple[list[Rejection], list[Offering]]] = {}
        self._by_id: dict[tuple[int, str], dict[str, Offering]] = {}
        # Rejections that do not depend on the class, by (offering id, code); frozen, shared.
        self._shared: dict[tuple[str, str], Rejection] = {}

    def offerings_of(self, grade: int, subject: str) -> dict[str, Offering]:
        """Offerings of a grade and subject by id (shared: do not modify)."""
        found = self._by_id.get((grade, subject))
        if found is None:
            found = {o.id: o for o in self.by_need.get((grade, subject), [])}
            self._by_id[(grade, subject)] = found
        return found

    def static(self, demand: Demand) -> NeedOfferings:
        """Class-independent rejections of a demand's need; valid for classes without bans."""
        sources = self.reach.sources(demand.school, demand.subject)
        key = (demand.grade, demand.subject, demand.edition, sources)
        cached = self._static.get(key)
        if cached is None:
            cached = self._static[key] = self._need_offerings(demand, sources)
            before = self._carried.get(key)
            if before is not None and before.rest == cached.rest:
                cached.memo = before.memo
        return cached

    def _need_offerings(self, demand: Demand, sources: Sources) -> NeedOfferings:
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
        serves = self.reach.serves
        rest = [o for o in same if serves(sources, o.school)]
        if len(rest) < len(same):
            refusal = self.reach.refusal
            by_code[refusal] = [
                self._rejection(o.id, refusal) for o in same if not serves(sources, o.school)
            ]
        return NeedOfferings(by_code, rest)

    def _rejection(self, offering_id: str, code: str) -> Rejection:
        found = self._shared.get((offering_id, code))
        if found is None:
            found = self._shared[(offering_id, code)] = Rejection(offering_id, code)
        return found


@dataclass
class NeedOfferings:
    """The offerings of one need (grade, subject, edition) seen from one set of sources: those
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


NeedKey = tuple[int, str, str, Sources]  # grade, subject, edition, sources


_last_index_lock = threading.Lock()
_last_index: list[tuple[OverlapBook, RejectionIndex]] = []


def rejection_index_for(district: District, book: OverlapBook) -> RejectionIndex:
    """A RejectionIndex that carries the previous solve's memoised explanations over when the
    bell schedules (the same ``book``, as ``candidates_for`` derives it) and the minimum
    overlap are unchanged; one index is kept."""
    with _last_index_lock:
        last = _last_index[0] if _last_index else None
    carried = None
    if (
        last is not None
        and last[0] is book
        and last[1].minimum == district.policy.min_overlap_minutes
    ):
        carried = last[1]._static
    index = RejectionIndex(district, carried)
    with _last_index_lock:
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
    banned, reach = index.banned, index.reach
    out: list[Rejection] = []
    for o in index.by_need.get((demand.grade, demand.subject), []):
        if o.edition != demand.edition:
            out.append(Rejection(o.id, "edition"))
        elif (demand.class_id, o.id) in banned:
            out.append(Rejection(o.id, "banned"))
        elif not reach.allows(demand.school, demand.subject, o.school):
            out.append(Rejection(o.id, reach.refusal))
        else:
            found = _slot_rejection(district, demand, o, book)
            if found is not None:
                out.append(found)
    return out


def rejections_by_code(
    district: District, demand: Demand, book: OverlapBook, index: RejectionIndex
) -> dict[str, list[Rejection]]:
    """``rejections`` grouped by code, each group in district order. (Classes without bans
    take the shared per-need path in explain.py instead.)"""
    grouped: dict[str, list[Rejection]] = defaultdict(list)
    for r in rejections(district, demand, book, index):
        grouped[r.code].append(r)
    return dict(grouped)
