"""The matching as linear rows over binary variables, shared by the greedy and the MIP.

Variables: ``x`` (one per candidate pair: this demand takes this offering in this free period),
``y`` (this offering is streamed at all), ``z`` (this demand uses this teacher). Every row is a
named hard constraint; rows that can never bind are left out so that independent parts of the
district fall apart into components (``components``).

Rows are built kind by kind with numpy (group the pairs by the constraint's key, keep the
groups that can bind; ``rows.py``) into one CSR matrix: a province has ~100,000 variables and
~90,000 rows, and a re-solve rebuilds them all.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from scheduler.clock import period_interval
from scheduler.solver.arrays import BoolArray, FloatArray, IntArray, offsets
from scheduler.solver.candidates import CandidateSet
from scheduler.solver.rows import (
    INF,
    RowBlocks,
    bandwidth_rows,
    dense,
    sfu_rows,
    teacher_rows,
)

# Secondary objective (only after served periods are maximised; see mip.py).
# Overlap quality: a pair aligned for the whole master period loses no lesson time.
W_OVERLAP = 1.0
# Bigger classes first when everything else ties: more pupils get the lesson.
W_CLASS_SIZE = 0.001
# Every stream costs bandwidth, an SFU room and the teacher's attention to remote rooms.
W_STREAM = 0.5
# Every additional teacher for one demand breaks continuity (different pace, homework).
W_EXTRA_TEACHER = 2.0
# Re-solve: keeping a published pair beats any other secondary gain (families, rooms planned).
W_KEEP = 10.0


@dataclass
class Problem:
    n_x: int  # variables 0..n_x-1 are candidate pairs (same indices as the CandidateSet)
    n_vars: int
    quality: FloatArray  # secondary objective coefficient per variable
    y_of: IntArray  # per pair: its offering's y (x = 1 forces y = 1)
    z_of: IntArray  # per pair: its (demand, teacher) z, or -1 (x = 1 forces z = 1)
    row_kind: IntArray  # index into KINDS
    row_lower: FloatArray
    row_upper: FloatArray
    row_start: IntArray  # CSR: row r is entries row_start[r]:row_start[r + 1]
    row_index: IntArray
    row_value: FloatArray
    pin_rows: list[int]  # the pin rows, in the district's pin order
    impossible_pins: list[tuple[str, str]] = field(default_factory=list)
    kept: BoolArray = field(default_factory=lambda: np.zeros(0, dtype=np.bool_))
    demand_of: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    _columns: tuple[IntArray, IntArray, FloatArray] | None = field(default=None, repr=False)

    @property
    def n_rows(self) -> int:
        return len(self.row_lower)

    def row_of_entry(self) -> IntArray:
        return np.repeat(np.arange(self.n_rows, dtype=np.int64), np.diff(self.row_start))

    def columns(self) -> tuple[IntArray, IntArray, FloatArray]:
        """The matrix by column (CSC): ``start``, row of each entry, coefficient (cached)."""
        if self._columns is None:
            order = np.argsort(self.row_index, kind="stable")
            start = offsets(np.bincount(self.row_index, minlength=self.n_vars))
            self._columns = (start, self.row_of_entry()[order], self.row_value[order])
        return self._columns

    def implied(self, i: int) -> list[int]:
        """The y (and z) variables pair ``i`` forces to 1."""
        z = int(self.z_of[i])
        return [int(self.y_of[i])] if z < 0 else [int(self.y_of[i]), z]


def build_problem(cs: CandidateSet, keep: set[int] | None = None) -> Problem:
    """Rows for every hard constraint; ``keep`` holds candidates of the published timetable."""
    district, policy = cs.district, cs.district.policy
    offerings, demands = district.offerings, district.demands
    n_x = len(cs)
    pair_demand, pair_offering, pair_day = cs.demand, cs.offering, cs.day
    xs = np.arange(n_x, dtype=np.int64)
    ones = np.ones(n_x)
    kept = np.zeros(n_x, dtype=np.bool_)
    if keep:
        kept[np.fromiter(keep, dtype=np.int64, count=len(keep))] = True

    # y: offerings with candidates, numbered in order of their first pair.
    present, first = np.unique(pair_offering, return_index=True)
    streamed = present[np.argsort(first, kind="stable")]
    n_y = len(streamed)
    y_var = np.full(len(offerings), -1, dtype=np.int64)
    y_var[streamed] = n_x + np.arange(n_y, dtype=np.int64)
    y_of = y_var[pair_offering]
    y_rank = y_of - n_x  # the offering's row in offering_capacity

    quality_x = _pair_quality(cs, streamed, kept)
    rows = RowBlocks()
    max_remote = np.fromiter(
        (offerings[oi].max_remote for oi in streamed.tolist()), dtype=np.float64, count=n_y
    )
    ys = n_x + np.arange(n_y, dtype=np.int64)
    rows.grouped(
        "offering_capacity",
        np.concatenate([y_rank, ys - n_x]),
        np.concatenate([xs, ys]),
        np.concatenate([ones, -max_remote]),
        np.zeros(n_y),
        always=True,
    )
    ppw = np.fromiter((d.periods_per_week for d in demands), dtype=np.int64, count=len(demands))
    rows.grouped("demand_periods", pair_demand, xs, ones, ppw.astype(np.float64))
    if policy.one_per_day and n_x:
        group, n = dense(pair_demand * 7 + pair_day)
        rows.grouped("one_per_day", group, xs, ones, np.ones(n))

    n_z, z_of = teacher_rows(cs, rows, ppw, n_x + n_y)

    class_index: dict[str, int] = {}
    class_of_demand = np.fromiter(
        (class_index.setdefault(d.class_id, len(class_index)) for d in demands),
        dtype=np.int64,
        count=len(demands),
    )
    if n_x:
        span = int(cs.remote_period.max()) + 1
        group, n = dense((class_of_demand[pair_demand] * 7 + pair_day) * span + cs.remote_period)
        rows.grouped("class_one_stream", group, xs, ones, np.ones(n))

    teacher_index: dict[str, int] = {}
    teacher_of_y = np.fromiter(
        (teacher_index.setdefault(offerings[oi].teacher, len(teacher_index)) for oi in streamed),
        dtype=np.int64,
        count=n_y,
    )
    load = np.fromiter(
        (float(policy.teacher_load(t)) for t in teacher_index), dtype=np.float64
    ).reshape(-1)
    rows.grouped("teacher_load", teacher_of_y, ys, np.ones(n_y), load)
    bandwidth_rows(cs, streamed, ys, rows)
    sfu_rows(district, streamed, y_var, rows)

    impossible: list[tuple[str, str]] = []
    pin_rows: list[int] = []
    if district.pins:
        pair_key = class_of_demand[pair_demand] * len(offerings) + pair_offering
        order = np.argsort(pair_key, kind="stable")
        sorted_keys = pair_key[order]
        offering_index = {o.id: k for k, o in enumerate(offerings)}
        for pin in district.pins:
            cls, oi = class_index.get(pin.class_id), offering_index.get(pin.offering_id)
            lo = hi = 0
            if cls is not None and oi is not None:
                key = cls * len(offerings) + oi
                lo = int(np.searchsorted(sorted_keys, key, "left"))
                hi = int(np.searchsorted(sorted_keys, key, "right"))
            if lo == hi:
                impossible.append((pin.class_id, pin.offering_id))
                continue
            ids = order[lo:hi]
            pin_rows.append(rows.count)
            rows.add("pin", np.ones(1), np.full(1, INF), np.full(1, hi - lo), ids, np.ones(hi - lo))

    kind, lower, upper, start, index, value = rows.csr()
    quality = np.concatenate([quality_x, np.full(n_y, -W_STREAM), np.full(n_z, -W_EXTRA_TEACHER)])
    return Problem(
        n_x=n_x,
        n_vars=n_x + n_y + n_z,
        quality=quality,
        y_of=y_of,
        z_of=z_of,
        row_kind=kind,
        row_lower=lower,
        row_upper=upper,
        row_start=start,
        row_index=index,
        row_value=value,
        pin_rows=pin_rows,
        impossible_pins=impossible,
        kept=kept,
        demand_of=pair_demand,
    )


def _pair_quality(cs: CandidateSet, streamed: IntArray, kept: BoolArray) -> FloatArray:
    """Overlap share of the master period, class size, and the re-solve's keep bonus."""
    district = cs.district
    schools = district.school_index()
    lengths = np.zeros(len(district.offerings), dtype=np.float64)
    cache: dict[tuple[str, int, str], float] = {}
    signature = cs.book.signature if cs.book is not None else None
    for oi in streamed.tolist():
        o = district.offerings[oi]
        sig = str(signature[o.school]) if signature is not None else o.school
        key = (sig, o.period, o.weekday._value_)
        length = cache.get(key)
        if length is None:
            span = period_interval(schools[o.school], o.period, o.weekday)
            # -1: no clock times for the period; the overlap itself is the whole lesson.
            length = cache[key] = float(span[1] - span[0]) if span else -1.0
        lengths[oi] = length
    overlap = cs.overlap.astype(np.float64)
    span_of_pair = lengths[cs.offering]
    span_of_pair = np.where(span_of_pair < 0, overlap, span_of_pair)
    size = np.fromiter(
        (W_CLASS_SIZE * d.class_size for d in district.demands),
        dtype=np.float64,
        count=len(district.demands),
    )
    q = W_OVERLAP * np.minimum(1.0, overlap / np.maximum(1.0, span_of_pair)) + size[cs.demand]
    return np.asarray(q + W_KEEP * kept, dtype=np.float64)


def components(problem: Problem) -> list[IntArray]:
    """Variables grouped into independent parts (no row spans two parts), each in ascending
    order, the parts ordered by their first variable."""
    n, m = problem.n_vars, problem.n_rows
    linked = np.flatnonzero(problem.z_of >= 0)
    # A graph of variables and rows: an edge per matrix entry and per implication.
    src = np.concatenate([problem.row_index, np.arange(problem.n_x), linked])
    dst = np.concatenate([n + problem.row_of_entry(), problem.y_of, problem.z_of[linked]])
    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(n + m, n + m))
    _, labels = connected_components(graph, directed=False)
    labels = labels[:n]
    order = np.argsort(labels, kind="stable")
    bounds = np.flatnonzero(np.diff(labels[order])) + 1
    groups = np.split(order, bounds) if n else []
    groups.sort(key=lambda g: int(g[0]))
    return [g for g in groups if g[0] < problem.n_x]
