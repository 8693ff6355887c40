"""What a re-solve reuses from the solve before it (derived candidates, carried explanation
memos, the idle worker pool) gives the same answers as starting afresh, and the rows and
blocking checks the explanations rest on match plain-Python references."""

from __future__ import annotations

import copy
import random
from collections import defaultdict
from collections.abc import Iterator
from datetime import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import scheduler.solver.candidates as candidates
import scheduler.solver.rejections as rejections
import scheduler.solver.workers as workers
from scheduler.demo import demo_district
from scheduler.domain import District, Pin, Policy, School
from scheduler.solver.candidates import CandidateSet, build_candidates, candidates_for
from scheduler.solver.explain import static_reasons
from scheduler.solver.greedy import RowState, greedy
from scheduler.solver.parts import SolveCancelled
from scheduler.solver.problem import Problem, build_problem, components
from scheduler.solver.rejections import rejection_index_for
from scheduler.solver.rows import EPS, KIND, KINDS
from scheduler.solver.solve import SolveOptions, keep_set, solve
from scheduler.solver.unmet import active_of as switched_on
from scheduler.solver.unmet import blocking_kinds, explain_unmet
from scheduler.solver.verify import violations
from scheduler.synthetic import province
from scheduler.timetable import Timetable

GREEDY = SolveOptions(mip=False)
FEW = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def clear_caches() -> None:
    with candidates._last_lock:
        candidates._last[:] = []
    with rejections._last_index_lock:
        rejections._last_index[:] = []


@pytest.fixture(autouse=True)
def fresh_caches() -> Iterator[None]:
    """Every test starts (and leaves) without a remembered candidate set or index."""
    clear_caches()
    yield
    clear_caches()


def last_index() -> rejections.RejectionIndex:
    with rejections._last_index_lock:
        assert rejections._last_index
        return rejections._last_index[0][1]


def last_book() -> candidates.OverlapBook:
    with candidates._last_lock:
        assert candidates._last
        book = candidates._last[0][1].book
    assert book is not None
    return book


def answers(tt: Timetable) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """What a solve decided and explained (not its timings)."""
    return [a.model_dump() for a in tt.assignments], [u.model_dump() for u in tt.unmet]


def with_policy(district: District, **changes: object) -> District:
    return district.model_copy(update={"policy": district.policy.model_copy(update=changes)})


def shifted(school: School, minutes: int) -> School:
    """The school with every bell of every season ``minutes`` later."""

    def move(t: time) -> time:
        m = t.hour * 60 + t.minute + minutes
        return time(m // 60, m % 60)

    schedules = [
        s.model_copy(
            update={
                "periods": [
                    p.model_copy(update={"start": move(p.start), "end": move(p.end)})
                    for p in s.periods
                ]
            }
        )
        for s in school.bell_schedules
    ]
    return school.model_copy(update={"bell_schedules": schedules})


# 1. Explanation memos carried over a re-solve equal freshly computed explanations.


@FEW
@given(
    seed=st.integers(0, 10_000),
    where=st.floats(0.0, 1.0),
    removed=st.integers(1, 6),
    pin=st.booleans(),
)
def test_carried_explanations_equal_fresh_ones(
    seed: int, where: float, removed: int, pin: bool
) -> None:
    clear_caches()
    base = province(seed=seed, offerings=120, classes=300, regions=2)
    first = solve(base, GREEDY)
    book = last_book()
    # Cancel a few offerings from the middle of the list; maybe pin a pair the first
    # timetable did not have.
    lo = int(where * (len(base.offerings) - removed))
    kept = base.offerings[:lo] + base.offerings[lo + removed :]
    changed = base.model_copy(update={"offerings": kept})
    if pin:
        cs = build_candidates(changed)
        held = {(a.class_id, a.offering_id) for a in first.assignments}
        options = sorted(
            {
                (cs.demand_of(i).class_id, cs.offering_of(i).id)
                for i in range(len(cs))
                if (cs.demand_of(i).class_id, cs.offering_of(i).id) not in held
            }
        )
        if options:
            cls, oid = random.Random(seed).choice(options)
            changed = changed.model_copy(update={"pins": [Pin(class_id=cls, offering_id=oid)]})

    carried = solve(changed, GREEDY, previous=first)
    assert last_book() is book  # the candidates were derived, not rebuilt
    index = last_index()
    assert index._carried  # the previous solve's needs were handed over ...
    reused = [
        need
        for key, need in index._static.items()
        if key in index._carried and need.memo is index._carried[key].memo
    ]
    assert reused  # ... and some explanation memos were taken over
    unmet = {u.demand_id for u in carried.unmet}
    assert any(unmet & set(need.memo) for need in reused)

    clear_caches()
    fresh = solve(changed, GREEDY, previous=first)
    assert last_index()._carried == {}
    assert answers(carried) == answers(fresh)
    assert violations(changed, carried) == []


# 2. A memo is not carried over when the minimum overlap or the bell schedules change.


def test_memo_not_carried_when_minimum_or_bells_change() -> None:
    base = province(seed=5, offerings=120, classes=300, regions=2)
    remote = {s.id for s in base.schools if "-s" in s.id}
    variants = {
        "looser minimum": with_policy(base, min_overlap_minutes=30),
        "stricter minimum": with_policy(base, min_overlap_minutes=40),
        "bells moved": base.model_copy(
            update={"schools": [shifted(s, 5) if s.id in remote else s for s in base.schools]}
        ),
    }
    before = solve(base, GREEDY)
    for name, variant in variants.items():
        clear_caches()
        solve(base, GREEDY)
        assert last_index()._static  # there was something to carry
        after = solve(variant, GREEDY)
        assert last_index()._carried == {}, name
        clear_caches()
        fresh = solve(variant, GREEDY)
        assert answers(after) == answers(fresh), name
        # The change matters to the explanations: stale memos would have shown.
        assert answers(after)[1] != answers(before)[1], name


def test_rejection_index_carries_only_with_the_same_book_and_minimum() -> None:
    base = province(seed=6, offerings=80, classes=160, regions=2)
    cs = build_candidates(base)
    assert cs.book is not None

    def explained(index: rejections.RejectionIndex) -> rejections.RejectionIndex:
        static_reasons(cs, None, index)
        assert any(need.memo for need in index._static.values())
        return index

    first = explained(rejection_index_for(base, cs.book))
    again = explained(rejection_index_for(base, cs.book))
    assert again._carried is first._static
    stricter = rejection_index_for(with_policy(base, min_overlap_minutes=40), cs.book)
    assert stricter._carried == {}
    explained(rejection_index_for(base, cs.book))
    other_book = rejection_index_for(base, candidates.OverlapBook(base))
    assert other_book._carried == {}


# 3. blocking_kinds against a plain-Python reference over the rows.


def small_district(
    seed: int,
    same_teacher: str,
    one_per_day: bool,
    load: int,
    sfu: int | None,
    mbps: float,
    cross_region: bool,
) -> District:
    base = province(seed=seed, offerings=80 + seed % 120, classes=150 + seed % 300, regions=2)
    policy = Policy(
        same_teacher="hard" if same_teacher == "hard" else "soft",
        one_per_day=one_per_day,
        teacher_weekly_streams=load,
        sfu_capacity={s.region.key("county"): sfu for s in base.schools} if sfu else {},
        stream_mbps=mbps,
        cross_region=cross_region,
    )
    return base.model_copy(update={"policy": policy})


policies = {
    "same_teacher": st.sampled_from(["soft", "hard"]),
    "one_per_day": st.booleans(),
    "load": st.integers(1, 4),
    "sfu": st.sampled_from([None, 1, 3]),
    "mbps": st.sampled_from([2.0, 8.0, 20.0]),
    "cross_region": st.booleans(),
}


def active_of(problem: Problem, chosen: list[int]) -> set[int]:
    active = set(chosen)
    for i in chosen:
        active.add(int(problem.y_of[i]))
        if problem.z_of[i] >= 0:
            active.add(int(problem.z_of[i]))
    return active


def reference_usage(
    problem: Problem, active: set[int]
) -> tuple[list[float], dict[int, list[tuple[int, float]]]]:
    """Row usage of the active variables, and each variable's (row, coefficient) entries,
    by looping over the rows."""
    start, index, value = (
        problem.row_start.tolist(),
        problem.row_index.tolist(),
        problem.row_value.tolist(),
    )
    usage = [0.0] * problem.n_rows
    entries: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for r in range(problem.n_rows):
        for k in range(start[r], start[r + 1]):
            entries[index[k]].append((r, value[k]))
            if index[k] in active:
                usage[r] += value[k]
    return usage, entries


def reference_masks(problem: Problem, chosen: list[int], pairs: list[int]) -> list[int]:
    active = active_of(problem, chosen)
    usage, entries = reference_usage(problem, active)
    upper, kind = problem.row_upper.tolist(), problem.row_kind.tolist()
    out = []
    for i in pairs:
        new = [i]
        y, z = int(problem.y_of[i]), int(problem.z_of[i])
        if y not in active:
            new.append(y)
        if z >= 0 and z not in active:
            new.append(z)
        delta: dict[int, float] = defaultdict(float)
        for v in new:
            for r, c in entries[v]:
                delta[r] += c
        mask = 0
        for r, d in delta.items():
            if usage[r] + d > upper[r] + EPS:
                mask |= 1 << kind[r]
        out.append(mask)
    return out


@FEW
@given(
    seed=st.integers(0, 10_000), order=st.sampled_from(["greedy", "random", "partial"]), **policies
)
def test_blocking_kinds_match_a_reference(
    seed: int,
    order: str,
    same_teacher: str,
    one_per_day: bool,
    load: int,
    sfu: int | None,
    mbps: float,
    cross_region: bool,
) -> None:
    district = small_district(seed, same_teacher, one_per_day, load, sfu, mbps, cross_region)
    cs = build_candidates(district)
    problem = build_problem(cs)
    state = RowState(problem)
    if order == "greedy":
        chosen = sorted(greedy(cs, problem))
        for i in chosen:
            assert state.try_add(i)
    else:
        # A feasible set built in a random order: maximal, or from a third of the pairs only
        # (then some pairs are blocked by nothing).
        shuffled = list(range(problem.n_x))
        random.Random(seed).shuffle(shuffled)
        if order == "partial":
            shuffled = shuffled[: len(shuffled) // 3]
        chosen = sorted(i for i in shuffled if state.try_add(i))
    # The chosen set is feasible row by row.
    usage, _ = reference_usage(problem, active_of(problem, chosen))
    assert all(u <= up + EPS for u, up in zip(usage, problem.row_upper.tolist(), strict=True))

    is_chosen = np.zeros(problem.n_x, dtype=np.bool_)
    is_chosen[chosen] = True
    pairs = np.flatnonzero(~is_chosen)
    picked = np.asarray(chosen, dtype=np.int64)
    got = blocking_kinds(problem, switched_on(problem, picked), pairs).tolist()
    want = reference_masks(problem, chosen, pairs.tolist())
    assert got == want
    # A pair no row blocks is one the incremental check would still take, and vice versa.
    for i, mask in zip(pairs.tolist(), got, strict=True):
        trial = copy.copy(state)
        trial.usage, trial.active = list(state.usage), bytearray(state.active)
        assert trial.try_add(i) == (mask == 0), (
            i,
            [k for b, k in enumerate(KINDS) if mask >> b & 1],
        )


# 5. Derived candidate sets (chains of removals, down to none) equal fresh builds.


def consistent(cs: CandidateSet) -> None:
    start = cs.demand_start
    assert len(start) == len(cs.district.demands) + 1
    assert start[0] == 0 and start[-1] == len(cs)
    assert bool(np.all(np.diff(start) >= 0))
    for di in range(len(cs.district.demands)):
        assert bool(np.all(cs.demand[cs.of_demand(di)] == di))
    assert bool(np.all((cs.offering >= 0) & (cs.offering < len(cs.district.offerings))))


def same(a: CandidateSet, b: CandidateSet) -> bool:
    columns = ("demand", "offering", "day", "remote_period", "overlap", "demand_start")
    return all(np.array_equal(getattr(a, c), getattr(b, c)) for c in columns)


@FEW
@given(
    seed=st.integers(0, 10_000),
    steps=st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from([0.0, 0.1, 0.4, 1.0])),
        min_size=1,
        max_size=3,
    ),
)
def test_chained_removals_derive_what_a_fresh_build_gives(
    seed: int, steps: list[tuple[int, float]]
) -> None:
    clear_caches()
    district = province(seed=seed, offerings=80, classes=150, regions=2)
    first = candidates_for(district)
    consistent(first)
    for step_seed, share in steps:
        rng = random.Random(step_seed)
        kept = [o for o in district.offerings if rng.random() >= share]
        district = district.model_copy(update={"offerings": kept})
        derived = candidates_for(district)
        assert derived.book is first.book and derived.district is district
        consistent(derived)
        assert same(derived, build_candidates(district))


# 6. build_problem invariants.


@FEW
@given(seed=st.integers(0, 10_000), pins=st.integers(0, 3), **policies)
def test_problem_rows_and_components(
    seed: int,
    pins: int,
    same_teacher: str,
    one_per_day: bool,
    load: int,
    sfu: int | None,
    mbps: float,
    cross_region: bool,
) -> None:
    district = small_district(seed, same_teacher, one_per_day, load, sfu, mbps, cross_region)
    cs = build_candidates(district)
    rng = random.Random(seed)
    chosen_pins = [rng.randrange(len(cs)) for _ in range(pins)] if len(cs) else []
    district = district.model_copy(
        update={
            "pins": [
                Pin(class_id=cs.demand_of(i).class_id, offering_id=cs.offering_of(i).id)
                for i in chosen_pins
            ]
        }
    )
    cs = build_candidates(district)
    problem = build_problem(cs)
    n_x, n_vars = problem.n_x, problem.n_vars
    assert n_x == len(cs) and len(problem.quality) == n_vars
    n_y = len(set(problem.y_of.tolist()))
    assert all(n_x <= y < n_x + n_y for y in problem.y_of.tolist())
    assert all(z == -1 or n_x + n_y <= z < n_vars for z in problem.z_of.tolist())
    assert len(problem.pin_rows) == len(district.pins)

    start, index, value = (
        problem.row_start.tolist(),
        problem.row_index.tolist(),
        problem.row_value.tolist(),
    )
    always = {KIND["offering_capacity"], KIND["same_teacher_link"], KIND["same_teacher"]}
    only_x = {KIND["demand_periods"], KIND["one_per_day"], KIND["class_one_stream"]}
    for r in range(problem.n_rows):
        kind = int(problem.row_kind[r])
        variables = index[start[r] : start[r + 1]]
        assert variables, KINDS[kind]
        assert all(0 <= v < n_vars for v in variables)
        if kind in only_x:
            assert all(v < n_x for v in variables), KINDS[kind]
        if problem.row_lower[r] == -np.inf and kind not in always:
            most = sum(c for c in value[start[r] : start[r + 1]] if c > 0)
            assert most > problem.row_upper[r] + EPS, KINDS[kind]
    for r in problem.pin_rows:
        assert KINDS[int(problem.row_kind[r])] == "pin" and problem.row_lower[r] == 1

    groups = components(problem)
    label = np.full(n_vars, -1, dtype=np.int64)
    for g, group in enumerate(groups):
        assert group.tolist() == sorted(group.tolist()) and int(group[0]) < n_x
        assert bool(np.all(label[group] == -1))  # disjoint
        label[group] = g
    assert [int(g[0]) for g in groups] == sorted(int(g[0]) for g in groups)
    # Every y and z belongs to some pair, so the parts with a pair cover every variable.
    assert bool(np.all(label >= 0))
    for r in range(problem.n_rows):
        assert len({int(label[v]) for v in index[start[r] : start[r + 1]]}) == 1
    for i in range(n_x):
        assert label[problem.y_of[i]] == label[i]
        if problem.z_of[i] >= 0:
            assert label[problem.z_of[i]] == label[i]
    # And the parts are connected: a union-find over rows and implications finds the same.
    parent = list(range(n_vars))

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    def union(a: int, b: int) -> None:
        parent[find(a)] = find(b)

    for r in range(problem.n_rows):
        for v in index[start[r] + 1 : start[r + 1]]:
            union(index[start[r]], v)
    for i in range(n_x):
        union(i, int(problem.y_of[i]))
        if problem.z_of[i] >= 0:
            union(i, int(problem.z_of[i]))
    reference: dict[int, list[int]] = defaultdict(list)
    for v in range(n_vars):
        reference[find(v)].append(v)
    assert sorted(g.tolist() for g in groups) == sorted(reference.values())


# 4. The worker processes are kept between solves and stopped after a cancelled one.


class CancelAfterFirstCheck:
    """Not set when the solve first looks, set from then on (the workers are busy by then)."""

    def __init__(self) -> None:
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        return self.checks > 1


def idle() -> list[workers.WorkerSet]:
    with workers._lock:
        return [pool for _, pool in workers._idle]


def test_worker_pool_kept_between_solves_and_dropped_after_cancel() -> None:
    workers.shutdown()
    district = demo_district()
    options = SolveOptions(time_limit=5, workers=1)
    try:
        first = solve(district, options)
        assert workers.idle_sets() == 1
        (pool,) = idle()
        pids = pool.pids()
        second = solve(district, options)
        assert workers.idle_sets() == 1
        assert idle() == [pool] and pool.pids() == pids  # the same processes, not new ones
        assert second.assignments == first.assignments
        assert violations(district, second) == []

        flag = CancelAfterFirstCheck()
        with pytest.raises(SolveCancelled):
            solve(district, options, cancel=flag)
        assert flag.checks >= 2
        assert workers.idle_sets() == 0
        assert not pool.alive()  # stopped: it takes no more work

        third = solve(district, options)
        assert third.assignments == first.assignments
        assert workers.idle_sets() == 1 and idle()[0] is not pool
    finally:
        workers.shutdown()
    assert workers.idle_sets() == 0


@pytest.mark.parametrize("workers_", [0, 2])
def test_part_by_part_explanations_equal_explaining_the_whole_solution(workers_: int) -> None:
    """The MIP path explains each part as it finishes (in the workers' idle time with a
    pool); that equals explaining the final solution at once."""
    district = province(seed=21, offerings=160, classes=500, regions=3)
    # Tiny bundles: many parts finish at different times.
    options = SolveOptions(time_limit=10, workers=workers_, bundle_vars=40)
    timetable = solve(district, options)
    assert timetable.stats.parts > 3
    assert violations(district, timetable) == []
    cs = candidates_for(district)
    chosen = keep_set(cs, timetable)
    assert len(chosen) == len(timetable.assignments)
    whole = explain_unmet(cs, build_problem(cs), chosen)
    assert [u.model_dump() for u in timetable.unmet] == [u.model_dump() for u in whole]
    assert timetable.unmet, "the district must leave demand unmet for this to test anything"
    workers.shutdown()
