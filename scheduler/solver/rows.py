"""Building the matching's rows with numpy: named constraint kinds, row blocks joined into
one CSR matrix, and the row kinds that need more than grouping pairs by a key (same teacher,
bandwidth per school and period, SFU capacity per region at every lesson start)."""

from __future__ import annotations

import math

import numpy as np

from scheduler.clock import period_interval
from scheduler.domain import District
from scheduler.solver.arrays import FloatArray, IntArray, offsets
from scheduler.solver.candidates import DAY_INDEX, CandidateSet

INF = math.inf
EPS = 1e-9


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


class RowBlocks:
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

        return (
            ints(self.kind),
            floats(self.lower),
            floats(self.upper),
            offsets(ints(self.lengths)),
            ints(self.index),
            floats(self.value),
        )


def dense(keys: IntArray) -> tuple[IntArray, int]:
    """Keys renumbered 0..n-1 (in key order), and n."""
    uniq, inverse = np.unique(keys, return_inverse=True)
    return inverse.astype(np.int64).reshape(-1), len(uniq)


def teacher_rows(
    cs: CandidateSet, rows: RowBlocks, ppw: IntArray, first_z: int
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
    pair, n_pairs = dense(cs.demand * len(names) + teacher_rank[cs.offering])
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
        group, n_groups = dense(pair_demand[z_pairs])
        rows.grouped(
            "same_teacher",
            group,
            z_var[z_pairs],
            np.ones(n_z),
            np.ones(n_groups),
            always=True,
        )
    return n_z, z_of


def bandwidth_rows(cs: CandidateSet, streamed: IntArray, ys: IntArray, rows: RowBlocks) -> None:
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
        group, n = dense(slots)
        slot_of_group = np.zeros(n, dtype=np.int64)
        slot_of_group[group] = slots
        school_of_group = slot_of_group // span // 7
        rows.grouped(kind, group, var, np.full(len(var), bw), limit[school_of_group])


def sfu_rows(district: District, streamed: IntArray, y_var: IntArray, rows: RowBlocks) -> None:
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
