"""Removals the store could not take yet: retried until it answers again.

A connection that closes while Redis is unreachable cannot take its participant out of the
room, and nothing else would: the participant has no connection left to time out, and the
write-back after an outage (``contracts.store.watch``) re-creates only what a process still
holds. So the removal waits here and is retried every ``interval`` seconds until the store
takes it (the room then hears ``participant_left`` as it would have). Bounded: past
``limit`` pending removals the oldest is dropped with a warning (the room's close clears it).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

from contracts.protocol import LeaveReason
from contracts.rooms import Participant
from contracts.store.outage import STORE_UNREACHABLE

log = logging.getLogger(__name__)

Remove = Callable[[Participant, LeaveReason], Awaitable[object]]


class PendingRemovals:
    def __init__(self, remove: Remove, *, interval: float = 1.0, limit: int = 50_000) -> None:
        self._remove = remove
        self.interval = interval
        self.limit = limit
        self._pending: OrderedDict[str, tuple[Participant, LeaveReason]] = OrderedDict()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, participant: Participant, reason: LeaveReason) -> None:
        self._pending[f"{participant.room_id}/{participant.id}"] = (participant, reason)
        while len(self._pending) > self.limit:
            key, _ = self._pending.popitem(last=False)
            log.warning("pending removals full: %s stays listed until its room closes", key)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._retry())

    async def _retry(self) -> None:
        while self._pending:
            await asyncio.sleep(self.interval)
            for key, (participant, reason) in list(self._pending.items()):
                try:
                    await self._remove(participant, reason)
                except STORE_UNREACHABLE:
                    break  # still down: the rest would fail the same way
                except Exception:
                    log.exception("retried removal of %s failed", key)
                else:
                    log.info("removed %s after the store came back", key)
                self._pending.pop(key, None)

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
