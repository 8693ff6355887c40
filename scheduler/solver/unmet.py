"""Unmet demand with reasons derived from the solution's binding rows.

For a demand with missing periods, every candidate pair it did not get is checked against the
solution's row usage: the rows it would overflow are the binding constraints (offering full,
class busy, bandwidth, ...). Nothing is guessed: a pair blocked by no row is reported as
``solver_limit``. Offerings that are not candidates add their rejection reasons
(``explain.py``).

Rows never span two parts of the MIP, so a demand can be explained as soon as every part
holding its pairs has its final solution: the solver explains part by part while the other
parts still solve (``UnmetExplainer``).

The job's time limit bounds explaining too (at 80,000 classes explaining everything took
longer than the solve): ``finish`` works a slice of demands at a time and, at the deadline,
gives each demand still waiting one ``not_explained`` reason instead of its real ones. A solve
job then explains those after its result is stored (``explain_late``), and replaces them.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable

import numpy as np

from scheduler.domain import Demand, Offering
from scheduler.solver.arrays import BoolArray, IntArray, ranges
from scheduler.solver.candidates import CandidateSet
from scheduler.solver.explain import needs_rejections, no_candidate_reasons, reason, slot_label
from scheduler.solver.problem import Problem
from scheduler.solver.rejections import RejectionIndex
from scheduler.solver.rows import EPS, KINDS
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
# Demands explained per slice: small enough that one slice past the deadline is a fraction of
# a second even at province scale, large enough to keep the per-slice numpy work amortised.
SLICE = 2000
# Per slice while the workers solve: the worker loop checks deadlines between slices.
IDLE_SLICE = 300
NOT_EXPLAINED = (
    "not explained in time: the time limit ended before this demand's reasons were worked out"
)


def blocking_kinds(problem: Problem, active: BoolArray, pairs: IntArray) -> IntArray:
    """For each of ``pairs`` (not in the solution whose variables are ``active``), a bit mask
    of the kinds (``KINDS`` order) of the rows that switching it on would overflow."""
    n_rows = problem.n_rows
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
    take = ranges(col_start[var], counts)
    key = np.repeat(owner, counts) * n_rows + col_row[take]
    uniq, inverse = np.unique(key, return_inverse=True)
    delta = np.bincount(inverse.reshape(-1), weights=col_value[take], minlength=len(uniq))
    rows = uniq % n_rows
    over = usage[rows] + delta > problem.row_upper[rows] + EPS
    mask = np.zeros(len(pairs), dtype=np.int64)
    np.bitwise_or.at(mask, uniq[over] // n_rows, np.left_shift(1, problem.row_kind[rows[over]]))
    return mask


def active_of(problem: Problem, chosen: IntArray) -> BoolArray:
    """The variables a set of pairs switches on: the pairs, their y and z."""
    active = np.zeros(problem.n_vars, dtype=np.bool_)
    _switch_on(problem, active, chosen)
    return active


def _switch_on(problem: Problem, active: BoolArray, chosen: IntArray) -> None:
    active[chosen] = True
    active[problem.y_of[chosen]] = True
    z = problem.z_of[chosen]
    active[z[z >= 0]] = True


class UnmetExplainer:
    """Explains unmet demand part by part (``part_done``, then ``work`` while other parts
    solve), or all at once (``explain_unmet``). ``pair_part`` gives each pair's part."""

    def __init__(
        self,
        cs: CandidateSet,
        problem: Problem,
        pair_part: IntArray,
        n_parts: int,
        static: dict[int, list[Reason]],
        index: RejectionIndex,
    ) -> None:
        self.cs, self.problem, self.static, self.index = cs, problem, static, index
        district = cs.district
        self.demands, self.offerings = district.demands, district.offerings
        self.offering_index = {o.id: k for k, o in enumerate(self.offerings)}
        n = len(self.demands)
        self.ppw: list[int] = [d.periods_per_week for d in self.demands]
        self._ppw = np.asarray(self.ppw, dtype=np.int64)
        self.members: list[int] = np.diff(cs.demand_start).tolist()
        self.needs: list[bool] = needs_rejections(cs).tolist()
        self.served = np.zeros(n, dtype=np.int64)
        self.active = np.zeros(problem.n_vars, dtype=np.bool_)
        self.chosen = np.zeros(len(cs), dtype=np.bool_)
        self.holders: dict[int, list[str]] = defaultdict(list)
        self.class_at: dict[tuple[str, int, int], str] = {}
        # Parts left before a demand's pairs are final; demands without pairs are ready.
        pairs = np.unique(cs.demand * (n_parts + 1) + pair_part)
        pair_demand = pairs // (n_parts + 1)
        self.left = np.bincount(pair_demand, minlength=n)
        by_part = np.argsort(pairs % (n_parts + 1), kind="stable")
        bounds = np.searchsorted((pairs % (n_parts + 1))[by_part], np.arange(n_parts + 1))
        self.part_demands = [
            pair_demand[by_part[bounds[p] : bounds[p + 1]]] for p in range(n_parts)
        ]
        self.ready: list[int] = np.flatnonzero(self.left == 0).tolist()
        self.explained: dict[int, Unmet] = {}
        self.unexplained = 0
        self.late: list[int] = []  # the demands ``finish`` left not_explained

    def part_done(self, part: int, chosen: list[int]) -> None:
        """Part ``part``'s final solution: ``chosen`` pairs."""
        picked = np.asarray(chosen, dtype=np.int64)
        _switch_on(self.problem, self.active, picked)
        self.chosen[picked] = True
        cs = self.cs
        np.add.at(self.served, cs.demand[picked], 1)
        for di, oi, day, period in zip(
            cs.demand[picked].tolist(),
            cs.offering[picked].tolist(),
            cs.day[picked].tolist(),
            cs.remote_period[picked].tolist(),
            strict=True,
        ):
            class_id = self.demands[di].class_id
            self.holders[oi].append(class_id)
            self.class_at[(class_id, day, period)] = self.offerings[oi].id
        demands = self.part_demands[part]
        self.left[demands] -= 1
        self.ready.extend(demands[self.left[demands] == 0].tolist())

    def work(self, limit: int | None = None) -> bool:
        """Explain the demands whose parts are all final (at most ``limit`` of them, the rest
        stay ready); whether there were any."""
        if not self.ready:
            return False
        cut = len(self.ready) if limit is None else limit
        ready = np.asarray(self.ready[:cut], dtype=np.int64)
        self.ready = self.ready[cut:]
        cs = self.cs
        ready.sort()
        served = self.served[ready]
        short = ready[served < self._ppw[ready]]
        if not len(short):
            return True
        # Every pair of a short demand that is not in the solution, by demand.
        starts, ends = cs.demand_start[short], cs.demand_start[short + 1]
        pairs = ranges(starts, ends - starts)
        open_pairs = pairs[~self.chosen[pairs]]
        blocked = _Blocked(
            blocking_kinds(self.problem, self.active, open_pairs).tolist(),
            [self.offerings[oi] for oi in cs.offering[open_pairs].tolist()],
            cs.day[open_pairs].tolist(),
            cs.remote_period[open_pairs].tolist(),
            self.holders,
            self.class_at,
            self.offering_index,
        )
        first = np.searchsorted(open_pairs, starts).tolist()
        end = np.searchsorted(open_pairs, ends).tolist()
        for k, di in enumerate(short.tolist()):
            self.explained[di] = self._unmet(di, blocked, first[k], end[k])
        return True

    def finish(self, deadline: float | None = None) -> list[Unmet]:
        """Every unmet demand in district order (all parts must be done). Past ``deadline``
        (``time.monotonic``) the demands not yet explained get a ``not_explained`` reason;
        ``self.unexplained`` counts them."""
        while self.ready and (deadline is None or time.monotonic() < deadline):
            self.work(SLICE)
        rest, self.ready = self.ready, []
        for di in rest:
            if self.served[di] < self.ppw[di]:
                self.explained[di] = self._not_explained(di)
                self.late.append(di)
        self.unexplained = len(self.late)
        return [self.explained[di] for di in sorted(self.explained)]

    def explain_late(
        self, on_slice: Callable[[int, int], None], stop: Callable[[], bool]
    ) -> list[Unmet] | None:
        """After the result: the demands ``finish`` left ``not_explained``, with their real
        reasons, a slice at a time (``on_slice(done, total)`` after each); every unmet demand
        in district order, or None if ``stop()`` said so first."""
        total = len(self.late)
        self.ready, self.late = self.late, []
        while self.ready:
            if stop():
                self.late, self.ready = self.ready, []
                return None
            self.work(SLICE)
            on_slice(total - len(self.ready), total)
        self.unexplained = 0
        return [self.explained[di] for di in sorted(self.explained)]

    def _not_explained(self, di: int) -> Unmet:
        d = self.demands[di]
        return Unmet(
            demand_id=d.id,
            class_id=d.class_id,
            subject=d.subject,
            missing_periods=self.ppw[di] - int(self.served[di]),
            reasons=[reason("not_explained", NOT_EXPLAINED)],
        )

    def _unmet(self, di: int, blocked: _Blocked, first: int, end: int) -> Unmet:
        d = self.demands[di]
        reasons = blocked.reasons(d, first, end) if first < end else []
        if di in self.static:
            reasons.extend(self.static[di])
        elif self.needs[di]:
            assert self.cs.book is not None
            reasons.extend(no_candidate_reasons(self.cs.district, d, self.cs.book, self.index))
        if not reasons:
            reasons.append(
                reason(
                    "free_periods_conflict",
                    f"only {self.members[di]} matching free periods for "
                    f"{d.periods_per_week} periods a week",
                )
            )
        return Unmet(
            demand_id=d.id,
            class_id=d.class_id,
            subject=d.subject,
            missing_periods=self.ppw[di] - int(self.served[di]),
            reasons=reasons,
        )


def explain_unmet(
    cs: CandidateSet,
    problem: Problem,
    chosen: set[int],
    static: dict[int, list[Reason]] | None = None,
    index: RejectionIndex | None = None,
    deadline: float | None = None,
) -> list[Unmet]:
    """Unmet demand with reasons for a whole solution; ``static`` holds precomputed
    ``static_reasons``; ``deadline`` as ``UnmetExplainer.finish``."""
    explainer = UnmetExplainer(
        cs,
        problem,
        np.zeros(len(cs), dtype=np.int64),
        1,
        static or {},
        index or RejectionIndex(cs.district),
    )
    explainer.part_done(0, sorted(chosen))
    return explainer.finish(deadline)


class _Blocked:
    """Open pairs (parallel lists) with the kinds of the rows that block them, and who holds
    the seats and periods in the solution."""

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
        """Reasons from the rows blocking open pairs ``first:end`` (all of demand ``d``)."""
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
                    f"{teacher}'s {' / '.join(slot_label(o) for o in uniq.values())} lessons "
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
