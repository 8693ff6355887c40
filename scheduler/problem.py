"""The matching as linear rows over binary variables, shared by the greedy and the MIP.

Variables: ``x`` (one per candidate pair: this demand takes this offering in this free period),
``y`` (this offering is streamed at all), ``z`` (this demand uses this teacher). Every row is a
named hard constraint; rows that can never bind are left out so that independent parts of the
district fall apart into components (``components``).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from scheduler.candidates import CandidateSet
from scheduler.clock import period_interval

INF = math.inf

AddRow = Callable[[str, str, list[tuple[int, float]], float], None]

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


@dataclass(slots=True)
class Row:
    kind: str  # the constraint's name
    key: str
    lower: float
    upper: float
    vars: list[int]
    coefs: list[float]


@dataclass
class Problem:
    n_x: int  # variables 0..n_x-1 are candidate pairs (same indices as the CandidateSet)
    n_vars: int
    quality: list[float]  # secondary objective coefficient per variable
    implies: list[list[int]]  # x_i = 1 forces these y/z variables to 1
    rows: list[Row]
    teacher_of_z: dict[int, str] = field(default_factory=dict)
    impossible_pins: list[tuple[str, str]] = field(default_factory=list)
    kept: set[int] = field(default_factory=set)  # candidates of the published timetable
    demand_of: list[int] = field(default_factory=list)  # demand index of each x
    _var_rows: list[list[tuple[int, float]]] | None = field(default=None, repr=False)

    def var_rows(self) -> list[list[tuple[int, float]]]:
        """For each variable, its (row, coefficient) entries (built once, then shared)."""
        if self._var_rows is None:
            out: list[list[tuple[int, float]]] = [[] for _ in range(self.n_vars)]
            for r, row in enumerate(self.rows):
                for v, c in zip(row.vars, row.coefs, strict=True):
                    out[v].append((r, c))
            self._var_rows = out
        return self._var_rows


def build_problem(cs: CandidateSet, keep: set[int] | None = None) -> Problem:
    """Rows for every hard constraint; ``keep`` holds candidates of the published timetable."""
    district, policy = cs.district, cs.district.policy
    schools = district.school_index()
    n_x = len(cs.candidates)
    quality: list[float] = []
    lengths: dict[int, int | None] = {}
    offerings, demands = district.offerings, district.demands
    size_score = [W_CLASS_SIZE * d.class_size for d in demands]
    kept = keep or set()
    for c in cs.candidates:
        overlap = c.overlap
        span_length = lengths.get(c.offering, -1)
        if span_length == -1:
            o = offerings[c.offering]
            span = period_interval(schools[o.school], o.period, o.weekday)
            span_length = lengths[c.offering] = (span[1] - span[0]) if span else None
        length = overlap if span_length is None else span_length
        q = W_OVERLAP * min(1.0, overlap / max(1, length)) + size_score[c.demand]
        if c.index in kept:
            q += W_KEEP
        quality.append(q)
    implies: list[list[int]] = [[] for _ in range(n_x)]
    rows: list[Row] = []
    n_vars = n_x

    def add(
        kind: str, key: str, terms: list[tuple[int, float]], upper: float, lower: float = -INF
    ) -> None:
        if not terms:
            return
        max_use = sum(c for _, c in terms if c > 0)
        if lower == -INF and max_use <= upper + 1e-9:
            return  # can never bind
        rows.append(Row(kind, key, lower, upper, [v for v, _ in terms], [c for _, c in terms]))

    def add_ones(kind: str, key: str, ids: list[int], upper: float) -> None:
        """``add`` for a row of ones (the common case), without building the terms."""
        if len(ids) > upper + 1e-9:
            rows.append(Row(kind, key, -INF, upper, list(ids), [1.0] * len(ids)))

    by_offering: dict[int, list[int]] = defaultdict(list)
    for c in cs.candidates:
        by_offering[c.offering].append(c.index)
    y_of: dict[int, int] = {}
    for oi, members in by_offering.items():
        y = n_vars
        n_vars += 1
        y_of[oi] = y
        quality.append(-W_STREAM)
        for i in members:
            implies[i].append(y)
        o = district.offerings[oi]
        # offering_capacity: at most max_remote classes, and none unless the offering streams.
        rows.append(
            Row(
                "offering_capacity",
                o.id,
                -INF,
                0.0,
                [*members, y],
                [1.0] * len(members) + [-float(o.max_remote)],
            )
        )
    teacher_of_z: dict[int, str] = {}
    candidates = cs.candidates
    teacher_of = [o.teacher for o in offerings]
    for di, members in cs.by_demand.items():
        d = district.demands[di]
        # demand_periods: never more than the periods a week the class needs.
        if members:
            add_ones("demand_periods", d.id, members, float(d.periods_per_week))
        if policy.one_per_day and len(members) > 1:
            per_day: dict[str, list[int]] = defaultdict(list)
            for i in members:
                per_day[candidates[i].weekday._value_].append(i)
            for day, ids in per_day.items():
                # one_per_day: one period of a subject per class per day.
                add_ones("one_per_day", f"{d.id}@{day}", ids, 1.0)
        if len(members) <= 1 or d.periods_per_week <= 1:
            continue
        teachers: dict[str, list[int]] = defaultdict(list)
        for i in members:
            teachers[teacher_of[candidates[i].offering]].append(i)
        if len(teachers) > 1 and d.periods_per_week > 1:
            zs: list[int] = []
            for teacher, ids in sorted(teachers.items()):
                z = n_vars
                n_vars += 1
                zs.append(z)
                teacher_of_z[z] = teacher
                quality.append(-W_EXTRA_TEACHER)
                link = f"{d.id}:{teacher}"
                for i in ids:
                    implies[i].append(z)
                    # same_teacher link: a pair uses its teacher.
                    rows.append(Row("same_teacher_link", link, -INF, 0.0, [i, z], [1.0, -1.0]))
            if policy.same_teacher == "hard":
                # same_teacher (hard): all periods of a demand from one teacher.
                rows.append(Row("same_teacher", d.id, -INF, 1.0, zs, [1.0] * len(zs)))
    class_of = [d.class_id for d in demands]
    per_class_slot: dict[tuple[str, str, int], list[int]] = defaultdict(list)
    for c in candidates:
        per_class_slot[(class_of[c.demand], c.weekday._value_, c.remote_period)].append(c.index)
    for (cls, day, period), ids in per_class_slot.items():
        # class_one_stream: a class sits in one stream at a time.
        if len(ids) > 1:
            add_ones("class_one_stream", f"{cls}@{day}-{period}", ids, 1.0)
    per_teacher: dict[str, list[int]] = defaultdict(list)
    for oi, y in y_of.items():
        per_teacher[district.offerings[oi].teacher].append(y)
    for teacher, ys in per_teacher.items():
        # teacher_load: weekly streaming lessons a teacher may give.
        add("teacher_load", teacher, [(y, 1.0) for y in ys], float(policy.teacher_load(teacher)))
    _bandwidth_rows(cs, y_of, by_offering, add)
    _sfu_rows(cs, y_of, by_offering, add)
    impossible: list[tuple[str, str]] = []
    by_pair: dict[tuple[str, str], list[int]] = defaultdict(list)
    if district.pins:
        offering_ids = [o.id for o in offerings]
        for c in candidates:
            by_pair[(class_of[c.demand], offering_ids[c.offering])].append(c.index)
    for pin in district.pins:
        ids = by_pair.get((pin.class_id, pin.offering_id), [])
        if not ids:
            impossible.append((pin.class_id, pin.offering_id))
            continue
        # pin: the coordinator said this class joins this offering.
        rows.append(
            Row("pin", f"{pin.class_id}->{pin.offering_id}", 1.0, INF, ids, [1.0] * len(ids))
        )
    return Problem(
        n_x,
        n_vars,
        quality,
        implies,
        rows,
        teacher_of_z,
        impossible,
        set(keep or ()),
        [c.demand for c in candidates],
    )


def _bandwidth_rows(
    cs: CandidateSet, y_of: dict[int, int], by_offering: dict[int, list[int]], add: AddRow
) -> None:
    district = cs.district
    bw = district.policy.stream_mbps
    up: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    down: dict[tuple[str, str, int], list[tuple[int, float]]] = defaultdict(list)
    for oi, y in y_of.items():
        o = district.offerings[oi]
        key = (o.school, o.weekday._value_, o.period)
        up[key].append((y, bw))  # the master classroom sends one stream to the SFU
        down[key].extend((i, bw) for i in by_offering[oi])  # and sees every remote room
    for c in cs.candidates:
        d = cs.demand(c)
        key = (d.school, c.weekday._value_, c.remote_period)
        down[key].append((c.index, bw))  # a remote room receives the lesson
        up[key].append((c.index, bw))  # and sends its own camera back
    schools = district.school_index()
    for (school, day, period), terms in up.items():
        # school_bandwidth: uplink per school per period.
        add("school_uplink", f"{school}@{day}-{period}", terms, schools[school].uplink_mbps)
    for (school, day, period), terms in down.items():
        add("school_downlink", f"{school}@{day}-{period}", terms, schools[school].downlink_mbps)


def _sfu_rows(
    cs: CandidateSet, y_of: dict[int, int], by_offering: dict[int, list[int]], add: AddRow
) -> None:
    district, policy = cs.district, cs.district.policy
    if not policy.sfu_capacity:
        return
    schools = district.school_index()
    spans: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
    for oi in y_of:
        o = district.offerings[oi]
        region = schools[o.school].region.key(policy.region_level)
        span = period_interval(schools[o.school], o.period, o.weekday)
        if region in policy.sfu_capacity and span is not None:
            spans[(region, o.weekday._value_)].append((span[0], span[1], oi))
    for (region, day), items in spans.items():
        for start in sorted({s for s, _, _ in items}):
            terms: list[tuple[int, float]] = []
            for s, e, oi in items:
                if s <= start < e:
                    terms.append((y_of[oi], 1.0))
            # sfu_capacity: lesson rooms (streamed offerings) the region's SFU nodes host at
            # once — the unit SFU nodes register and enforce (SANKE_SFU_CAPACITY).
            add(
                "sfu_capacity",
                f"{region}@{day}-{start // 60:02d}:{start % 60:02d}",
                terms,
                float(policy.sfu_capacity[region]),
            )


def components(problem: Problem) -> list[list[int]]:
    """Variables grouped into independent parts (no row spans two parts)."""
    parent = list(range(problem.n_vars))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for i in range(problem.n_x):
        for v in problem.implies[i]:
            parent[find(v)] = find(i)
    for row in problem.rows:
        root = find(row.vars[0])
        for v in row.vars[1:]:
            other = find(v)
            if other != root:
                parent[other] = root
    groups: dict[int, list[int]] = defaultdict(list)
    for v in range(problem.n_vars):
        groups[find(v)].append(v)
    return [g for g in groups.values() if g[0] < problem.n_x]
