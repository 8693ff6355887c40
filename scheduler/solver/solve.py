"""Solve a district: candidates, greedy, decomposed MIP in worker processes, explanations.

Re-solve: given the published timetable, its pairs are kept unless they must move (the MIP's
secondary score pays ``W_KEEP`` per kept pair and the greedy tries them first).
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from scheduler.domain import District, Weekday
from scheduler.gc_pause import gc_paused
from scheduler.solver.candidates import DAYS, CandidateSet, candidates_for
from scheduler.solver.explain import needs_rejections, static_reasons
from scheduler.solver.greedy import greedy
from scheduler.solver.mip import Part, PartResult, Phase1, extract_parts, with_starts
from scheduler.solver.parts import CancelFlag, run_parts
from scheduler.solver.problem import build_problem, components
from scheduler.solver.rejections import rejection_index_for
from scheduler.solver.unmet import IDLE_SLICE, UnmetExplainer
from scheduler.solver.workers import WorkerSet, worker_set
from scheduler.timetable import (
    Assignment,
    PartFault,
    Progress,
    Reason,
    SolveStats,
    Timetable,
    Unmet,
)

# Share of the time limit explanations may run past the MIP's deadline (see _solve).
EXPLAIN_GRACE = 0.05


class SolveOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limit: float = Field(default=30.0, gt=0, le=3600)
    # 0 solves in this process; n > 0 uses n spawned worker processes.
    workers: int = Field(default=0, ge=0, le=64)
    mip: bool = True
    # Components smaller than this many variables are bundled into one HiGHS model.
    bundle_vars: int = Field(default=3000, ge=1)


ProgressFn = Callable[[Progress], None]


def _noop(_: Progress) -> None:
    return None


def keep_set(cs: CandidateSet, previous: Timetable | None) -> set[int]:
    """The candidates that are pairs of the previous timetable."""
    if previous is None or not len(cs):
        return set()
    district = cs.district
    demand_index = {d.id: k for k, d in enumerate(district.demands)}
    offering_index = {o.id: k for k, o in enumerate(district.offerings)}
    n_o = len(district.offerings)
    span = int(cs.remote_period.max()) + 1
    wanted = [
        (demand_index[a.demand_id] * n_o + offering_index[a.offering_id]) * span + a.remote_period
        for a in previous.assignments
        if a.demand_id in demand_index
        and a.offering_id in offering_index
        and a.remote_period < span
    ]
    keys = (cs.demand * n_o + cs.offering) * span + cs.remote_period
    found = np.isin(keys, np.asarray(wanted, dtype=np.int64))
    return set(np.flatnonzero(found).tolist())


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
    cs: CandidateSet, chosen: set[int], unmet: list[Unmet], stats: SolveStats
) -> Timetable:
    picked = np.fromiter(chosen, dtype=np.int64, count=len(chosen))
    picked = picked[np.lexsort((picked, cs.day[picked], cs.demand[picked]))]
    district = cs.district
    assignments = []
    for di, oi, day, period, minutes in zip(
        cs.demand[picked].tolist(),
        cs.offering[picked].tolist(),
        cs.day[picked].tolist(),
        cs.remote_period[picked].tolist(),
        cs.overlap[picked].tolist(),
        strict=True,
    ):
        o, d = district.offerings[oi], district.demands[di]
        assignments.append(
            Assignment(
                demand_id=d.id,
                class_id=d.class_id,
                school=d.school,
                offering_id=o.id,
                teacher=o.teacher,
                master_school=o.school,
                weekday=DAYS[day],
                master_period=o.period,
                remote_period=period,
                overlap_minutes=minutes,
            )
        )
    return Timetable(district_id=district.id, assignments=assignments, unmet=unmet, stats=stats)


@dataclass
class Solved:
    """A solve's timetable and, when its time limit left unmet demands ``not_explained``,
    the explainer that can still work out their reasons (``UnmetExplainer.explain_late``)."""

    timetable: Timetable
    late: UnmetExplainer | None


def solve(
    district: District,
    options: SolveOptions | None = None,
    *,
    previous: Timetable | None = None,
    progress: ProgressFn = _noop,
    cancel: CancelFlag | None = None,
) -> Timetable:
    return solve_keeping_late(
        district, options, previous=previous, progress=progress, cancel=cancel
    ).timetable


def solve_keeping_late(
    district: District,
    options: SolveOptions | None = None,
    *,
    previous: Timetable | None = None,
    progress: ProgressFn = _noop,
    cancel: CancelFlag | None = None,
) -> Solved:
    """``solve``, keeping what explaining the late demands after the result needs (a solve
    job does that: scheduler/jobs.py)."""
    options = options or SolveOptions()
    with ExitStack() as stack:
        pool: WorkerSet | None = None
        if options.mip and options.workers:
            # Kept between solves (scheduler/solver/workers.py); a new set starts its workers
            # while this process builds the candidates.
            pool = stack.enter_context(worker_set(options.workers))
        with gc_paused():
            return _solve(district, options, previous, progress, cancel, pool)


def _solve(
    district: District,
    options: SolveOptions,
    previous: Timetable | None,
    progress: ProgressFn,
    cancel: CancelFlag | None,
    pool: WorkerSet | None,
) -> Solved:
    t0 = time.perf_counter()
    # The limit bounds the whole job, explanations included (UnmetExplainer.finish). They get
    # EXPLAIN_GRACE of it past the MIP's deadline: the largest parts solve right up to it, so
    # without any their demands were all left unexplained (82,000 at 80,000 classes; 3 s
    # explain ~19,000 of them there, ~200 us each); the job still ends within limit + 10 %.
    deadline = time.monotonic() + options.time_limit * (1 + EXPLAIN_GRACE)
    progress(Progress(phase="candidates"))
    cs = candidates_for(district)
    keep = keep_set(cs, previous)
    problem = build_problem(cs, keep if previous is not None else None)
    progress(Progress(phase="greedy", message=f"{len(cs)} candidate pairs"))
    demanded = sum(d.periods_per_week for d in district.demands)
    # A demand is served at most its periods a week, and at most once per candidate pair.
    members = np.diff(cs.demand_start).tolist()
    trivial_bound = sum(
        min(d.periods_per_week, members[di]) for di, d in enumerate(district.demands)
    )
    stats = SolveStats(
        method="greedy",
        demanded=demanded,
        bound=trivial_bound,
        candidates=len(cs),
        impossible_pins=[f"{c}->{o}" for c, o in problem.impossible_pins],
    )

    def run_greedy(fill: bool = True) -> set[int]:
        g0 = time.perf_counter()
        found = greedy(cs, problem, keep, fill)
        stats.greedy_seconds = time.perf_counter() - g0
        stats.served = stats.greedy_served = len(found)
        return found

    static: dict[int, list[Reason]] = {}
    assert cs.book is not None
    index = rejection_index_for(district, cs.book)
    if not (options.mip and len(cs)):
        chosen = run_greedy()
        explained: UnmetExplainer | None = None
    else:
        parts = extract_parts(problem, components(problem), options.bundle_vars)
        pair_part = np.zeros(len(cs), dtype=np.int64)
        for part in parts:
            pair_part[part.global_x[part.is_x]] = part.index
        explainer = UnmetExplainer(cs, problem, pair_part, len(parts), static, index)
        remaining = options.time_limit - (time.perf_counter() - t0)
        mip_chosen: set[int] = set()
        bound = 0
        served = 0
        done = [0, 0]
        bound_at = [0.0]

        def starts(parts: list[Part]) -> list[Part]:
            # The greedy runs here while the workers solve the relaxations. A re-solve starts
            # from the published pairs that still fit: the relaxations are nearly always
            # integral, and a part that is not branches from there.
            found = run_greedy(fill=previous is None)
            progress(Progress(phase="mip", parts_total=len(parts), served=len(found)))
            return with_starts(problem, parts, found)

        def report_mip(message: str = "") -> None:
            progress(
                Progress(
                    phase="mip",
                    parts_done=done[0],
                    parts_total=len(parts),
                    served=served,
                    bound=bound,
                    message=message,
                )
            )

        def on_phase1(first: Phase1) -> None:
            nonlocal bound, served
            bound_at[0] = time.perf_counter() - t0
            bound += first.bound
            served += first.served
            done[1] += int(first.optimal)
            report_mip()

        def on_part(r: PartResult) -> None:
            mip_chosen.update(r.chosen)
            explainer.part_done(r.part, r.chosen)
            done[0] += 1
            report_mip()

        def on_fault(fault: PartFault) -> None:
            stats.part_faults.append(fault)
            report_mip(f"part {fault.part} ({fault.step}): {fault.reason}")

        needs = needs_rejections(cs)
        todo = iter(np.flatnonzero(needs).tolist())

        def while_solving() -> bool:
            # While the workers solve: first the reasons that do not depend on the solution
            # (a slice at a time, so that results are collected promptly), then the unmet
            # demand of the parts already final.
            chunk = list(itertools.islice(todo, 400))
            if chunk:
                static.update(static_reasons(cs, chunk, index, needs))
                return True
            # A slice at a time too: a large part's demands all at once kept the workers'
            # deadline unchecked for seconds (a 60 s limit took 69 s at 80,000 classes).
            return explainer.work(IDLE_SLICE)

        run_parts(
            parts,
            max(0.1, remaining),
            pool,
            options.workers,
            cancel,
            starts,
            on_phase1,
            on_part,
            while_solving,
            on_fault,
        )
        stats.bound_seconds = bound_at[0]
        # Every part starts from the greedy; a part never returns fewer served periods.
        chosen = mip_chosen
        stats.method = "mip"
        stats.served = len(chosen)
        stats.bound = max(bound, len(chosen))
        stats.parts = len(parts)
        stats.parts_optimal = done[1]
        explained = explainer
    stats.gap_pct = 100.0 * (stats.bound - stats.served) / stats.bound if stats.bound else 0.0
    if previous is not None:
        stats.forced = forced_changes(cs, previous, keep)
        stats.changed = len(keep - chosen) + (len(previous.assignments) - len(keep))
    progress(Progress(phase="explain", served=stats.served, bound=stats.bound))
    stats.seconds = time.perf_counter() - t0
    if explained is None:
        explained = UnmetExplainer(cs, problem, np.zeros(len(cs), dtype=np.int64), 1, static, index)
        explained.part_done(0, sorted(chosen))
    unmet = explained.finish(deadline)
    timetable = to_timetable(cs, chosen, unmet, stats)
    late = (
        f"{explained.unexplained} unmet demands not explained in time (the time limit ended)"
        if explained.unexplained
        else ""
    )
    progress(Progress(phase="done", served=stats.served, bound=stats.bound, message=late))
    return Solved(timetable, explained if explained.late else None)
