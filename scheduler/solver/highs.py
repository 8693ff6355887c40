"""One part as a HiGHS model, run under the caller's wall-clock deadline.

HiGHS's own ``time_limit`` is not a deadline: it overruns it (measured: a 20 s limit took
41–48 s in root-node cut generation on a province). So every run also gets

- an interrupt callback that stops HiGHS once the wall clock passes the deadline, wherever
  HiGHS polls it (simplex iterations, the MIP loop), keeping the best solution it has, and
- an improving-solution callback that hands each new incumbent to the caller (a worker sends
  it to the solving process), so that when a worker must be killed at the deadline because
  HiGHS did not poll in time, the part still keeps its best incumbent.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import highspy
import numpy as np
from highspy.highs import HighsCallbackEvent

from scheduler.solver.arrays import FloatArray, IntArray

if TYPE_CHECKING:
    from scheduler.solver.mip import Part

# Called with the chosen local variables of every improving MIP solution.
Incumbent = Callable[[IntArray], None]


def highs(
    limit: float,
    rel_gap: float,
    abs_gap: float,
    deadline: float | None = None,
    incumbent: Incumbent | None = None,
) -> highspy.Highs:
    h = highspy.Highs()  # type: ignore[no-untyped-call]
    h.setOptionValue("output_flag", False)
    h.setOptionValue("threads", 1)
    h.setOptionValue("time_limit", max(0.05, limit))
    h.setOptionValue("mip_rel_gap", rel_gap)
    h.setOptionValue("mip_abs_gap", abs_gap)
    if deadline is not None:
        end = deadline

        def stop(event: HighsCallbackEvent) -> None:
            if time.time() >= end:
                event.interrupt()

        h.cbSimplexInterrupt += stop
        h.cbIpmInterrupt += stop
        h.cbMipInterrupt += stop
    if incumbent is not None:
        report = incumbent

        def improved(event: HighsCallbackEvent) -> None:
            values = np.asarray(event.data_out.mip_solution)
            report(np.flatnonzero(values > 0.5))

        h.cbMipImprovingSolution += improved
    return h


def model(
    part: Part,
    cost: FloatArray,
    integral: bool,
    floor: float | None = None,
    fixed: IntArray | None = None,
    zero: IntArray | None = None,
) -> highspy.HighsLp:
    """The part as a HiGHS model; ``floor`` adds served >= floor, ``fixed`` columns are 1,
    ``zero`` columns are 0."""
    n = part.n_vars
    lower, upper = part.row_lower, part.row_upper
    start, index, value = part.row_start, part.row_index, part.row_value
    if floor is not None:
        xs = np.flatnonzero(part.is_x)
        lower = np.append(lower, floor)
        upper = np.append(upper, np.inf)
        start = np.append(start, start[-1] + len(xs))
        index = np.concatenate([index, xs])
        value = np.concatenate([value, np.ones(len(xs))])
    inf = highspy.kHighsInf
    lp = highspy.HighsLp()
    lp.num_col_ = n
    lp.num_row_ = len(lower)
    lp.col_cost_ = np.asarray(cost, dtype=np.float64)
    col_lower = np.zeros(n)
    if fixed is not None and len(fixed):
        col_lower[fixed] = 1.0
    lp.col_lower_ = col_lower
    col_upper = np.ones(n)
    if zero is not None and len(zero):
        col_upper[zero] = 0.0
    lp.col_upper_ = col_upper
    lp.row_lower_ = np.maximum(lower, -inf)
    lp.row_upper_ = np.minimum(upper, inf)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.num_col_ = n
    lp.a_matrix_.num_row_ = len(lower)
    lp.a_matrix_.start_ = start.astype(np.int32)
    lp.a_matrix_.index_ = index.astype(np.int32)
    lp.a_matrix_.value_ = value.astype(np.float64)
    if integral:
        lp.integrality_ = [highspy.HighsVarType.kInteger] * n
    lp.sense_ = highspy.ObjSense.kMaximize
    return lp


def run_mip(
    part: Part,
    cost: FloatArray,
    start: IntArray,
    limit: float,
    rel_gap: float,
    abs_gap: float,
    floor: float | None = None,
    fixed: IntArray | None = None,
    zero: IntArray | None = None,
    incumbent: Incumbent | None = None,
) -> tuple[IntArray, float, bool]:
    """Chosen variables, dual bound (inf if none), optimal; the start if nothing better.

    ``limit`` seconds from now is also the wall-clock deadline the interrupt callback keeps.
    """
    t0 = time.perf_counter()
    h = highs(limit, rel_gap, abs_gap, time.time() + limit, incumbent)
    h.passModel(model(part, cost, True, floor, fixed, zero))
    if len(start):
        sol = highspy.HighsSolution()
        values = np.zeros(part.n_vars)
        values[start] = 1.0
        sol.col_value = list(values)
        sol.value_valid = True
        h.setSolution(sol)
    h.run()
    info = h.getInfo()
    optimal = h.getModelStatus() == highspy.HighsModelStatus.kOptimal
    bound = float(info.mip_dual_bound) if not optimal else float(info.objective_function_value)
    if not math.isfinite(bound) or abs(bound) >= highspy.kHighsInf:
        bound = math.inf
    if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
        return start, bound, False
    values = np.asarray(h.getSolution().col_value)
    chosen = np.flatnonzero(values > 0.5)
    if len(start) and float(cost[chosen].sum()) < info.objective_function_value - 1e-6:
        # Seen with highspy 1.16: after setSolution the returned values can be the start
        # while the reported objective is the better incumbent; solve again without it.
        # The retry only gets what is left of the limit (it falls back to the start).
        left = limit - (time.perf_counter() - t0)
        if left <= 0.05:
            return start, bound, False
        empty = np.zeros(0, dtype=np.int64)
        return run_mip(part, cost, empty, left, rel_gap, abs_gap, floor, fixed, zero, incumbent)
    return chosen, bound, optimal
