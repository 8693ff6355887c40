"""Running the MIP parts: phase 1 of every part before any phase 2, in worker processes.

Phase 1 starts with the LP relaxations, which need no start: they run in the workers while
this process builds the greedy start. Only parts whose relaxation is fractional then need a
branch and bound from that start. Phase 2 shares the time left by part size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from multiprocessing.pool import AsyncResult, Pool
from typing import Any, Generic, Protocol, TypeVar

from scheduler.solver.mip import (
    Part,
    PartResult,
    Phase1,
    Relaxation,
    solve_phase1_lp,
    solve_phase1_mip,
    solve_phase2,
)

T = TypeVar("T")


class CancelFlag(Protocol):
    def is_set(self) -> bool: ...


class SolveCancelled(Exception):
    pass


def check(cancel: CancelFlag | None) -> None:
    if cancel is not None and cancel.is_set():
        raise SolveCancelled()


class Tasks(Generic[T]):
    """``fn(*task)`` for every task: started now in a pool (which takes them in order as
    workers free up), or run one by one when collected (no pool)."""

    def __init__(
        self, pool: Pool | None, fn: Callable[..., T], tasks: list[tuple[Any, ...]]
    ) -> None:
        self.fn, self.tasks = fn, tasks
        self.pending: dict[int, AsyncResult[T]] | None = None
        if pool is not None:
            self.pending = {k: pool.apply_async(fn, args) for k, args in enumerate(tasks)}

    def collect(
        self,
        cancel: CancelFlag | None,
        on_done: Callable[[int, T], None],
        idle: Callable[[], bool] | None = None,
    ) -> None:
        """Wait for every result; ``idle`` does a short slice of other work while the
        workers run (instead of sleeping) and returns whether it found any."""
        if self.pending is None:
            for k, args in enumerate(self.tasks):
                check(cancel)
                on_done(k, self.fn(*args))
            return
        pending = self.pending
        while pending:
            check(cancel)
            for k in [k for k, res in pending.items() if res.ready()]:
                on_done(k, pending.pop(k).get())
            if pending and not (idle is not None and idle()):
                time.sleep(0.005)


def run_parts(
    parts: list[Part],
    time_limit: float,
    pool: Pool | None,
    workers: int,
    cancel: CancelFlag | None,
    starts: Callable[[list[Part]], list[Part]],
    on_phase1: Callable[[Phase1], None],
    on_part: Callable[[PartResult], None],
    idle: Callable[[], bool] | None = None,
) -> None:
    """Phase 1 of every part (largest first), then phase 2 in the time left.

    ``starts`` returns the parts with their warm start; it runs in this process once the
    relaxations are under way. With a pool, ``idle`` slices of work run here while the workers
    solve. Phase 2 shares the time left by part size over the workers, so every part gets its
    polish and the last one still ends by the deadline.
    """
    deadline = time.time() + time_limit
    # Phase 2 ends a little early: HiGHS overshoots its limit a bit (more on a loaded machine),
    # and results travel back.
    polish_deadline = deadline - min(1.0, 0.05 * time_limit)
    parts = sorted(parts, key=lambda p: -p.n_vars)
    check(cancel)
    relaxations = Tasks(pool, solve_phase1_lp, [(p, deadline) for p in parts])
    parts = starts(parts)
    firsts: dict[int, Phase1] = {}
    fractional: list[tuple[int, Relaxation]] = []

    def relaxed(k: int, result: Phase1 | Relaxation) -> None:
        if isinstance(result, Phase1):
            firsts[k] = result
            on_phase1(result)
        else:
            fractional.append((k, result))

    relaxations.collect(cancel, relaxed, idle)

    def branched(j: int, first: Phase1) -> None:
        firsts[fractional[j][0]] = first
        on_phase1(first)

    tasks = [(parts[k], relaxation, deadline) for k, relaxation in fractional]
    Tasks(pool, solve_phase1_mip, tasks).collect(cancel, branched, idle)
    left = polish_deadline - time.time()
    slots = max(1, min(workers, len(parts)))
    total = sum(p.n_vars for p in parts) or 1
    polish = [
        (p, firsts[k], left * slots * p.n_vars / total, polish_deadline)
        for k, p in enumerate(parts)
    ]
    Tasks(pool, solve_phase2, polish).collect(cancel, lambda _, r: on_part(r), idle)
