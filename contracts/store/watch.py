"""Noticing that the store came back from an outage, or came back empty.

A Redis restarted with its data (AOF) has lost only what expired while it was down: the
heartbeat keys of every process, each re-written on its next beat. A Redis restarted empty
has lost everything; what the processes hold in memory (live connections, hosted rooms) is
written back by them. Either way, for a few seconds after the store is back the absence of
a heartbeat key says nothing about its process, so nothing is judged dead from it until
the store has ``settled``.

Loss is detected with one marker key (``kv:store:epoch``, no TTL, a random value set by the
first process that finds it missing): a process that remembers another value, or finds
none, knows the store was emptied (or replaced) since it last looked. One GET per check.
"""

from __future__ import annotations

import secrets
import time

from contracts.store.base import Store
from contracts.store.outage import UNREACHABLE

EPOCH_KEY = "kv:store:epoch"
# Longer than a media node's heartbeat TTL (3 s) plus a check interval: by then every live
# process that beats each second has re-written its key.
SETTLE_SECONDS = 5.0


class StoreWatch:
    def __init__(self, store: Store, settle_seconds: float = SETTLE_SECONDS) -> None:
        self.store = store
        self.settle_seconds = settle_seconds
        self._epoch: str | None = None
        self._down = False
        self._settled_at = 0.0
        # Times the store came back after a failed call (any loop of the process saw it).
        self.recoveries = 0

    @property
    def settling(self) -> bool:
        """Whether the store came back (or came back empty) too recently to trust absences."""
        return self._down or time.monotonic() < self._settled_at

    def failed(self, exc: BaseException) -> None:
        """A call to the store raised ``exc``: if the store is unreachable, it is down."""
        if isinstance(exc, UNREACHABLE):
            self._down = True

    def answered(self) -> None:
        """A call to the store succeeded: if it had failed, the store is back."""
        if self._down:
            self._down = False
            self.recoveries += 1
            self._settle()

    def _settle(self) -> None:
        self._settled_at = time.monotonic() + self.settle_seconds

    async def emptied(self) -> bool:
        """Whether the store lost its data since the last call (never on the first)."""
        value = await self.store.get(EPOCH_KEY)
        if value is None:
            # Of several processes finding it missing, one value wins; all adopt it.
            await self.store.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
            value = await self.store.get(EPOCH_KEY)
        lost = self._epoch is not None and value != self._epoch
        self._epoch = value
        if lost:
            self._settle()
        return lost
