"""Handing freed native memory back to the system: glibc's ``malloc_trim``, on a timer.

Every peer connection allocates memory outside Python's heap: OpenSSL's DTLS context and
certificate, libsrtp's sessions, socket buffers. When a classroom leaves, glibc keeps the
freed chunks in its arenas, and in a process where classrooms join and leave all day the
holes between live allocations are rarely reused as they are: the SFU's resident memory
crept up ~10 MB a minute under a join every 3 s (benchmarks/soak.py) while the number of
Python objects stayed flat. ``malloc_trim(0)`` gives every arena's free pages back
(glibc ≥ 2.8 releases them from the middle of the heap too, not only its top), which is
what that growth was. The call takes milliseconds and holds each arena's lock, so it runs
in a thread, never on the event loop.

Where the C library is not glibc (musl in an Alpine image) there is nothing to call and the
trimmer does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import logging
import os
from collections.abc import Callable

from prometheus_client import Counter

log = logging.getLogger(__name__)

HEAP_TRIMS = Counter("sanke_heap_trims", "times freed native memory was handed back")
HEAP_RELEASED = Counter(
    "sanke_heap_released_bytes", "resident memory handed back to the system by malloc_trim"
)


def glibc_malloc_trim() -> Callable[[], None] | None:
    """``malloc_trim(0)`` of this process's C library, or None where it has none."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        trim = libc.malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int

    def call() -> None:
        trim(0)

    return call


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class HeapTrimmer:
    """Calls ``malloc_trim`` every ``interval`` seconds while started (0: never)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._trim = glibc_malloc_trim() if interval > 0 else None
        self._task: asyncio.Task[None] | None = None

    @property
    def active(self) -> bool:
        return self._trim is not None

    def trim_once(self) -> int:
        """Trims now; returns the resident bytes it gave back (0 if none or unmeasurable)."""
        if self._trim is None:
            return 0
        before = resident_bytes()
        self._trim()
        released = max(0, before - resident_bytes())
        HEAP_TRIMS.inc()
        HEAP_RELEASED.inc(released)
        return released

    def start(self) -> None:
        if self._trim is None:
            if self.interval > 0:
                log.info("no glibc malloc_trim here: freed native memory is not trimmed")
            return
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                released = await asyncio.to_thread(self.trim_once)
            except OSError as exc:  # /proc unreadable: trimming still helps, stop measuring
                log.debug("heap trim: %r", exc)
                continue
            log.debug("heap trim gave back %.1f MB", released / 2**20)
