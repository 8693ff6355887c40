"""Exact matching with HiGHS, lexicographic like Timefold's hard/medium/soft scores.

Phase 1 maximises served periods alone, so its dual bound is a proven bound on served periods
(integral objective: floor). Phase 2 keeps served >= the phase-1 result and maximises the
secondary score (continuity, overlap quality, fewer streams, kept published pairs).

Phase 1 first solves the LP relaxation: it is a proven bound on its own, and when its optimal
vertex is integral (the usual case for these matching rows) it is also the optimal MIP
solution, so the branch and bound never starts. The solver runs phase 1 of every part before
any phase 2, so a slow polish never costs a part its proven bound.
Runs in worker processes: takes and returns only plain picklable data (numpy arrays).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import highspy
import numpy as np

from scheduler.solver.arrays import BoolArray, FloatArray, IntArray, offsets, ranges
from scheduler.solver.highs import Incumbent, highs, model, run_mip
from scheduler.solver.problem import Problem

# A vertex value this close to 0 or 1 counts as integral.
INT_TOL = 1e-6
# Phase 2 (secondary score) stops at this relative gap: it is a polish, not the reported gap.
PHASE2_REL_GAP = 1e-4


@dataclass
class Part:
    """One independent part (or a bundle of small ones) with local variable indices.

    Rows are a CSR matrix (``row_start``/``row_index``/``row_value``) with bounds.
    """

    index: int  # the part's number (extract_parts order)
    n_vars: int
    is_x: BoolArray
    quality: FloatArray
    row_lower: FloatArray
    row_upper: FloatArray
    row_start: IntArray
    row_index: IntArray
    row_value: FloatArray
    start: IntArray  # local variables set in the warm start (feasible; ``with_starts``)
    variables: IntArray  # local index -> global variable index
    global_x: IntArray  # local index -> global candidate index (for x), -1 otherwise
    kept: BoolArray  # x of the published timetable (re-solve)
    demand: IntArray  # demand index of each x, -1 otherwise
    resolve: bool = False  # re-solve: phase 2 keeps the published pairs phase 1 kept

    @property
    def n_x(self) -> int:
        return int(self.is_x.sum())


@dataclass
class Phase1:
    chosen: IntArray  # local variables set to 1
    served: int
    bound: int  # proven upper bound on served periods
    optimal: bool
    seconds: float


@dataclass
class PartResult:
    part: int  # Part.index
    chosen: list[int]  # global candidate indices
    served: int
    bound: int
    optimal: bool
    seconds: float


def extract_parts(problem: Problem, groups: list[IntArray], bundle: int) -> list[Part]:
    """Local sub-problems; components smaller than ``bundle`` variables share a part."""
    groups = sorted(groups, key=len, reverse=True)
    bundles: list[IntArray] = []
    current: list[IntArray] = []
    size = 0
    for g in groups:
        if len(g) >= bundle:
            bundles.append(g)
            continue
        current.append(g)
        size += len(g)
        if size >= bundle:
            bundles.append(np.concatenate(current))
            current, size = [], 0
    if current:
        bundles.append(np.concatenate(current))
    n = problem.n_vars
    part_of = np.zeros(n, dtype=np.int64)
    local = np.zeros(n, dtype=np.int64)
    for p, idx in enumerate(bundles):
        part_of[idx] = p
        local[idx] = np.arange(len(idx), dtype=np.int64)
    # The rows of each part: those of its variables (a row's variables share a part).
    row_start = problem.row_start
    lengths = np.diff(row_start)
    flat_vars, flat_coef = problem.row_index, problem.row_value
    lower, upper = problem.row_lower, problem.row_upper
    row_part = part_of[flat_vars[row_start[:-1]]] if problem.n_rows else np.zeros(0, dtype=np.int64)
    quality = problem.quality
    kept = np.zeros(n, dtype=np.bool_)
    kept[: problem.n_x] = problem.kept
    demand_of = np.full(n, -1, dtype=np.int64)
    demand_of[: problem.n_x] = problem.demand_of
    order = np.argsort(row_part, kind="stable")
    bounds = np.searchsorted(row_part[order], np.arange(len(bundles) + 1))
    parts = []
    for p, idx in enumerate(bundles):
        mine = order[bounds[p] : bounds[p + 1]]
        lens = lengths[mine]
        take = ranges(row_start[mine], lens)  # each row's slice of the flat arrays
        is_x = idx < problem.n_x
        parts.append(
            Part(
                index=p,
                n_vars=len(idx),
                is_x=is_x,
                quality=quality[idx],
                row_lower=lower[mine],
                row_upper=upper[mine],
                row_start=offsets(lens),
                row_index=local[flat_vars[take]],
                row_value=flat_coef[take],
                start=np.zeros(0, dtype=np.int64),
                variables=idx,
                global_x=np.where(is_x, idx, -1),
                kept=kept[idx],
                demand=demand_of[idx],
                resolve=bool(problem.kept.any()),
            )
        )
    return parts


def with_starts(problem: Problem, parts: list[Part], chosen: set[int]) -> list[Part]:
    """The parts with the solution ``chosen`` (candidate indices) as their warm start."""
    active = np.zeros(problem.n_vars, dtype=np.bool_)
    if chosen:
        picked = np.fromiter(chosen, dtype=np.int64, count=len(chosen))
        active[picked] = True
        active[problem.y_of[picked]] = True
        z = problem.z_of[picked]
        active[z[z >= 0]] = True
    return [replace(p, start=np.flatnonzero(active[p.variables])) for p in parts]


def served_cost(part: Part) -> FloatArray:
    """Phase-1 objective: served periods, plus (re-solve) less than one period in total for
    keeping published pairs, so floor(bound) still bounds served periods."""
    eps = 0.5 / (int(part.kept.sum()) + 1)
    return part.is_x.astype(np.float64) + eps * part.kept


@dataclass
class Relaxation:
    """Phase 1's LP relaxation when its optimal vertex is not integral (or it did not solve):
    a proven bound on served periods (inf if none), and no solution yet."""

    bound: float
    seconds: float


def phase1_lp(part: Part, deadline: float) -> Phase1 | Relaxation:
    """The LP relaxation of phase 1: a proven bound, and the optimum when its vertex is
    integral (the usual case for these matching rows). It needs no start, so it runs while
    the greedy builds one."""
    t0 = time.perf_counter()
    h = highs(deadline - time.time(), 0.0, 0.0, deadline)
    h.passModel(model(part, served_cost(part), False))
    h.run()
    if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
        return Relaxation(math.inf, time.perf_counter() - t0)
    lp_bound = float(h.getInfo().objective_function_value)
    values = np.asarray(h.getSolution().col_value)
    frac = np.abs(values - np.round(values))
    if float(frac.max(initial=0.0)) > INT_TOL:
        return Relaxation(lp_bound, time.perf_counter() - t0)
    # Optimal and integral: it serves at least as many periods as any start (the keep bonus
    # is worth less than one period in total, see served_cost).
    chosen = np.flatnonzero(values > 0.5)
    served = int(part.is_x[chosen].sum())
    proven = min(math.floor(lp_bound + 1e-6), part.n_x)
    return Phase1(chosen, served, max(proven, served), True, time.perf_counter() - t0)


def phase1_mip(
    part: Part, relaxation: Relaxation, deadline: float, incumbent: Incumbent | None = None
) -> Phase1:
    """Phase 1 by branch and bound from ``part.start`` when the relaxation is fractional."""
    t0 = time.perf_counter()
    start = part.start
    start_served = int(part.is_x[start].sum())
    remaining = deadline - time.time()
    chosen, bound, optimal = (start, math.inf, False)
    if remaining > 0.05:
        chosen, bound, optimal = run_mip(
            part, served_cost(part), start, remaining, 0.0, 0.999, incumbent=incumbent
        )
    if int(part.is_x[chosen].sum()) < start_served:
        chosen = start
    served = int(part.is_x[chosen].sum())
    bound = min(bound, relaxation.bound)
    proven = min(math.floor(bound + 1e-6), part.n_x) if math.isfinite(bound) else part.n_x
    proven = max(proven, served)
    seconds = relaxation.seconds + time.perf_counter() - t0
    return Phase1(chosen, served, proven, optimal or proven == served, seconds)


def phase1(part: Part, deadline: float) -> Phase1:
    """Most served periods with a proven bound: LP relaxation first, MIP only if fractional."""
    first = phase1_lp(part, deadline)
    return first if isinstance(first, Phase1) else phase1_mip(part, first, deadline)


def phase2(part: Part, first: Phase1, limit: float, incumbent: Incumbent | None = None) -> IntArray:
    """Secondary score at served >= phase 1.

    A re-solve polishes only around the change: the published pairs phase 1 kept stay, and
    demands phase 1 did not touch (all their pairs published and kept) keep exactly their
    pairs; only demands that lost or gained a pair may still move.
    """
    if limit <= 0.02 or first.served == 0:
        return first.chosen
    fixed = zero = None
    if part.resolve:
        fixed = first.chosen[part.kept[first.chosen]]
        on = np.zeros(part.n_vars, dtype=np.bool_)
        on[first.chosen] = True
        moved = part.is_x & (on != part.kept)
        touched = np.isin(part.demand, np.unique(part.demand[moved]))
        zero = np.flatnonzero(part.is_x & ~touched & ~on)
        fixed = np.union1d(fixed, np.flatnonzero(part.is_x & ~touched & on))
        if not touched.any():
            return first.chosen
    polished, _, _ = run_mip(
        part,
        part.quality,
        first.chosen,
        limit,
        PHASE2_REL_GAP,
        0.0,
        floor=float(first.served),
        fixed=fixed,
        zero=zero,
        incumbent=incumbent,
    )
    if int(part.is_x[polished].sum()) >= first.served:
        return polished
    return first.chosen


def result(part: Part, first: Phase1, chosen: IntArray, seconds: float) -> PartResult:
    xs = chosen[part.is_x[chosen]]
    return PartResult(
        part=part.index,
        chosen=[int(v) for v in part.global_x[xs]],
        served=first.served,
        bound=first.bound,
        optimal=first.optimal,
        seconds=seconds,
    )


# Worker entries (scheduler/solver/workers.py): each takes ``incumbent``, where a worker
# streams the improving solutions of its branch and bound to the solving process.


def solve_phase1_lp(
    part: Part, deadline: float, incumbent: Incumbent | None = None
) -> Phase1 | Relaxation:
    """Phase 1's relaxation until ``deadline`` (wall clock, ``time.time()``); an LP has no
    incumbents to stream."""
    return phase1_lp(part, deadline)


def solve_phase1_mip(
    part: Part, relaxation: Relaxation, deadline: float, incumbent: Incumbent | None = None
) -> Phase1:
    """Phase 1 by branch and bound from the part's start."""
    return phase1_mip(part, relaxation, deadline, incumbent)


def solve_phase2(
    part: Part,
    first: Phase1,
    budget: float,
    deadline: float,
    incumbent: Incumbent | None = None,
) -> PartResult:
    """Phase 2 for at most ``budget`` seconds and never past ``deadline``."""
    t0 = time.perf_counter()
    chosen = phase2(part, first, min(budget, deadline - time.time()), incumbent)
    return result(part, first, chosen, first.seconds + time.perf_counter() - t0)


def solve_part(part: Part, time_limit: float) -> PartResult:
    """Phase 1 (served, proven bound) then phase 2 (secondary score at equal served)."""
    deadline = time.time() + time_limit
    first = phase1(part, deadline)
    return solve_phase2(part, first, deadline - time.time(), deadline)
