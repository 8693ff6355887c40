"""Solver worker processes of our own, kept between solves.

Why not ``multiprocessing.Pool``: when a pool's worker is killed (``kill -9``, the kernel's
OOM killer) the pool quietly starts a new one and the task it ran is never answered, so
``AsyncResult.get()`` waits forever. ``concurrent.futures.ProcessPoolExecutor`` does notice
(``BrokenProcessPool``) but then fails *every* pending task and the whole executor, and it can
stop no single task at a deadline. Here each worker is one spawned process with one pipe and at
most one task, so the solving process knows which part every worker holds: a dead worker's
sentinel names the part it lost, and a part past its deadline is stopped by killing exactly
its worker. Workers stream their improving incumbents over the pipe, so a stopped part keeps
the best solution it had found.

Starting a spawned worker costs ~0.5 s of CPU (interpreter, numpy, SciPy and HiGHS imports):
on two cores a re-solve would spend a quarter of its two-second budget starting processes. A
solve checks a set out for its whole run (two solves never share one), hands it back when it
ends normally, and stops it when it was cancelled or failed (a worker may still be inside
HiGHS). At most one idle set is kept; it is stopped at exit.
"""

from __future__ import annotations

import atexit
import multiprocessing
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any

_lock = threading.Lock()
_idle: list[tuple[int, WorkerSet]] = []
_spawn = multiprocessing.get_context("spawn")


def _serve(conn: Connection) -> None:
    """A worker's loop: one task at a time, ``(key, fn, args)`` in, then ``("incumbent", key,
    value)`` for every improving solution and ``("done", key, result)`` or ``("error", key,
    text)`` out."""
    threading.Thread(target=_exit_with_parent, name="parent-watch", daemon=True).start()
    conn.send(("ready", -1, None))
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return  # the solving process went away
        if message is None:
            return
        key, fn, args = message

        def incumbent(value: object, key: int = key) -> None:
            conn.send(("incumbent", key, value))

        try:
            result = fn(*args, incumbent=incumbent)
        except Exception as exc:  # reported to the solving process, which fails the solve
            conn.send(("error", key, f"{type(exc).__name__}: {exc}"))
        else:
            conn.send(("done", key, result))


def _exit_with_parent() -> None:
    """A worker whose solving process was killed (``kill -9``, out of memory) would finish its
    part (up to the deadline) for nobody: it exits as soon as it sees the parent gone. This
    thread runs whenever HiGHS calls back into Python (the interrupt callback, often)."""
    parent = multiprocessing.parent_process()
    while parent is not None and parent.is_alive():
        time.sleep(0.5)
    os._exit(1)


@dataclass
class Worker:
    process: BaseProcess
    conn: Connection
    ready: bool = False  # its imports are done: a task sent now is read at once
    key: int | None = None  # the task it runs
    deadline: float = 0.0  # when that task is stopped (wall clock)

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.is_alive()

    def stop(self) -> None:
        """Kill at once: it may be deep inside HiGHS, which polls no signal."""
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self.conn.close()


def _start() -> Worker:
    ours, theirs = _spawn.Pipe()
    process = _spawn.Process(target=_serve, args=(theirs,), daemon=True, name="sanke-solver")
    process.start()
    theirs.close()  # so that our end sees EOF when the worker dies
    return Worker(process, ours)


@dataclass
class WorkerSet:
    """``size`` worker processes; dead or stopped ones are replaced when work needs them."""

    size: int
    workers: list[Worker] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.fill()

    def fill(self) -> None:
        while len(self.workers) < self.size:
            self.workers.append(_start())

    def prune(self) -> None:
        """Drop the workers that died while idle (between solves)."""
        for worker in [w for w in self.workers if w.key is None and not w.alive()]:
            self.replace(worker)

    def pids(self) -> list[int]:
        return [w.pid for w in self.workers if w.pid is not None]

    def alive(self) -> bool:
        return any(w.alive() for w in self.workers)

    def free(self, replace: bool = True) -> Worker | None:
        """A ready worker with no task; ``replace`` starts replacements for dead ones."""
        if replace:
            self.fill()
        return next((w for w in self.workers if w.ready and w.key is None), None)

    def replace(self, worker: Worker) -> None:
        worker.stop()
        self.workers.remove(worker)

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers.clear()


# What a task's end looks like to the caller: its result, or why it was lost and the last
# incumbent it streamed (None if it streamed none).
OnDone = Callable[[int, Any], None]
OnLost = Callable[[int, str, Any], None]


# A worker past its task's deadline by this much is killed: HiGHS's interrupt callback stops it
# at the deadline wherever HiGHS polls, so this only catches a HiGHS that does not poll (root-
# node cut generation) plus the time a result takes to travel back.
KILL_GRACE = 0.25
# Workers that die before they are ready (a broken install) are not restarted for ever.
MAX_FAILED_STARTS = 3
# A worker lost during a solve is replaced only if the work left has this long to run: a new
# one takes ~0.5 s of CPU (on a loaded machine seconds) before it can take a task, taken from
# the workers still solving.
REPLACE_IF_LEFT = 3.0
# A task that would have less than this before its deadline is not started.
MIN_TASK = 0.05


def run_tasks(
    pool: WorkerSet,
    fn: Callable[..., Any],
    tasks: list[tuple[Any, ...]],
    deadline_of: Callable[[int, float], float],
    on_done: OnDone,
    on_lost: OnLost,
    check: Callable[[], None],
    idle: Callable[[], bool] | None = None,
    on_expired: Callable[[int], None] | None = None,
) -> None:
    """``fn(*task, incumbent=...)`` for every task in order, each on a free worker.

    ``deadline_of(k, started)`` is when task ``k``, started at ``started`` (wall clock), is
    stopped. Every task ends in ``on_done`` or, if its worker died or was stopped at the
    deadline, in ``on_lost`` with the last incumbent it streamed; so this returns by the last
    deadline (plus ``KILL_GRACE``) whatever the workers do. ``check`` raises to abandon the
    run (cancel); ``idle`` does a short slice of other work and says whether it found any.
    A task whose deadline comes before a worker is free for it goes to ``on_expired`` (or
    ``on_lost``) unstarted.
    """
    queue = list(range(len(tasks)))
    running = 0
    best: dict[int, Any] = {}
    failed_starts = 0
    while queue or running:
        check()
        now = time.time()
        for k in [k for k in queue if deadline_of(k, now) - now < MIN_TASK]:
            queue.remove(k)
            if on_expired is not None:
                on_expired(k)
            else:
                on_lost(k, "the deadline came before a worker was free for it", None)
        left = max((deadline_of(k, now) for k in queue), default=now) - now
        while queue and (free := pool.free(replace=left > REPLACE_IF_LEFT)) is not None:
            k = queue.pop(0)
            free.key, free.deadline = k, deadline_of(k, time.time())
            free.conn.send((k, fn, tasks[k]))
            running += 1
        busy = idle is not None and idle()
        if not busy:
            waits: list[Any] = [w.conn for w in pool.workers]
            waits += [w.process.sentinel for w in pool.workers]
            nearest = min((w.deadline for w in pool.workers if w.key is not None), default=0)
            timeout = min(0.05, max(0.0, nearest + KILL_GRACE - time.time()))
            wait(waits, timeout if running else 0.05)
        for worker in list(pool.workers):
            if _read(worker, best, on_done):
                running -= 1
            if worker.key is None:
                if not worker.alive():
                    failed_starts += int(not worker.ready)
                    if failed_starts > MAX_FAILED_STARTS:
                        raise RuntimeError("solver worker processes die as they start")
                    pool.replace(worker)
                continue
            if worker.alive() and time.time() <= worker.deadline + KILL_GRACE:
                continue
            key, pid = worker.key, worker.pid
            if worker.alive():
                reason = f"stopped at its deadline (worker process {pid} killed)"
            else:
                reason = f"worker process {pid} died ({_exit(worker.process.exitcode)})"
            pool.replace(worker)
            running -= 1
            on_lost(key, reason, best.pop(key, None))


def _read(worker: Worker, best: dict[int, Any], on_done: OnDone) -> bool:
    """Everything ``worker`` has sent; whether it finished its task."""
    finished = False
    while worker.key is not None or not worker.ready:
        try:
            if not worker.conn.poll():
                break
            kind, key, value = worker.conn.recv()
        except (EOFError, OSError):
            break  # it died: its sentinel tells
        if kind == "ready":
            worker.ready = True
        elif kind == "incumbent":
            best[key] = value
        elif kind == "done":
            worker.key = None
            best.pop(key, None)
            finished = True
            on_done(key, value)
        else:
            raise RuntimeError(f"a solver task failed in its worker: {value}")
    return finished


def _exit(code: int | None) -> str:
    if code is not None and code < 0:
        return f"killed by signal {-code}"
    return f"exit code {code}"


@contextmanager
def worker_set(workers: int) -> Iterator[WorkerSet]:
    pool = _checkout(workers)
    finished = False
    try:
        yield pool
        finished = True
    finally:
        if finished:
            _checkin(workers, pool)
        else:
            pool.stop()


def idle_sets() -> int:
    with _lock:
        return len(_idle)


def shutdown() -> None:
    """Stop the idle sets."""
    with _lock:
        sets = [s for _, s in _idle]
        _idle.clear()
    for s in sets:
        s.stop()


def _checkout(workers: int) -> WorkerSet:
    with _lock:
        for k, (size, pool) in enumerate(_idle):
            if size == workers:
                del _idle[k]
                pool.prune()
                pool.fill()
                return pool
    return WorkerSet(workers)


def _checkin(workers: int, pool: WorkerSet) -> None:
    with _lock:
        _idle.append((workers, pool))
        extra = [p for _, p in _idle[:-1]]
        del _idle[:-1]
    for p in extra:
        p.stop()


atexit.register(shutdown)
