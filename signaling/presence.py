"""Liveness of signaling processes, and removal of participants whose process died.

Each process refreshes ``node:signaling:{id}`` with a TTL. A participant records the
process holding its WebSocket; when that key expires (the process crashed or lost
its network), any surviving process removes the participant and tells its room,
just as a WebSocket heartbeat timeout does for a silent client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contracts.store.metrics import STORE_UP
from contracts.store.outage import OutageLog
from signaling.service import RoomService

log = logging.getLogger(__name__)


def node_key(node_id: str) -> str:
    return f"kv:node:signaling:{node_id}"


class Presence:
    def __init__(self, service: RoomService, interval: float) -> None:
        self.service = service
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def beat(self) -> None:
        await self.service.store.set(node_key(self.service.node_id), "1", ttl=self.interval * 3)

    async def sweep(self) -> int:
        """Remove participants held by dead processes; returns how many."""
        store, rooms = self.service.store, self.service.repo
        alive: dict[str, bool] = {self.service.node_id: True}
        removed = 0
        for room in await rooms.all():
            for participant in await rooms.list_participants(room.id):
                node = participant.node_id
                if node not in alive:
                    alive[node] = await store.get(node_key(node)) is not None
                if not alive[node] and await self.service.remove(
                    participant, "timeout", kick=False
                ):
                    removed += 1
        return removed

    async def start(self) -> None:
        await self.beat()
        STORE_UP.set(1)
        self._task = asyncio.create_task(self._run(), name="signaling-presence")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.service.store.delete(node_key(self.service.node_id))

    async def _run(self) -> None:
        outage = OutageLog(log, "presence sweep")
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.beat()
                STORE_UP.set(1)
                outage.ok()
                removed = await self.sweep()
                if removed:
                    log.info("removed %d participants of dead signaling processes", removed)
            except Exception as exc:
                STORE_UP.set(0)
                outage.failed(exc)
