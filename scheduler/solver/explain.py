"""Reasons for unmet demand from offerings that are not candidates for it.

Offerings that are not candidates explain themselves by their rejection reason (edition,
overlap with the best found, no free period that day, region or no pairing, ban). These do
not depend on the solution, so the solver computes them while the MIP runs; ``unmet.py``
adds the reasons from the solution's binding rows.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from scheduler.domain import Demand, District, Offering, Weekday
from scheduler.solver.arrays import BoolArray
from scheduler.solver.candidates import CandidateSet, OverlapBook
from scheduler.solver.rejections import Rejection, RejectionIndex, rejections_by_code
from scheduler.timetable import Reason, ReasonCode


def slot_label(o: Offering) -> str:
    return f"{o.weekday._value_} {o.period}"


def reason(
    code: ReasonCode,
    message: str,
    offering_ids: list[str] | None = None,
    class_ids: list[str] | None = None,
    best_overlap_minutes: int | None = None,
) -> Reason:
    """A Reason with every field given (pydantic resolves default factories slowly; a province
    solve builds ~50,000 reasons)."""
    return Reason(
        code=code,
        message=message,
        offering_ids=offering_ids if offering_ids is not None else [],
        class_ids=class_ids if class_ids is not None else [],
        best_overlap_minutes=best_overlap_minutes,
    )


def _any_edition(d: Demand) -> Reason:
    return reason("no_offering", f"no offering of grade {d.grade} {d.subject} in any edition")


def _edition_reason(d: Demand, ids: list[str], offerings: dict[str, Offering]) -> Reason:
    editions = sorted({offerings[i].edition for i in ids})
    return reason(
        "no_offering",
        f"no offering of grade {d.grade} {d.subject} in edition {d.edition} "
        f"(offered only in {', '.join(editions)})",
        ids,
    )


def _overlap_reason(district: District, at: list[tuple[Offering, int]], best: int) -> Reason:
    """``at``: the offerings whose best overlap is ``best``, with the free period it is at."""
    where = "; ".join(
        f"{o.teacher} {slot_label(o)} vs free {o.weekday._value_} {period}" for o, period in at
    )
    return reason(
        "no_overlap",
        f"offerings exist but none overlaps a free period by "
        f"{district.policy.min_overlap_minutes} min: best {best} min ({where})",
        [o.id for o, _ in at],
        best_overlap_minutes=best,
    )


def _no_free_reason(no_free: list[Offering]) -> Reason:
    days = sorted({o.weekday._value_ for o in no_free})
    return reason(
        "free_periods_conflict",
        f"the class has no free period on {', '.join(days)}, when the "
        "matching offerings are taught",
        [o.id for o in no_free],
    )


def _listed_reason(code: ReasonCode, ids: list[str], label: str) -> Reason:
    return reason(code, f"offerings {', '.join(ids)} are {label}", ids)


# Offerings of regions the class may not take from, by the refusal's code (pairings.Reach).
_REGION_LABELS: dict[ReasonCode, str] = {
    "cross_region": "in another region",
    "no_partner": "at schools no pairing (结对) lets serve this class in this subject",
}


def _region_reasons(by_code: dict[str, list[str]]) -> list[Reason]:
    return [
        _listed_reason(code, by_code[code], label)
        for code, label in _REGION_LABELS.items()
        if by_code.get(code)
    ]


def _grouped_reasons(
    district: District, d: Demand, grouped: dict[str, list[Rejection]], index: RejectionIndex
) -> list[Reason]:
    if not grouped:
        return [_any_edition(d)]
    reasons: list[Reason] = []
    by_code = {code: [r.offering_id for r in found] for code, found in grouped.items()}
    offerings = index.offerings_of(d.grade, d.subject)
    if set(by_code) == {"edition"}:
        reasons.append(_edition_reason(d, by_code["edition"], offerings))
    overlaps = grouped.get("overlap", [])
    if overlaps:
        best = max(r.best_overlap for r in overlaps)
        at = [
            (offerings[r.offering_id], r.remote_period or 0)
            for r in overlaps
            if r.best_overlap == best
        ]
        reasons.append(_overlap_reason(district, at, best))
    if by_code.get("no_free_period"):
        reasons.append(_no_free_reason([offerings[i] for i in by_code["no_free_period"]]))
    if by_code.get("banned"):
        reasons.append(_listed_reason("banned", by_code["banned"], "banned by the coordinator"))
    reasons.extend(_region_reasons(by_code))
    return reasons


def no_candidate_reasons(
    district: District, d: Demand, book: OverlapBook, index: RejectionIndex
) -> list[Reason]:
    """Why the offerings of a demand's grade and subject are not candidates for it: the
    class-independent reasons of its need are built once and shared."""
    if d.class_id in index.banned_classes:
        return _grouped_reasons(district, d, rejections_by_code(district, d, book, index), index)
    need = index.static(d)
    signature = book.signature
    if need.rest_keys is None:
        need.rest_keys = [
            (o, signature[o.school], o.period, o.weekday, o.weekday._value_) for o in need.rest
        ]
    memo = need.memo.get(d.id)
    if memo is not None and (memo[0] is d or memo[0] == d):
        own = memo[1]
    else:
        own = _free_period_reasons(district, d, book, need.rest_keys)
        need.memo[d.id] = (d, own)
    edition = need.by_code.get("edition")
    # A need's offerings of other regions are refused under one code (pairings.Reach).
    refusal: ReasonCode = "no_partner" if "no_partner" in need.by_code else "cross_region"
    cross = need.by_code.get(refusal)
    if not (edition or cross or own):
        return [_any_edition(d)]
    reasons: list[Reason] = []
    if edition and not (cross or own):
        found = need.reasons.get("edition")
        if found is None:
            offerings = index.offerings_of(d.grade, d.subject)
            ids = [r.offering_id for r in edition]
            found = need.reasons["edition"] = _edition_reason(d, ids, offerings)
        reasons.append(found)
    reasons.extend(own)
    if cross:
        found = need.reasons.get(refusal)
        if found is None:
            ids = [r.offering_id for r in cross]
            found = need.reasons[refusal] = _listed_reason(refusal, ids, _REGION_LABELS[refusal])
        reasons.append(found)
    return reasons


def _free_period_reasons(
    district: District,
    d: Demand,
    book: OverlapBook,
    rest: list[tuple[Offering, int, int, Weekday, str]],
) -> list[Reason]:
    """Reasons the offerings of the class's need and region give against its free periods:
    too little overlap (the best found), no free period on their day."""
    periods: dict[str, list[int]] = {}
    for slot in d.free_periods:
        periods.setdefault(slot.weekday._value_, []).append(slot.period)
    minimum = district.policy.min_overlap_minutes
    overlap, rs = book.overlap_by_signature, book.signature[d.school]
    overlaps: list[tuple[int, int, Offering]] = []
    no_free: list[Offering] = []
    for o, ms, mp, day, day_value in rest:
        mine = periods.get(day_value)
        if not mine:
            no_free.append(o)
            continue
        best, where = max((overlap(ms, mp, rs, p, day), p) for p in mine)
        if best < minimum:
            overlaps.append((best, where, o))
    reasons: list[Reason] = []
    if overlaps:
        best = max(b for b, _, _ in overlaps)
        reasons.append(
            _overlap_reason(district, [(o, p) for b, p, o in overlaps if b == best], best)
        )
    if no_free:
        reasons.append(_no_free_reason(no_free))
    return reasons


def needs_rejections(cs: CandidateSet) -> BoolArray:
    """Per demand: whether its unmet periods are (also) explained by offerings that are not
    candidates: it has none, or they fall on fewer days than its periods a week."""
    demands = cs.district.demands
    ppw = np.fromiter((d.periods_per_week for d in demands), dtype=np.int64, count=len(demands))
    days = np.bincount(np.unique(cs.demand * 7 + cs.day) // 7, minlength=len(demands))
    return np.asarray(days < ppw, dtype=np.bool_)


def static_reasons(
    cs: CandidateSet,
    demands: Iterable[int] | None = None,
    index: RejectionIndex | None = None,
    needs: BoolArray | None = None,
) -> dict[int, list[Reason]]:
    """The reasons from rejections for the demands that need them (of ``demands``, or all).

    They do not depend on the solution, so the solver computes them while the MIP runs."""
    district = cs.district
    assert cs.book is not None
    index = index or RejectionIndex(district)
    needs = needs_rejections(cs) if needs is None else needs
    out: dict[int, list[Reason]] = {}
    for di in range(len(district.demands)) if demands is None else demands:
        if needs[di]:
            out[di] = no_candidate_reasons(district, district.demands[di], cs.book, index)
    return out
