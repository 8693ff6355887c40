"""Exact matching with HiGHS, lexicographic like Timefold's hard/medium/soft scores.

Phase 1 maximises served periods alone, so its dual bound is a proven bound on served periods
(integral objective: floor). Phase 2 keeps served >= the phase-1 result and maximises the
secondary score (continuity, overlap quality, fewer streams, kept published pairs).
Runs in worker processes: takes and returns only plain picklable data.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import highspy
import numpy as np

from scheduler.problem import Problem, Row

# Share of a part's time limit for phase 1; phase 2 polishes within the rest.
PHASE1_SHARE = 0.85


@dataclass
class Part:
    """One independent part (or a bundle of small ones) with local variable indices."""

    n_vars: int
    is_x: list[bool]
    quality: list[float]
    rows: list[Row]
    start: list[int]  # local variables set in the warm start (feasible)
    global_x: list[int]  # local index -> global candidate index (for x), -1 otherwise
    kept: list[bool]  # x of the published timetable (re-solve)


@dataclass
class PartResult:
    chosen: list[int]  # global candidate indices
    served: int
    bound: int
    optimal: bool
    seconds: float


def extract_parts(
    problem: Problem, groups: list[list[int]], start: set[int], bundle: int
) -> list[Part]:
    """Local sub-problems; components smaller than ``bundle`` variables share a part."""
    groups = sorted(groups, key=len, reverse=True)
    bundles: list[list[int]] = []
    current: list[int] = []
    for g in groups:
        if len(g) >= bundle:
            bundles.append(g)
            continue
        current.extend(g)
        if len(current) >= bundle:
            bundles.append(current)
            current = []
    if current:
        bundles.append(current)
    part_of = [0] * problem.n_vars
    local = [0] * problem.n_vars
    for p, vars_ in enumerate(bundles):
        for j, v in enumerate(vars_):
            part_of[v] = p
            local[v] = j
    rows: list[list[Row]] = [[] for _ in bundles]
    for row in problem.rows:
        p = part_of[row.vars[0]]
        rows[p].append(
            Row(row.kind, row.key, row.lower, row.upper, [local[v] for v in row.vars], row.coefs)
        )
    active: set[int] = set(start)
    for i in start:
        active.update(problem.implies[i])
    parts = []
    for p, vars_ in enumerate(bundles):
        parts.append(
            Part(
                n_vars=len(vars_),
                is_x=[v < problem.n_x for v in vars_],
                quality=[problem.quality[v] for v in vars_],
                rows=rows[p],
                start=[local[v] for v in vars_ if v in active],
                global_x=[v if v < problem.n_x else -1 for v in vars_],
                kept=[v in problem.kept for v in vars_],
            )
        )
    return parts


def _model(part: Part, cost: list[float], extra: Row | None) -> highspy.HighsLp:
    rows = [*part.rows, extra] if extra is not None else part.rows
    lp = highspy.HighsLp()
    lp.num_col_ = part.n_vars
    lp.num_row_ = len(rows)
    lp.col_cost_ = np.array(cost, dtype=np.float64)
    lp.col_lower_ = np.zeros(part.n_vars)
    lp.col_upper_ = np.ones(part.n_vars)
    inf = highspy.kHighsInf
    lp.row_lower_ = np.array([max(r.lower, -inf) for r in rows], dtype=np.float64)
    lp.row_upper_ = np.array([min(r.upper, inf) for r in rows], dtype=np.float64)
    starts = [0]
    index: list[int] = []
    value: list[float] = []
    for r in rows:
        index.extend(r.vars)
        value.extend(r.coefs)
        starts.append(len(index))
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = part.n_vars
    lp.a_matrix_.num_row_ = len(rows)
    lp.a_matrix_.start_ = np.array(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.array(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.array(value, dtype=np.float64)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * part.n_vars
    lp.sense_ = highspy.ObjSense.kMaximize
    return lp


def _run(
    part: Part, cost: list[float], extra: Row | None, start: list[int], limit: float, abs_gap: float
) -> tuple[list[int], float, bool]:
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", max(0.05, limit))
    h.setOptionValue("mip_rel_gap", 0.0 if abs_gap else 1e-6)
    if abs_gap:
        h.setOptionValue("mip_abs_gap", abs_gap)
    h.passModel(_model(part, cost, extra))
    if start:
        sol = highspy.HighsSolution()
        values = [0.0] * part.n_vars
        for v in start:
            values[v] = 1.0
        sol.col_value = values
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    info = h.getInfo()
    status = h.getModelStatus()
    optimal = status == highspy.HighsModelStatus.kOptimal
    if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        return start, math.inf, False
    values = h.getSolution().col_value
    chosen = [v for v in range(part.n_vars) if values[v] > 0.5]
    if start and sum(cost[v] for v in chosen) < info.objective_function_value - 1e-6:
        # Seen with highspy 1.16: after setSolution the returned values can be the start
        # while the reported objective is the better incumbent; solve again without it.
        return _run(part, cost, extra, [], limit, abs_gap)
    bound = float(info.objective_function_value) if optimal else float(info.mip_dual_bound)
    return chosen, bound, optimal


def solve_part(part: Part, time_limit: float) -> PartResult:
    """Phase 1 (served, proven bound) then phase 2 (secondary score at equal served)."""
    t0 = time.perf_counter()
    # Re-solve: phase 1 also prefers published pairs, by less than one period in total, so
    # floor(dual bound) still bounds served periods and a timed-out part moves little.
    eps = 0.5 / (sum(part.kept) + 1)
    served_cost = [
        (1.0 if x else 0.0) + (eps if k else 0.0) for x, k in zip(part.is_x, part.kept, strict=True)
    ]

    def served(chosen: list[int]) -> int:
        return sum(1 for v in chosen if part.is_x[v])

    start_served = served(part.start)
    chosen, bound, optimal = _run(
        part, served_cost, None, part.start, time_limit * PHASE1_SHARE, 0.999
    )
    if served(chosen) < start_served:
        chosen = part.start
    best = served(chosen)
    proven = (
        min(math.floor(bound + 1e-6), sum(part.is_x)) if math.isfinite(bound) else sum(part.is_x)
    )
    proven = max(proven, best)
    remaining = time_limit - (time.perf_counter() - t0)
    if remaining > 0.02 and best > 0:
        keep = Row(
            "served_floor",
            "phase1",
            float(best),
            math.inf,
            [v for v in range(part.n_vars) if part.is_x[v]],
            [1.0] * sum(part.is_x),
        )
        polished, _, _ = _run(part, part.quality, keep, chosen, remaining, 0.0)
        if served(polished) >= best:
            chosen = polished
    return PartResult(
        chosen=[part.global_x[v] for v in chosen if part.is_x[v]],
        served=best,
        bound=proven,
        optimal=optimal or proven == best,
        seconds=time.perf_counter() - t0,
    )


def solve_parts(parts: list[Part], deadline: float) -> list[PartResult]:
    """Solve several parts in one worker until ``deadline`` (wall clock, ``time.time()``)."""
    results = []
    total = sum(p.n_vars for p in parts) or 1
    for p in parts:
        share = max(0.05, (deadline - time.time()) * p.n_vars / total)
        total -= p.n_vars
        results.append(solve_part(p, share))
    return results
