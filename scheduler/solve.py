"""Solve a district: candidates, greedy, decomposed MIP in worker processes, explanations.

Re-solve: given the published timetable, its pairs are kept unless they must move (the MIP's
secondary score pays ``W_KEEP`` per kept pair and the greedy tries them first).
"""

from __future__ import annotations

import gc
import itertools
import multiprocessing
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.pool import Pool
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from scheduler.candidates import CandidateSet, RejectionIndex, candidates_for
from scheduler.domain import District, Weekday
from scheduler.explain import explain_unmet, static_reasons
from scheduler.greedy import greedy
from scheduler.mip import (
    Part,
    PartResult,
    Phase1,
    extract_parts,
    solve_phase1,
    solve_phase2,
)
from scheduler.problem import Problem, build_problem, components
from scheduler.timetable import Assignment, Progress, Reason, SolveStats, Timetable


class SolveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limit: float = Field(default=30.0, gt=0, le=3600)
    # 0 solves in this process; n > 0 uses n spawned worker processes.
    workers: int = Field(default=0, ge=0, le=64)
    mip: bool = True
    # Components smaller than this many variables are bundled into one HiGHS model.
    bundle_vars: int = Field(default=3000, ge=1)


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class SolveCancelled(Exception):
    pass


ProgressFn = Callable[[Progress], None]


def _noop(_: Progress) -> None:
    return None


def keep_set(cs: CandidateSet, previous: Timetable | None) -> set[int]:
    if previous is None:
        return set()
    wanted = {(a.demand_id, a.offering_id, a.remote_period) for a in previous.assignments}
    demand_ids = [d.id for d in cs.district.demands]
    offering_ids = [o.id for o in cs.district.offerings]
    return {
        c.index
        for c in cs.candidates
        if (demand_ids[c.demand], offering_ids[c.offering], c.remote_period) in wanted
    }


def forced_changes(cs: CandidateSet, previous: Timetable, keep: set[int]) -> int:
    """Published pairs that cannot stay: no longer candidates, or displaced by a new pin."""
    forced = len(previous.assignments) - len(keep)
    district = cs.district
    seats: dict[str, int] = {}
    for a in previous.assignments:
        seats[a.offering_id] = seats.get(a.offering_id, 0) + 1
    offerings = {o.id: o for o in district.offerings}
    held = {(a.class_id, a.offering_id) for a in previous.assignments}
    days: dict[str, set[Weekday]] = defaultdict(set)
    for a in previous.assignments:
        days[a.class_id].add(a.weekday)
    for pin in district.pins:
        o = offerings.get(pin.offering_id)
        if o is None or (pin.class_id, pin.offering_id) in held:
            continue
        if seats.get(o.id, 0) >= o.max_remote:
            forced += 1  # someone must give up a seat
        if o.weekday in days.get(pin.class_id, ()):
            forced += 1  # the class's own lesson at that time or that day must move
    return forced


def to_timetable(
    cs: CandidateSet,
    problem: Problem,
    chosen: set[int],
    stats: SolveStats,
    static: dict[int, list[Reason]] | None = None,
    index: RejectionIndex | None = None,
) -> Timetable:
    assignments = []
    for i in sorted(chosen, key=lambda k: (cs.candidates[k].demand, cs.candidates[k].weekday.iso)):
        c = cs.candidates[i]
        o, d = cs.offering(c), cs.demand(c)
        assignments.append(
            Assignment(
                demand_id=d.id,
                class_id=d.class_id,
                school=d.school,
                offering_id=o.id,
                teacher=o.teacher,
                master_school=o.school,
                weekday=c.weekday,
                master_period=o.period,
                remote_period=c.remote_period,
                overlap_minutes=c.overlap,
            )
        )
    unmet = explain_unmet(cs, problem, chosen, static, index)
    return Timetable(district_id=cs.district.id, assignments=assignments, unmet=unmet, stats=stats)


T = TypeVar("T")


def _map(
    pool: Pool | None,
    fn: Callable[..., T],
    tasks: list[tuple[Any, ...]],
    cancel: CancelFlag | None,
    on_done: Callable[[int, T], None],
    idle: Callable[[], bool] | None = None,
) -> None:
    """Run ``fn(*task)`` for every task (in order; a pool takes them as workers free up).

    With a pool, ``idle`` does a short slice of other work while the tasks run (instead of
    sleeping) and returns whether any is left."""
    if pool is None:
        for k, args in enumerate(tasks):
            if cancel is not None and cancel.is_set():
                raise SolveCancelled()
            on_done(k, fn(*args))
        return
    pending = {k: pool.apply_async(fn, args) for k, args in enumerate(tasks)}
    while pending:
        if cancel is not None and cancel.is_set():
            raise SolveCancelled()
        for k in [k for k, res in pending.items() if res.ready()]:
            on_done(k, pending.pop(k).get())
        if pending and not (idle is not None and idle()):
            idle = None
            time.sleep(0.01)


def _run_parts(
    parts: list[Part],
    time_limit: float,
    pool: Pool | None,
    workers: int,
    cancel: CancelFlag | None,
    on_phase1: Callable[[Phase1], None],
    on_part: Callable[[PartResult], None],
    idle: Callable[[], bool] | None = None,
) -> None:
    """Phase 1 of every part (largest first), then phase 2 in the time left; with a pool,
    ``idle`` slices of work run in this process while the workers solve.

    Phase 2 shares the time left by part size over the workers, so every part gets its polish
    and the last one still ends by the deadline.
    """
    deadline = time.time() + time_limit
    # Phase 2 ends a little early: HiGHS overshoots its limit a bit, and results travel back.
    polish_deadline = deadline - min(0.5, 0.02 * time_limit)
    parts = sorted(parts, key=lambda p: -p.n_vars)
    firsts: dict[int, Phase1] = {}

    def first_done(k: int, first: Phase1) -> None:
        firsts[k] = first
        on_phase1(first)

    if cancel is not None and cancel.is_set():
        raise SolveCancelled()
    _map(pool, solve_phase1, [(p, deadline) for p in parts], cancel, first_done, idle)
    left = polish_deadline - time.time()
    slots = max(1, min(workers, len(parts)))
    total = sum(p.n_vars for p in parts) or 1
    tasks = [
        (p, firsts[k], left * slots * p.n_vars / total, polish_deadline)
        for k, p in enumerate(parts)
    ]
    _map(pool, solve_phase2, tasks, cancel, lambda _, r: on_part(r), idle)


_gc_lock = threading.Lock()
_gc_holders = 0
_gc_paused_state = [True]  # whether the collector was on when the first solve began


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while a solve allocates its millions of small
    objects (it would rescan them all again and again: 2-4x slower). Nothing a solve builds
    needs the cycle collector; it runs again when the last concurrent solve ends."""
    global _gc_holders
    with _gc_lock:
        if _gc_holders == 0:
            _gc_paused_state[0] = gc.isenabled()
            gc.disable()
        _gc_holders += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_holders -= 1
            if _gc_holders == 0 and _gc_paused_state[0]:
                # What the solve built and still holds (the timetable, the cached candidate
                # set) goes to the permanent generation: the first collections after the pause
                # would otherwise rescan those hundreds of thousands of objects. Frozen objects
                # are still freed by reference counting; they are only skipped by the scans.
                gc.freeze()
                gc.enable()


def solve(
    district: District,
    options: SolveOptions | None = None,
    *,
    previous: Timetable | None = None,
    progress: ProgressFn = _noop,
    cancel: CancelFlag | None = None,
) -> Timetable:
    options = options or SolveOptions()
    pool: Pool | None = None
    if options.mip and options.workers:
        # Spawned now, the workers start (imports) while this process builds the candidates.
        pool = multiprocessing.get_context("spawn").Pool(options.workers)
    try:
        with gc_paused():
            timetable = _solve(district, options, previous, progress, cancel, pool)
        if pool is not None:
            pool.close()
        return timetable
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()


def _solve(
    district: District,
    options: SolveOptions,
    previous: Timetable | None,
    progress: ProgressFn,
    cancel: CancelFlag | None,
    pool: Pool | None,
) -> Timetable:
    t0 = time.perf_counter()
    progress(Progress(phase="candidates"))
    cs = candidates_for(district)
    keep = keep_set(cs, previous)
    problem = build_problem(cs, keep if previous is not None else None)
    progress(Progress(phase="greedy", message=f"{len(cs.candidates)} candidate pairs"))
    g0 = time.perf_counter()
    chosen = greedy(cs, problem, keep)
    greedy_seconds = time.perf_counter() - g0
    demanded = sum(d.periods_per_week for d in district.demands)
    # A demand is served at most its periods a week, and at most once per candidate pair.
    trivial_bound = sum(
        min(d.periods_per_week, len(cs.by_demand.get(di, ())))
        for di, d in enumerate(district.demands)
    )
    stats = SolveStats(
        method="greedy",
        served=len(chosen),
        demanded=demanded,
        bound=trivial_bound,
        greedy_served=len(chosen),
        greedy_seconds=greedy_seconds,
        candidates=len(cs.candidates),
        impossible_pins=[f"{c}->{o}" for c, o in problem.impossible_pins],
    )
    static: dict[int, list[Reason]] = {}
    index = RejectionIndex(district)
    if options.mip and cs.candidates:
        parts = extract_parts(problem, components(problem), chosen, options.bundle_vars)
        remaining = options.time_limit - (time.perf_counter() - t0)
        mip_chosen: set[int] = set()
        bound = 0
        served = 0
        done = [0, 0]

        bound_at = [0.0]

        def on_phase1(first: Phase1) -> None:
            nonlocal bound, served
            bound_at[0] = time.perf_counter() - t0
            bound += first.bound
            served += first.served
            done[1] += int(first.optimal)
            progress(
                Progress(
                    phase="mip",
                    parts_done=done[0],
                    parts_total=len(parts),
                    served=served,
                    bound=bound,
                )
            )

        def on_part(r: PartResult) -> None:
            mip_chosen.update(r.chosen)
            done[0] += 1
            progress(
                Progress(
                    phase="mip",
                    parts_done=done[0],
                    parts_total=len(parts),
                    served=served,
                    bound=bound,
                )
            )

        progress(Progress(phase="mip", parts_total=len(parts), served=len(chosen)))

        todo = iter(range(len(district.demands)))

        def while_solving() -> bool:
            # Explanations that do not depend on the solution, while the workers solve (a
            # slice at a time, so that results are collected promptly); explain_unmet
            # computes those of any demand left.
            chunk = list(itertools.islice(todo, 400))
            static.update(static_reasons(cs, chunk, index))
            return len(chunk) == 400

        _run_parts(
            parts,
            max(0.1, remaining),
            pool,
            options.workers,
            cancel,
            on_phase1,
            on_part,
            while_solving,
        )
        stats.bound_seconds = bound_at[0]
        # Every part starts from the greedy; a part never returns fewer served periods.
        chosen = mip_chosen
        stats.method = "mip"
        stats.served = len(chosen)
        stats.bound = max(bound, len(chosen))
        stats.parts = len(parts)
        stats.parts_optimal = done[1]
    stats.gap_pct = 100.0 * (stats.bound - stats.served) / stats.bound if stats.bound else 0.0
    if previous is not None:
        stats.forced = forced_changes(cs, previous, keep)
        stats.changed = len(keep - chosen) + (len(previous.assignments) - len(keep))
    progress(Progress(phase="explain", served=stats.served, bound=stats.bound))
    stats.seconds = time.perf_counter() - t0
    timetable = to_timetable(cs, problem, chosen, stats, static, index)
    progress(Progress(phase="done", served=stats.served, bound=stats.bound))
    return timetable
