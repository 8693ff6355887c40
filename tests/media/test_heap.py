"""The heap trimmer gives freed native memory in the middle of the heap back to the system,
and on a timer while started (what a day of classrooms joining and leaving needs)."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util

import pytest
from prometheus_client import REGISTRY

from media.heap import HeapTrimmer, glibc_malloc_trim, resident_bytes

pytestmark = pytest.mark.skipif(glibc_malloc_trim() is None, reason="needs glibc")

CHUNK = 32 * 1024  # below glibc's mmap threshold: these live in the heap's arenas
COUNT = 4000  # 128 MB


def trims_so_far() -> float:
    return REGISTRY.get_sample_value("sanke_heap_trims_total") or 0.0


def fragment_the_heap() -> list[int]:
    """Fills the heap with chunks, frees all but every 100th: free pages, pinned between."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    chunks = [libc.malloc(CHUNK) for _ in range(COUNT)]
    for address in chunks:
        ctypes.memset(address, 1, CHUNK)  # touched, so resident
    pinned = chunks[::100]
    for address in chunks:
        if address not in pinned:
            libc.free(address)
    return pinned


def test_a_trim_gives_back_freed_pages_between_live_allocations() -> None:
    pinned = fragment_the_heap()
    before = resident_bytes()
    released = HeapTrimmer(interval=60).trim_once()
    assert released > 64 * 2**20, f"gave back {released / 2**20:.1f} MB of ~124 MB freed"
    assert resident_bytes() < before - 64 * 2**20
    assert len(pinned) == COUNT // 100


async def test_started_it_trims_on_its_timer_and_stops() -> None:
    trimmer = HeapTrimmer(interval=0.05)
    count = trims_so_far()
    trimmer.start()
    await asyncio.sleep(0.5)
    await trimmer.stop()
    trims = trims_so_far() - count
    assert trims >= 3
    await asyncio.sleep(0.2)
    assert trims_so_far() - count == trims  # stopped means stopped


def test_interval_zero_never_trims() -> None:
    trimmer = HeapTrimmer(interval=0)
    assert not trimmer.active
    assert trimmer.trim_once() == 0
