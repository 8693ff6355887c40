"""Fast greedy matching over the same rows the MIP uses (feasible by construction).

Order: pins first, then the scarcest demands (fewest candidates per needed period), each
taking its best feasible pair: same teacher as its other periods, better overlap, an offering
that already streams, the published pair when re-solving.
"""

from __future__ import annotations

import numpy as np

from scheduler.solver.candidates import CandidateSet
from scheduler.solver.problem import Problem
from scheduler.solver.rows import EPS, KIND


class RowState:
    """Row usage for incremental feasibility checks (plain lists: the loop is per pair)."""

    def __init__(self, problem: Problem) -> None:
        start, rows, values = problem.columns()
        self.col_start: list[int] = start.tolist()
        self.col_row: list[int] = rows.tolist()
        self.col_value: list[float] = values.tolist()
        self.usage = [0.0] * problem.n_rows
        self.limit: list[float] = (problem.row_upper + EPS).tolist()
        self.y_of: list[int] = problem.y_of.tolist()
        self.z_of: list[int] = problem.z_of.tolist()
        self.active = bytearray(problem.n_vars)
        # Rows with a negative coefficient (the y or z a pair switches on with it): only
        # there can the pair's own entry overflow while the whole delta does not. Once the
        # offering streams (y on), that is only the pair's same-teacher link row.
        row_of_entry = problem.row_of_entry()
        signed = np.zeros(problem.n_rows, dtype=np.uint8)
        signed[row_of_entry[problem.row_value < 0]] = 1
        self.signed = bytearray(signed.tobytes())
        linked = np.zeros(problem.n_rows, dtype=np.uint8)
        linked[problem.row_kind == KIND["same_teacher_link"]] = 1
        self.linked = bytearray(linked.tobytes())

    def _delta(self, i: int) -> tuple[list[int], dict[int, float]]:
        active = self.active
        new = [i]
        y, z = self.y_of[i], self.z_of[i]
        if not active[y]:
            new.append(y)
        if z >= 0 and not active[z]:
            new.append(z)
        delta: dict[int, float] = {}
        col_start, col_row, col_value = self.col_start, self.col_row, self.col_value
        for v in new:
            for k in range(col_start[v], col_start[v + 1]):
                r = col_row[k]
                delta[r] = delta.get(r, 0.0) + col_value[k]
        return new, delta

    def try_add(self, i: int) -> bool:
        active = self.active
        if active[i]:
            return False
        usage, limit = self.usage, self.limit
        z = self.z_of[i]
        if active[self.y_of[i]] and (z < 0 or active[z]):
            # Only the pair itself is new: its entries are all positive, so add them one by
            # one and undo at the first overflow (the running sums only grow: the same check
            # as on the summed delta, even where a row lists the pair twice).
            col_row, col_value = self.col_row, self.col_value
            first, end = self.col_start[i], self.col_start[i + 1]
            for k in range(first, end):
                r = col_row[k]
                usage[r] += col_value[k]
                if usage[r] > limit[r]:
                    for k2 in range(first, k + 1):
                        usage[col_row[k2]] -= col_value[k2]
                    return False
            active[i] = 1
            return True
        # Most pairs fail on a row of their own (class busy, demand served): check those
        # entries before summing the whole delta.
        col_row, col_value = self.col_row, self.col_value
        signed = self.linked if active[self.y_of[i]] else self.signed
        for k in range(self.col_start[i], self.col_start[i + 1]):
            r = col_row[k]
            if not signed[r] and usage[r] + col_value[k] > limit[r]:
                return False
        new, delta = self._delta(i)
        for r, dv in delta.items():
            if usage[r] + dv > limit[r]:
                return False
        for r, dv in delta.items():
            usage[r] += dv
        for v in new:
            active[v] = 1
        return True


def greedy(
    cs: CandidateSet, problem: Problem, prefer: set[int] | None = None, fill: bool = True
) -> set[int]:
    """Chosen candidate indices. Without ``fill``, only the pins and the preferred pairs that
    still fit (a re-solve's warm start when the MIP follows: its relaxations rarely need one)."""
    prefer = prefer or set()
    district = cs.district
    state = RowState(problem)
    active, y_of = state.active, state.y_of
    demand_of: list[int] = cs.demand.tolist()
    overlap: list[int] = cs.overlap.tolist()
    names: dict[str, int] = {}
    teacher_rank = np.fromiter(
        (names.setdefault(o.teacher, len(names)) for o in district.offerings),
        dtype=np.int64,
        count=len(district.offerings),
    )
    teacher_of: list[int] = teacher_rank[cs.offering].tolist()
    ppw = [d.periods_per_week for d in district.demands]
    chosen_teachers: list[set[int]] = [set() for _ in ppw]
    served = [0] * len(ppw)

    def rank(i: int) -> tuple[int, int, int, int, int]:
        return (
            -(i in prefer),
            -(teacher_of[i] in chosen_teachers[demand_of[i]]),
            -overlap[i],
            -active[y_of[i]],
            i,
        )

    try_add = state.try_add

    def take(i: int) -> bool:
        d = demand_of[i]
        if served[d] >= ppw[d] or not try_add(i):
            return False
        served[d] += 1
        chosen_teachers[d].add(teacher_of[i])
        return True

    row_start, row_index = problem.row_start, problem.row_index
    for r in problem.pin_rows:
        for i in sorted(row_index[row_start[r] : row_start[r + 1]].tolist(), key=rank):
            if take(i):
                break
    # Re-solve: published pairs stay unless a hard rule (or a pin) now forbids them.
    for i in sorted(prefer):
        take(i)
    if not fill:
        return _chosen(problem, active)
    starts: list[int] = cs.demand_start.tolist()
    # Scarcest first (fewest pairs per period needed), then bigger classes, then district order.
    members = np.diff(cs.demand_start)
    sizes = np.fromiter((d.class_size for d in district.demands), dtype=np.int64, count=len(ppw))
    scarcity = members / np.asarray(ppw, dtype=np.float64)
    order = np.lexsort((np.arange(len(ppw)), -sizes, scarcity))
    for di in order[members[order] > 0].tolist():
        need = ppw[di] - served[di]
        while need > 0:
            options = [i for i in range(starts[di], starts[di + 1]) if not active[i]]
            if len(options) > 1:
                options.sort(key=rank)
            if not any(take(i) for i in options):
                break
            need -= 1
    return _chosen(problem, active)


def _chosen(problem: Problem, active: bytearray) -> set[int]:
    picked = np.frombuffer(bytes(active[: problem.n_x]), dtype=np.uint8)
    return set(np.flatnonzero(picked).tolist())
