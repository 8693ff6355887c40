"""Running the MIP parts: phase 1 of every part before any phase 2, in worker processes.

Phase 1 starts with the LP relaxations, which need no start: they run in the workers while
this process builds the greedy start. Only parts whose relaxation is fractional then need a
branch and bound from that start. Phase 2 shares the time left by part size.

Every task has a deadline derived from the solve's time limit, and a part whose worker dies
or overruns it is stopped there (``workers.run_tasks``): the part then keeps the best it has
(the incumbent its worker streamed, its phase-1 result, or the greedy start) and is reported
as a ``PartFault``. A lost part is not retried: an out-of-memory kill would only repeat.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np

from scheduler.solver.arrays import IntArray
from scheduler.solver.mip import (
    Part,
    PartResult,
    Phase1,
    Relaxation,
    result,
    solve_phase1_lp,
    solve_phase1_mip,
    solve_phase2,
)
from scheduler.solver.workers import WorkerSet, run_tasks
from scheduler.timetable import PartFault


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class SolveCancelled(Exception):
    pass


def check(cancel: CancelFlag | None) -> None:
    if cancel is not None and cancel.is_set():
        raise SolveCancelled()


def _run(
    pool: WorkerSet | None,
    fn: Callable[..., Any],
    tasks: list[tuple[Any, ...]],
    deadline_of: Callable[[int, float], float],
    cancel: CancelFlag | None,
    on_done: Callable[[int, Any], None],
    on_lost: Callable[[int, str, Any], None],
    idle: Callable[[], bool] | None,
    on_expired: Callable[[int], None] | None = None,
) -> None:
    """``fn(*task)`` for every task: on the workers, or one by one here (no workers; then
    only HiGHS's interrupt callback keeps the deadline)."""
    if pool is None:
        for k, args in enumerate(tasks):
            check(cancel)
            on_done(k, fn(*args))
        return
    run_tasks(
        pool, fn, tasks, deadline_of, on_done, on_lost, lambda: check(cancel), idle, on_expired
    )


class _Background:
    """``fn()`` in a thread; ``result()`` joins it and re-raises what it raised."""

    def __init__(self, fn: Callable[[], list[Part]]) -> None:
        self.done = threading.Event()
        self.value: list[Part] = []
        self.error: BaseException | None = None

        def run() -> None:
            try:
                self.value = fn()
            except BaseException as exc:  # handed to the solving thread in result()
                self.error = exc
            finally:
                self.done.set()

        self.thread = threading.Thread(target=run, name="sanke-greedy", daemon=True)
        self.thread.start()

    def result(self) -> list[Part]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        return self.value


def _served(part: Part, chosen: IntArray) -> int:
    return int(part.is_x[chosen].sum())


def run_parts(
    parts: list[Part],
    time_limit: float,
    pool: WorkerSet | None,
    workers: int,
    cancel: CancelFlag | None,
    starts: Callable[[list[Part]], list[Part]],
    on_phase1: Callable[[Phase1], None],
    on_part: Callable[[PartResult], None],
    idle: Callable[[], bool] | None = None,
    on_fault: Callable[[PartFault], None] = lambda _: None,
) -> None:
    """Phase 1 of every part (largest first), then phase 2 in the time left.

    ``starts`` returns the parts with their warm start; it runs in this process once the
    relaxations are under way. With workers, ``idle`` slices of work run here while the
    workers solve. Phase 2 shares the time left by part size over the workers, so every part
    gets its polish and the last one still ends by the deadline.
    """
    deadline = time.time() + time_limit
    # Phase 2 ends a little early: HiGHS overshoots its limit a bit (more on a loaded machine),
    # and results travel back.
    polish_deadline = deadline - min(1.0, 0.05 * time_limit)
    parts = sorted(parts, key=lambda p: -p.n_vars)
    check(cancel)
    whole = lambda _k, _started: deadline  # noqa: E731
    firsts: dict[int, Phase1] = {}
    faulted: set[int] = set()
    fractional: list[tuple[int, Relaxation]] = []

    def fault(k: int, step: Literal["relaxation", "branch_and_bound", "polish"], why: str,
              kept: Literal["incumbent", "phase1", "greedy"]) -> None:  # fmt: skip
        faulted.add(k)
        on_fault(PartFault(part=parts[k].index, step=step, reason=why, kept=kept,
                           variables=parts[k].n_vars))  # fmt: skip

    def fallback(k: int, bound: float, incumbent: IntArray | None) -> tuple[Phase1, bool]:
        """Phase 1 of a part whose worker was lost: the better of its incumbent and its
        start, with the bound known so far."""
        part = parts[k]
        chosen, from_incumbent = part.start, False
        if incumbent is not None and _served(part, incumbent) >= _served(part, part.start):
            chosen, from_incumbent = incumbent, True
        served = _served(part, chosen)
        proven = min(math.floor(bound + 1e-6), part.n_x) if math.isfinite(bound) else part.n_x
        return Phase1(chosen, served, max(proven, served), proven <= served, 0.0), from_incumbent

    relaxations = [(p, deadline) for p in parts]
    lost_relaxations: list[tuple[int, str]] = []

    def relaxed(k: int, found: Phase1 | Relaxation) -> None:
        if isinstance(found, Phase1):
            firsts[k] = found
            on_phase1(found)
        else:
            fractional.append((k, found))

    def relaxation_lost(k: int, why: str, _: Any) -> None:
        lost_relaxations.append((k, why))  # its fallback is the greedy start: after ``starts``

    if pool is None:
        parts = starts(parts)
        _run(pool, solve_phase1_lp, relaxations, whole, cancel, relaxed, relaxation_lost, idle)
    else:
        # The workers solve the relaxations while a thread here runs the greedy; the other
        # idle work waits for it (it reads what the greedy leaves alone, but would only slow it).
        greedy = _Background(lambda: starts(parts))
        try:
            ready = (lambda: greedy.done.is_set() and idle()) if idle is not None else None
            _run(pool, solve_phase1_lp, relaxations, whole, cancel, relaxed, relaxation_lost,
                 ready)  # fmt: skip
        finally:
            parts = greedy.result()
    for k, why in lost_relaxations:
        firsts[k], _ = fallback(k, math.inf, None)
        fault(k, "relaxation", why, "greedy")
        on_phase1(firsts[k])

    def branched(j: int, first: Phase1) -> None:
        firsts[fractional[j][0]] = first
        on_phase1(first)

    def branch_lost(j: int, why: str, incumbent: IntArray | None) -> None:
        k, relaxation = fractional[j]
        firsts[k], from_incumbent = fallback(k, relaxation.bound, incumbent)
        fault(k, "branch_and_bound", why, "incumbent" if from_incumbent else "greedy")
        on_phase1(firsts[k])

    tasks = [(parts[k], relaxation, deadline) for k, relaxation in fractional]
    _run(pool, solve_phase1_mip, tasks, whole, cancel, branched, branch_lost, idle)
    # A part that lost its worker in phase 1 is not polished (it may well lose it again).
    for k in sorted(faulted):
        on_part(result(parts[k], firsts[k], firsts[k].chosen, firsts[k].seconds))
    left = polish_deadline - time.time()
    slots = max(1, min(workers, len(parts)))
    total = sum(p.n_vars for p in parts) or 1
    order = [k for k in range(len(parts)) if k not in faulted]
    budgets = [left * slots * parts[k].n_vars / total for k in order]
    polish = [(parts[k], firsts[k], budgets[j], polish_deadline) for j, k in enumerate(order)]

    def polish_ends(j: int, started: float) -> float:
        return min(polish_deadline, started + budgets[j])

    def polish_lost(j: int, why: str, incumbent: IntArray | None) -> None:
        k = order[j]
        part, first = parts[k], firsts[k]
        chosen, kept = first.chosen, "phase1"
        if incumbent is not None and _served(part, incumbent) >= first.served:
            chosen, kept = np.asarray(incumbent, dtype=np.int64), "incumbent"
        fault(k, "polish", why, kept)  # type: ignore[arg-type]
        on_part(result(part, first, chosen, first.seconds))

    def unpolished(j: int) -> None:
        # No time left for its polish (as HiGHS with no time would): its phase-1 result.
        k = order[j]
        on_part(result(parts[k], firsts[k], firsts[k].chosen, firsts[k].seconds))

    _run(pool, solve_phase2, polish, polish_ends, cancel, lambda _, r: on_part(r), polish_lost,
         idle, unpolished)  # fmt: skip
