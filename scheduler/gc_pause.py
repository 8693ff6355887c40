"""Pausing Python's cycle collector while a solve or a large district's parse allocates.

A solve, or validating a province, creates millions of small objects (models, lists, enums,
times, arrays' bookkeeping) and none of them needs the cycle collector, but every allocation
burst still triggers collections, and each full one rescans the whole growing heap: 2-4x
slower solves, and at 80,000 classes two thirds of ``District.model_validate_json`` (11.4 s
of CPU with it, 3.8 s without). One counted pause for the process: solves and parses run in
threads side by side, and the collector runs again when the last of them ends.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0
_was_enabled = [True]  # whether the collector was on when the first holder began


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cycle collections inside the block (nor while any other thread is inside one); the
    collector is left as the first holder found it."""
    global _holders
    with _lock:
        if _holders == 0:
            _was_enabled[0] = gc.isenabled()
            gc.disable()
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _was_enabled[0]:
                # No gc.freeze() here: in ``sanke serve`` this process also runs the SFU, whose
                # closed peer connections wait as reference cycles for the collector; frozen,
                # they would never be freed. The one rescan of what a solve still holds costs
                # less than that leak.
                gc.enable()
