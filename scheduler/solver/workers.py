"""Solver worker processes, kept between solves.

Starting a spawned worker costs ~0.5 s of CPU (interpreter, numpy, SciPy and HiGHS imports):
on two cores a re-solve would spend a quarter of its two-second budget starting processes. A
solve checks a pool out for its whole run (two solves never share one), hands it back when it
ends normally, and terminates it when it was cancelled or failed (a worker may still be inside
HiGHS). At most one idle pool is kept; it is terminated at exit.
"""

from __future__ import annotations

import atexit
import multiprocessing
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.pool import Pool

_lock = threading.Lock()
_idle: list[tuple[int, Pool]] = []


@contextmanager
def worker_pool(workers: int) -> Iterator[Pool]:
    pool = _checkout(workers)
    finished = False
    try:
        yield pool
        finished = True
    finally:
        if finished:
            _checkin(workers, pool)
        else:
            _stop(pool)


def idle_pools() -> int:
    with _lock:
        return len(_idle)


def shutdown() -> None:
    """Terminate the idle pools."""
    with _lock:
        pools = [pool for _, pool in _idle]
        _idle.clear()
    for pool in pools:
        _stop(pool)


def _checkout(workers: int) -> Pool:
    with _lock:
        for k, (size, pool) in enumerate(_idle):
            if size == workers:
                del _idle[k]
                return pool
    return multiprocessing.get_context("spawn").Pool(workers)


def _checkin(workers: int, pool: Pool) -> None:
    with _lock:
        _idle.append((workers, pool))
        extra = [p for _, p in _idle[:-1]]
        del _idle[:-1]
    for p in extra:
        _stop(p)


def _stop(pool: Pool) -> None:
    pool.terminate()
    pool.join()


atexit.register(shutdown)
