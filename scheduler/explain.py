"""Reasons for unmet demand, derived from candidate rejections and the binding rows.

For a demand with missing periods: every candidate it did not get is checked against the final
solution's row usage; the rows it would overflow are the binding constraints (offering full,
class busy, bandwidth, ...). Offerings that are not candidates at all explain themselves by
their rejection reason (edition, overlap, ...). Nothing is guessed: a candidate blocked by no
row is reported as ``solver_limit``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

import numpy as np

from scheduler.candidates import (
    CandidateSet,
    OverlapBook,
    Rejection,
    RejectionIndex,
    rejections_by_code,
)
from scheduler.domain import Demand, District, Offering, Weekday
from scheduler.problem import EPS, KINDS, BoolArray, IntArray, Problem
from scheduler.timetable import Reason, ReasonCode, Unmet

ROW_REASON: dict[str, ReasonCode] = {
    "offering_capacity": "offering_full",
    "class_one_stream": "free_periods_conflict",
    "one_per_day": "one_per_day",
    "teacher_load": "teacher_load",
    "school_uplink": "bandwidth",
    "school_downlink": "bandwidth",
    "sfu_capacity": "sfu_capacity",
    "same_teacher": "same_teacher",
    "same_teacher_link": "same_teacher",
}


def _slot(o: Offering) -> str:
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
        f"{o.teacher} {_slot(o)} vs free {o.weekday._value_} {period}" for o, period in at
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
    if by_code.get("cross_region"):
        reasons.append(_listed_reason("cross_region", by_code["cross_region"], "in another region"))
    return reasons


def _no_candidate_reasons(
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
    cross = need.by_code.get("cross_region")
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
        found = need.reasons.get("cross_region")
        if found is None:
            ids = [r.offering_id for r in cross]
            found = need.reasons["cross_region"] = _listed_reason(
                "cross_region", ids, "in another region"
            )
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
            out[di] = _no_candidate_reasons(district, district.demands[di], cs.book, index)
    return out


def blocking_kinds(problem: Problem, chosen: IntArray, pairs: IntArray) -> IntArray:
    """For each of ``pairs`` (not chosen), a bit mask of the kinds (``KINDS`` order) of the
    rows that adding it to the solution ``chosen`` would overflow."""
    n_rows = problem.n_rows
    active = np.zeros(problem.n_vars, dtype=np.bool_)
    active[chosen] = True
    active[problem.y_of[chosen]] = True
    z = problem.z_of[chosen]
    active[z[z >= 0]] = True
    usage = np.bincount(
        problem.row_of_entry(),
        weights=problem.row_value * active[problem.row_index],
        minlength=n_rows,
    )
    # The variables each pair would switch on: itself, its y and z unless already on.
    k = np.arange(len(pairs), dtype=np.int64)
    y, z = problem.y_of[pairs], problem.z_of[pairs]
    new_y = ~active[y]
    new_z = (z >= 0) & ~active[np.maximum(z, 0)]
    owner = np.concatenate([k, k[new_y], k[new_z]])
    var = np.concatenate([pairs, y[new_y], z[new_z]])
    col_start, col_row, col_value = problem.columns()
    counts = col_start[var + 1] - col_start[var]
    total = int(counts.sum())
    offsets = np.zeros(len(var) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    take = np.repeat(col_start[var] - offsets[:-1], counts) + np.arange(total, dtype=np.int64)
    key = np.repeat(owner, counts) * n_rows + col_row[take]
    uniq, inverse = np.unique(key, return_inverse=True)
    delta = np.bincount(inverse.reshape(-1), weights=col_value[take], minlength=len(uniq))
    rows = uniq % n_rows
    over = usage[rows] + delta > problem.row_upper[rows] + EPS
    mask = np.zeros(len(pairs), dtype=np.int64)
    np.bitwise_or.at(mask, uniq[over] // n_rows, np.left_shift(1, problem.row_kind[rows[over]]))
    return mask


def explain_unmet(
    cs: CandidateSet,
    problem: Problem,
    chosen: set[int],
    static: dict[int, list[Reason]] | None = None,
    index: RejectionIndex | None = None,
) -> list[Unmet]:
    """Unmet demand with reasons; ``static`` holds precomputed ``static_reasons``."""
    district = cs.district
    assert cs.book is not None
    index = index or RejectionIndex(district)
    demands, offerings = district.demands, district.offerings
    picked = np.fromiter(chosen, dtype=np.int64, count=len(chosen))
    picked.sort()
    ppw = np.fromiter((d.periods_per_week for d in demands), dtype=np.int64, count=len(demands))
    served = np.bincount(cs.demand[picked], minlength=len(demands))
    short = np.flatnonzero(served < ppw)
    is_chosen = np.zeros(len(cs), dtype=np.bool_)
    is_chosen[picked] = True
    members = np.diff(cs.demand_start)
    # Every pair of a short demand that is not in the solution, by demand.
    open_pairs = np.flatnonzero(np.repeat(served < ppw, members) & ~is_chosen)
    masks: list[int] = blocking_kinds(problem, picked, open_pairs).tolist()
    holders: dict[int, list[str]] = defaultdict(list)
    class_at: dict[tuple[str, int, int], str] = {}
    for di, oi, day, period in zip(
        cs.demand[picked].tolist(),
        cs.offering[picked].tolist(),
        cs.day[picked].tolist(),
        cs.remote_period[picked].tolist(),
        strict=True,
    ):
        class_id = demands[di].class_id
        holders[oi].append(class_id)
        class_at[(class_id, day, period)] = offerings[oi].id
    blocked = _Blocked(
        masks,
        [offerings[oi] for oi in cs.offering[open_pairs].tolist()],
        cs.day[open_pairs].tolist(),
        cs.remote_period[open_pairs].tolist(),
        holders,
        class_at,
        {o.id: k for k, o in enumerate(offerings)},
    )
    pair_start = np.searchsorted(open_pairs, cs.demand_start).tolist()
    needs: list[bool] = needs_rejections(cs).tolist()
    missing: list[int] = (ppw - served).tolist()
    sizes: list[int] = members.tolist()
    static = static or {}
    out: list[Unmet] = []
    for di in short.tolist():
        d = demands[di]
        first, end = pair_start[di], pair_start[di + 1]
        reasons = blocked.reasons(d, first, end) if first < end else []
        if di in static:
            reasons.extend(static[di])
        elif needs[di]:
            reasons.extend(_no_candidate_reasons(district, d, cs.book, index))
        if not reasons:
            reasons.append(
                reason(
                    "free_periods_conflict",
                    f"only {sizes[di]} matching free periods for "
                    f"{d.periods_per_week} periods a week",
                )
            )
        out.append(
            Unmet(
                demand_id=d.id,
                class_id=d.class_id,
                subject=d.subject,
                missing_periods=missing[di],
                reasons=reasons,
            )
        )
    return out


class _Blocked:
    """The open pairs of short demands (``pair`` lists, by demand) with the kinds of the
    rows that block them in the final solution, and who holds the seats and periods."""

    def __init__(
        self,
        masks: list[int],
        offerings: list[Offering],
        days: list[int],
        periods: list[int],
        holders: dict[int, list[str]],
        class_at: dict[tuple[str, int, int], str],
        offering_index: dict[str, int],
    ) -> None:
        self.masks, self.offerings, self.days, self.periods = masks, offerings, days, periods
        self.holders, self.class_at, self.offering_index = holders, class_at, offering_index
        self._kinds: dict[int, list[str]] = {}

    def kinds(self, mask: int) -> list[str]:
        found = self._kinds.get(mask)
        if found is None:
            found = self._kinds[mask] = [n for b, n in enumerate(KINDS) if mask >> b & 1]
        return found

    def reasons(self, d: Demand, first: int, end: int) -> list[Reason]:
        """Reasons from the rows blocking pairs ``first:end`` (all of demand ``d``)."""
        full: dict[str, list[Offering]] = defaultdict(list)
        grouped: dict[ReasonCode, list[str]] = defaultdict(list)
        for k in range(first, end):
            o = self.offerings[k]
            mask = self.masks[k]
            if not mask:
                grouped["solver_limit"].append(o.id)
                continue
            for kind in self.kinds(mask):
                code = ROW_REASON.get(kind)
                if code == "offering_full":
                    full[o.teacher].append(o)
                elif code == "free_periods_conflict":
                    busy = self.class_at.get((d.class_id, self.days[k], self.periods[k]), "?")
                    grouped[code].append(f"{o.id} (class busy with {busy})")
                elif code is not None:
                    grouped[code].append(o.id)
        reasons: list[Reason] = []
        for teacher, full_offerings in full.items():
            uniq = {o.id: o for o in full_offerings}
            seats = sorted({cl for oid in uniq for cl in self.holders[self.offering_index[oid]]})
            reasons.append(
                reason(
                    "offering_full",
                    f"{teacher}'s {' / '.join(_slot(o) for o in uniq.values())} lessons "
                    f"are full (seats held by {', '.join(seats)})",
                    list(uniq),
                    seats,
                )
            )
        for code, items in grouped.items():
            reasons.append(
                reason(
                    code,
                    f"{code.replace('_', ' ')}: {', '.join(sorted(set(items)))}",
                    sorted({s.split(" ")[0] for s in items}),
                )
            )
        return reasons
