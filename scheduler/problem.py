"""The matching as linear rows over binary variables, shared by the greedy and the MIP.

Variables: ``x`` (one per candidate pair: this demand takes this offering in this free period),
``y`` (this offering is streamed at all), ``z`` (this demand uses this teacher). Every row is a
named hard constraint; rows that can never bind are left out so that independent parts of the
district fall apart into components (``components``).

Rows are built kind by kind with numpy (group the pairs by the constraint's key, keep the
groups that can bind) into one CSR matrix: a province has ~100,000 variables and ~90,000 rows,
and a re-solve rebuilds them all.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from scheduler.candidates import DAY_INDEX, CandidateSet
from scheduler.clock import period_interval
from scheduler.domain import District

INF = math.inf
EPS = 1e-9

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

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

# Constraint names, in alphabetical order: explanations list a pair's binding rows by name.
KINDS: tuple[str, ...] = (
    "class_one_stream",  # a class sits in one stream at a time
    "demand_periods",  # never more than the periods a week the class needs
    "offering_capacity",  # at most max_remote classes, and none unless the offering streams
    "one_per_day",  # one period of a subject per class per day
    "pin",  # the coordinator said this class joins this offering
    "same_teacher",  # (hard) all periods of a demand from one teacher
    "same_teacher_link",  # a pair uses its teacher
    "school_downlink",  # downlink per school per period
    "school_uplink",  # uplink per school per period
    "sfu_capacity",  # lesson rooms a region's SFU nodes host at once
    "teacher_load",  # weekly streaming lessons a teacher may give
)
KIND: dict[str, int] = {k: n for n, k in enumerate(KINDS)}


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
            counts = np.bincount(self.row_index, minlength=self.n_vars)
            start = np.zeros(self.n_vars + 1, dtype=np.int64)
            np.cumsum(counts, out=start[1:])
            self._columns = (start, self.row_of_entry()[order], self.row_value[order])
        return self._columns

    def implied(self, i: int) -> list[int]:
        """The y (and z) variables pair ``i`` forces to 1."""
        z = int(self.z_of[i])
        return [int(self.y_of[i])] if z < 0 else [int(self.y_of[i]), z]


class _Rows:
    """Row blocks collected kind by kind, then joined into one CSR matrix."""

    def __init__(self) -> None:
        self.kind: list[IntArray] = []
        self.lower: list[FloatArray] = []
        self.upper: list[FloatArray] = []
        self.lengths: list[IntArray] = []
        self.index: list[IntArray] = []
        self.value: list[FloatArray] = []

    def grouped(
        self,
        kind: str,
        group: IntArray,
        var: IntArray,
        coef: FloatArray,
        upper: FloatArray,
        lower: FloatArray | None = None,
        always: bool = False,
    ) -> None:
        """One row per group: entry ``k`` is in row ``group[k]`` (entries keep their order).
        Empty rows and, unless ``always``, rows that can never bind are left out."""
        n = len(upper)
        order = np.argsort(group, kind="stable")
        g = group[order]
        lengths = np.bincount(g, minlength=n)
        keep = lengths > 0
        if not always and lower is None:
            max_use = np.bincount(g, weights=np.maximum(coef[order], 0.0), minlength=n)
            keep &= max_use > upper + EPS
        entries = keep[g]
        self.add(
            kind,
            np.full(int(keep.sum()), -INF) if lower is None else lower[keep],
            upper[keep],
            lengths[keep],
            var[order][entries],
            coef[order][entries],
        )

    def add(
        self,
        kind: str,
        lower: FloatArray,
        upper: FloatArray,
        lengths: IntArray,
        index: IntArray,
        value: FloatArray,
    ) -> None:
        self.kind.append(np.full(len(upper), KIND[kind], dtype=np.int64))
        self.lower.append(np.asarray(lower, dtype=np.float64))
        self.upper.append(np.asarray(upper, dtype=np.float64))
        self.lengths.append(np.asarray(lengths, dtype=np.int64))
        self.index.append(np.asarray(index, dtype=np.int64))
        self.value.append(np.asarray(value, dtype=np.float64))

    @property
    def count(self) -> int:
        return sum(len(k) for k in self.kind)

    def csr(self) -> tuple[IntArray, FloatArray, FloatArray, IntArray, IntArray, FloatArray]:
        def ints(parts: list[IntArray]) -> IntArray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

        def floats(parts: list[FloatArray]) -> FloatArray:
            return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float64)

        lengths = ints(self.lengths)
        start = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=start[1:])
        return (
            ints(self.kind),
            floats(self.lower),
            floats(self.upper),
            start,
            ints(self.index),
            floats(self.value),
        )


def _dense(keys: IntArray) -> tuple[IntArray, int]:
    """Keys renumbered 0..n-1 (in key order), and n."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), len(uniq)


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
    rows = _Rows()
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
        group, n = _dense(pair_demand * 7 + pair_day)
        rows.grouped("one_per_day", group, xs, ones, np.ones(n))

    n_z, z_of = _teacher_rows(cs, rows, ppw, n_x + n_y)

    class_index: dict[str, int] = {}
    class_of_demand = np.fromiter(
        (class_index.setdefault(d.class_id, len(class_index)) for d in demands),
        dtype=np.int64,
        count=len(demands),
    )
    if n_x:
        span = int(cs.remote_period.max()) + 1
        group, n = _dense((class_of_demand[pair_demand] * 7 + pair_day) * span + cs.remote_period)
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
    _bandwidth_rows(cs, streamed, ys, rows)
    _sfu_rows(district, streamed, y_var, rows)

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


def _teacher_rows(
    cs: CandidateSet, rows: _Rows, ppw: IntArray, first_z: int
) -> tuple[int, IntArray]:
    """z per (demand, teacher) where a demand of several periods has several teachers: the
    link rows, and the hard same-teacher rows when the policy asks for them."""
    district = cs.district
    n_x = len(cs)
    z_of = np.full(n_x, -1, dtype=np.int64)
    if not n_x:
        return 0, z_of
    names = sorted({o.teacher for o in district.offerings})
    rank = {t: k for k, t in enumerate(names)}
    teacher_rank = np.fromiter(
        (rank[o.teacher] for o in district.offerings), dtype=np.int64, count=len(district.offerings)
    )
    pair, n_pairs = _dense(cs.demand * len(names) + teacher_rank[cs.offering])
    pair_demand = np.zeros(n_pairs, dtype=np.int64)
    pair_demand[pair] = cs.demand
    members = np.diff(cs.demand_start)
    teachers = np.bincount(pair_demand, minlength=len(members))
    eligible = (members > 1) & (ppw > 1) & (teachers > 1)
    z_pairs = np.flatnonzero(eligible[pair_demand])  # in (demand, teacher name) order
    n_z = len(z_pairs)
    z_var = np.full(n_pairs, -1, dtype=np.int64)
    z_var[z_pairs] = first_z + np.arange(n_z, dtype=np.int64)
    z_of = z_var[pair]
    linked = np.flatnonzero(z_of >= 0)
    # One link row x - z <= 0 per pair, ordered by (demand, teacher, pair).
    linked = linked[np.argsort(pair[linked], kind="stable")]
    n = len(linked)
    rows.add(
        "same_teacher_link",
        np.full(n, -INF),
        np.zeros(n),
        np.full(n, 2),
        np.column_stack([linked, z_of[linked]]).reshape(-1),
        np.tile([1.0, -1.0], n),
    )
    if district.policy.same_teacher == "hard" and n_z:
        group, n_groups = _dense(pair_demand[z_pairs])
        rows.grouped(
            "same_teacher",
            group,
            z_var[z_pairs],
            np.ones(n_z),
            np.ones(n_groups),
            always=True,
        )
    return n_z, z_of


def _bandwidth_rows(cs: CandidateSet, streamed: IntArray, ys: IntArray, rows: _Rows) -> None:
    """school_uplink / school_downlink per school per period: the master classroom sends one
    stream and sees every remote room; a remote room receives the lesson and sends its camera
    back."""
    district = cs.district
    if not len(cs):
        return
    bw = district.policy.stream_mbps
    school_index = {s.id: k for k, s in enumerate(district.schools)}
    offerings = district.offerings
    o_school = np.fromiter((school_index[o.school] for o in offerings), dtype=np.int64)
    o_day = np.fromiter((DAY_INDEX[o.weekday] for o in offerings), dtype=np.int64)
    o_period = np.fromiter((o.period for o in offerings), dtype=np.int64)
    d_school = np.fromiter(
        (school_index[d.school] for d in district.demands),
        dtype=np.int64,
        count=len(district.demands),
    )
    span = int(max(o_period.max(initial=0), cs.remote_period.max(initial=0))) + 1
    master_slot = (o_school * 7 + o_day) * span + o_period
    remote_slot = (d_school[cs.demand] * 7 + cs.day) * span + cs.remote_period
    xs = np.arange(len(cs), dtype=np.int64)
    uplink = np.fromiter((s.uplink_mbps for s in district.schools), dtype=np.float64)
    downlink = np.fromiter((s.downlink_mbps for s in district.schools), dtype=np.float64)
    for kind, limit, slots, var in (
        (
            "school_uplink",
            uplink,
            np.concatenate([master_slot[streamed], remote_slot]),
            np.concatenate([ys, xs]),
        ),
        (
            "school_downlink",
            downlink,
            np.concatenate([master_slot[cs.offering], remote_slot]),
            np.concatenate([xs, xs]),
        ),
    ):
        group, n = _dense(slots)
        slot_of_group = np.zeros(n, dtype=np.int64)
        slot_of_group[group] = slots
        school_of_group = slot_of_group // span // 7
        rows.grouped(kind, group, var, np.full(len(var), bw), limit[school_of_group])


def _sfu_rows(district: District, streamed: IntArray, y_var: IntArray, rows: _Rows) -> None:
    """sfu_capacity: lesson rooms (streamed offerings) a region's SFU nodes host at once, at
    every start of a lesson — the unit SFU nodes register and enforce (SANKE_SFU_CAPACITY)."""
    policy = district.policy
    if not policy.sfu_capacity:
        return
    schools = district.school_index()
    spans: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for oi in streamed.tolist():
        o = district.offerings[oi]
        region = schools[o.school].region.key(policy.region_level)
        span = period_interval(schools[o.school], o.period, o.weekday)
        if region in policy.sfu_capacity and span is not None:
            spans.setdefault((region, o.weekday._value_), []).append((span[0], span[1], oi))
    groups: list[int] = []
    var: list[int] = []
    upper: list[float] = []
    for (region, _day), items in spans.items():
        for start in sorted({s for s, _, _ in items}):
            for s, e, oi in items:
                if s <= start < e:
                    groups.append(len(upper))
                    var.append(int(y_var[oi]))
            upper.append(float(policy.sfu_capacity[region]))
    rows.grouped(
        "sfu_capacity",
        np.asarray(groups, dtype=np.int64),
        np.asarray(var, dtype=np.int64),
        np.ones(len(var)),
        np.asarray(upper, dtype=np.float64),
    )


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
