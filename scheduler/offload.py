"""Large inputs are parsed and validated in a child process, never on the event loop.

One ``json.loads`` or pydantic validation holds the GIL from start to end, so a thread would
stall ``/healthz`` and every live WebSocket just the same (measured: a 10 MB district stalled
the loop 4.4 s). Work on more than ``threshold`` bytes runs in a freshly spawned process that
exits afterwards, so the memory a parse needs (~600 MB for a province) goes back to the system
with it; at most ``concurrency`` such processes run at once, the others wait their turn.
Smaller inputs run in place: spawning costs ~0.5 s.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

from contracts.errors import ErrorCode, SankeError

OFFLOAD_BYTES = 1 << 20

P = ParamSpec("P")
R = TypeVar("R")


class Offloader:
    def __init__(self, threshold: int = OFFLOAD_BYTES, concurrency: int = 1) -> None:
        self.threshold = threshold
        self._slots = asyncio.Semaphore(concurrency)
        self.offloaded = 0  # how many calls ran in a child process (for tests and metrics)

    async def run(self, size: int, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """``fn(*args)``: in a child process when ``size`` (bytes of input) is over the limit."""
        if size <= self.threshold:
            return fn(*args, **kwargs)
        async with self._slots:
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            try:
                self.offloaded += 1
                future = pool.submit(fn, *args, **kwargs)
                return await asyncio.wrap_future(future)
            except BrokenProcessPool:
                raise SankeError(
                    ErrorCode.internal, "the upload could not be processed (worker died)", 503
                ) from None
            finally:
                # Not waiting: the child exits by itself once its task is done.
                pool.shutdown(wait=False, cancel_futures=True)
