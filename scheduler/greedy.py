"""Fast greedy matching over the same rows the MIP uses (feasible by construction).

Order: pins first, then the scarcest demands (fewest candidates per needed period), each
taking its best feasible pair: same teacher as its other periods, better overlap, an offering
that already streams, the published pair when re-solving.
"""

from __future__ import annotations

from collections import defaultdict

from scheduler.candidates import CandidateSet
from scheduler.problem import Problem

EPS = 1e-9


class RowState:
    """Row usage for incremental feasibility checks."""

    def __init__(self, problem: Problem) -> None:
        self.problem = problem
        self.usage = [0.0] * len(problem.rows)
        self.var_rows = problem.var_rows()
        self.active = bytearray(problem.n_vars)

    @classmethod
    def of(cls, problem: Problem, chosen: set[int]) -> RowState:
        state = cls(problem)
        for i in sorted(chosen):
            state.force(i)
        return state

    def _delta(self, i: int) -> tuple[list[int], dict[int, float]]:
        new = [i, *(v for v in self.problem.implies[i] if not self.active[v])]
        delta: dict[int, float] = defaultdict(float)
        for v in new:
            for r, c in self.var_rows[v]:
                delta[r] += c
        return new, delta

    def blockers(self, i: int) -> list[int]:
        """Rows that adding candidate ``i`` would overflow."""
        _, delta = self._delta(i)
        rows = self.problem.rows
        return [r for r, dv in delta.items() if self.usage[r] + dv > rows[r].upper + EPS]

    def force(self, i: int) -> None:
        new, delta = self._delta(i)
        self._apply(new, delta)

    def try_add(self, i: int) -> bool:
        if self.active[i]:
            return False
        new, delta = self._delta(i)
        rows = self.problem.rows
        for r, dv in delta.items():
            if self.usage[r] + dv > rows[r].upper + EPS:
                return False
        self._apply(new, delta)
        return True

    def _apply(self, new: list[int], delta: dict[int, float]) -> None:
        for r, dv in delta.items():
            self.usage[r] += dv
        for v in new:
            self.active[v] = 1


def greedy(cs: CandidateSet, problem: Problem, prefer: set[int] | None = None) -> set[int]:
    """Chosen candidate indices."""
    prefer = prefer or set()
    state = RowState(problem)
    chosen_teachers: dict[int, set[str]] = defaultdict(set)
    served: dict[int, int] = defaultdict(int)

    def rank(i: int) -> tuple[int, int, int, int, int]:
        c = cs.candidates[i]
        o = cs.offering(c)
        y_on = any(state.active[v] for v in problem.implies[i][:1])
        return (
            -(i in prefer),
            -(o.teacher in chosen_teachers[c.demand]),
            -c.overlap,
            -int(y_on),
            i,
        )

    def take(i: int) -> bool:
        c = cs.candidates[i]
        if served[c.demand] >= cs.demand(c).periods_per_week or not state.try_add(i):
            return False
        served[c.demand] += 1
        chosen_teachers[c.demand].add(cs.offering(c).teacher)
        return True

    for row in problem.rows:
        if row.kind == "pin":
            for i in sorted(row.vars, key=rank):
                if take(i):
                    break
    # Re-solve: published pairs stay unless a hard rule (or a pin) now forbids them.
    for i in sorted(prefer):
        take(i)
    order = sorted(
        cs.by_demand,
        key=lambda di: (
            len(cs.by_demand[di]) / cs.district.demands[di].periods_per_week,
            -cs.district.demands[di].class_size,
            di,
        ),
    )
    for di in order:
        need = cs.district.demands[di].periods_per_week - served[di]
        while need > 0:
            options = [i for i in cs.by_demand[di] if not state.active[i]]
            if not any(take(i) for i in sorted(options, key=rank)):
                break
            need -= 1
    return {i for i in range(problem.n_x) if state.active[i]}
