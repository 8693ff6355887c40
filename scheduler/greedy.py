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
        self.limit = [row.upper + EPS for row in problem.rows]
        self.var_rows = problem.var_rows()
        self.implies = problem.implies
        self.active = bytearray(problem.n_vars)

    @classmethod
    def of(cls, problem: Problem, chosen: set[int]) -> RowState:
        state = cls(problem)
        for i in sorted(chosen):
            state.force(i)
        return state

    def _delta(self, i: int) -> tuple[list[int], dict[int, float]]:
        active = self.active
        new = [i, *(v for v in self.implies[i] if not active[v])]
        delta: dict[int, float] = {}
        var_rows = self.var_rows
        for v in new:
            for r, c in var_rows[v]:
                delta[r] = delta.get(r, 0.0) + c
        return new, delta

    def blockers(self, i: int) -> list[int]:
        """Rows that adding candidate ``i`` would overflow."""
        _, delta = self._delta(i)
        usage, limit = self.usage, self.limit
        return [r for r, dv in delta.items() if usage[r] + dv > limit[r]]

    def force(self, i: int) -> None:
        new, delta = self._delta(i)
        self._apply(new, delta)

    def try_add(self, i: int) -> bool:
        active = self.active
        if active[i]:
            return False
        usage, limit = self.usage, self.limit
        for v in self.implies[i]:
            if not active[v]:
                break
        else:
            # Only the pair itself is new: add its (positive) entries one by one, undoing
            # them at the first overflow. With positive coefficients the running sums only
            # grow, so this is the same check as on the summed delta (a row may list a
            # variable twice).
            entries = self.var_rows[i]
            for k, (r, c) in enumerate(entries):
                if c < 0.0:
                    break
                usage[r] += c
                if usage[r] > limit[r]:
                    for r2, c2 in entries[: k + 1]:
                        usage[r2] -= c2
                    return False
            else:
                active[i] = 1
                return True
            for r2, c2 in entries[:k]:
                usage[r2] -= c2
        new, delta = self._delta(i)
        for r, dv in delta.items():
            if usage[r] + dv > limit[r]:
                return False
        self._apply(new, delta)
        return True

    def _apply(self, new: list[int], delta: dict[int, float]) -> None:
        usage = self.usage
        for r, dv in delta.items():
            usage[r] += dv
        active = self.active
        for v in new:
            active[v] = 1


def greedy(cs: CandidateSet, problem: Problem, prefer: set[int] | None = None) -> set[int]:
    """Chosen candidate indices."""
    prefer = prefer or set()
    state = RowState(problem)
    implies, active = problem.implies, state.active
    chosen_teachers: dict[int, set[str]] = defaultdict(set)
    served: dict[int, int] = defaultdict(int)

    def rank(i: int) -> tuple[int, int, int, int, int]:
        c = cs.candidates[i]
        o = cs.offering(c)
        implied = implies[i]
        y_on = bool(implied) and bool(active[implied[0]])
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
