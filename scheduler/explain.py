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

from scheduler.candidates import CandidateSet, OverlapBook, RejectionIndex, rejections_by_code
from scheduler.domain import Demand, District, Offering
from scheduler.greedy import RowState
from scheduler.problem import Problem
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


def _no_candidate_reasons(
    district: District, d: Demand, book: OverlapBook, index: RejectionIndex
) -> list[Reason]:
    grouped = rejections_by_code(district, d, book, index)
    if not grouped:
        return [
            Reason(
                code="no_offering",
                message=f"no offering of grade {d.grade} {d.subject} in any edition",
            )
        ]
    reasons: list[Reason] = []
    by_code = {code: index.ids(found) for code, found in grouped.items()}
    offerings = index.offerings_of(d.grade, d.subject)
    if set(by_code) == {"edition"}:
        editions = sorted({offerings[i].edition for i in by_code["edition"]})
        reasons.append(
            Reason(
                code="no_offering",
                message=f"no offering of grade {d.grade} {d.subject} in edition {d.edition} "
                f"(offered only in {', '.join(editions)})",
                offering_ids=by_code["edition"],
            )
        )
    overlaps = grouped.get("overlap", [])
    if overlaps:
        best = max(r.best_overlap for r in overlaps)
        at = [r for r in overlaps if r.best_overlap == best]
        where = "; ".join(
            f"{offerings[r.offering_id].teacher} {_slot(offerings[r.offering_id])} vs free "
            f"{offerings[r.offering_id].weekday._value_} {r.remote_period}"
            for r in at
        )
        reasons.append(
            Reason(
                code="no_overlap",
                message=f"offerings exist but none overlaps a free period by "
                f"{district.policy.min_overlap_minutes} min: best {best} min ({where})",
                offering_ids=[r.offering_id for r in at],
                best_overlap_minutes=best,
            )
        )
    if by_code.get("no_free_period"):
        days = sorted({offerings[i].weekday._value_ for i in by_code["no_free_period"]})
        reasons.append(
            Reason(
                code="free_periods_conflict",
                message=f"the class has no free period on {', '.join(days)}, when the "
                "matching offerings are taught",
                offering_ids=by_code["no_free_period"],
            )
        )
    for code, label in (
        ("banned", "banned by the coordinator"),
        ("cross_region", "in another region"),
    ):
        if by_code.get(code):
            reasons.append(
                Reason(
                    code="banned" if code == "banned" else "cross_region",
                    message=f"offerings {', '.join(by_code[code])} are {label}",
                    offering_ids=by_code[code],
                )
            )
    return reasons


def needs_rejections(cs: CandidateSet, di: int) -> bool:
    """Whether a demand's unmet periods are (also) explained by offerings that are not
    candidates: it has none, or they fall on fewer days than its periods a week."""
    members = cs.by_demand.get(di)
    if not members:
        return True
    candidates = cs.candidates
    return len({candidates[i].weekday for i in members}) < cs.district.demands[di].periods_per_week


def static_reasons(
    cs: CandidateSet, demands: Iterable[int] | None = None, index: RejectionIndex | None = None
) -> dict[int, list[Reason]]:
    """The reasons from rejections for the demands that need them (of ``demands``, or all).

    They do not depend on the solution, so the solver computes them while the MIP runs."""
    district = cs.district
    assert cs.book is not None
    index = index or RejectionIndex(district)
    out: dict[int, list[Reason]] = {}
    for di in range(len(district.demands)) if demands is None else demands:
        if needs_rejections(cs, di):
            out[di] = _no_candidate_reasons(district, district.demands[di], cs.book, index)
    return out


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
    state = RowState.of(problem, chosen)
    index = index or RejectionIndex(district)
    offering_index = {o.id: k for k, o in enumerate(district.offerings)}
    served: dict[int, int] = defaultdict(int)
    holders: dict[int, list[str]] = defaultdict(list)
    class_at: dict[tuple[str, str, int], str] = {}
    for i in chosen:
        c = cs.candidates[i]
        served[c.demand] += 1
        holders[c.offering].append(cs.demand(c).class_id)
        class_at[(cs.demand(c).class_id, c.weekday._value_, c.remote_period)] = cs.offering(c).id
    out: list[Unmet] = []
    for di, d in enumerate(district.demands):
        missing = d.periods_per_week - served[di]
        if missing <= 0:
            continue
        reasons: list[Reason] = []
        full: dict[str, list[Offering]] = defaultdict(list)
        grouped: dict[ReasonCode, list[str]] = defaultdict(list)
        for i in cs.by_demand.get(di, []):
            if i in chosen:
                continue
            c = cs.candidates[i]
            o = cs.offering(c)
            kinds = {problem.rows[r].kind for r in state.blockers(i)}
            if not kinds:
                grouped["solver_limit"].append(o.id)
            for kind in sorted(kinds):
                code = ROW_REASON.get(kind)
                if code == "offering_full":
                    full[o.teacher].append(o)
                elif code == "free_periods_conflict":
                    busy = class_at.get((d.class_id, c.weekday._value_, c.remote_period), "?")
                    grouped[code].append(f"{o.id} (class busy with {busy})")
                elif code is not None:
                    grouped[code].append(o.id)
        for teacher, offerings in full.items():
            uniq = {o.id: o for o in offerings}
            seats = sorted({cl for oid in uniq for cl in holders[offering_index[oid]]})
            reasons.append(
                Reason(
                    code="offering_full",
                    message=f"{teacher}'s {' / '.join(_slot(o) for o in uniq.values())} lessons are "
                    f"full (seats held by {', '.join(seats)})",
                    offering_ids=list(uniq),
                    class_ids=seats,
                )
            )
        for code, items in grouped.items():
            reasons.append(
                Reason(
                    code=code,
                    message=f"{code.replace('_', ' ')}: {', '.join(sorted(set(items)))}",
                    offering_ids=sorted({s.split(" ")[0] for s in items}),
                )
            )
        if static is not None and di in static:
            reasons.extend(static[di])
        elif needs_rejections(cs, di):
            reasons.extend(_no_candidate_reasons(district, d, cs.book, index))
        if not reasons:
            reasons.append(
                Reason(
                    code="free_periods_conflict",
                    message=f"only {len(cs.by_demand.get(di, []))} matching free periods for "
                    f"{d.periods_per_week} periods a week",
                )
            )
        out.append(
            Unmet(
                demand_id=d.id,
                class_id=d.class_id,
                subject=d.subject,
                missing_periods=missing,
                reasons=reasons,
            )
        )
    return out
