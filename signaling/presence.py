"""Liveness of signaling processes, and removal of participants whose process died.

Each process refreshes ``node:signaling:{id}`` with a TTL. A participant records the
process holding its WebSocket; when that key expires (the process crashed or lost
its network), any surviving process removes the participant and tells its room,
just as a WebSocket heartbeat timeout does for a silent client.

Each process also writes back what the store lost and it still holds (docs/operations.md):
the rooms it has connections in and their participants, after a Redis restarted empty (the
store's epoch marker is gone) or after any outage (writes of the last second may not have
reached an AOF on disk). It checks the marker every second, one GET; the write-back reads
one hash per local room and writes only what is missing, and runs only then. No
participant is judged dead while the store settles: every process re-beats first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contracts.store.metrics import STORE_UP
from contracts.store.outage import OutageLog
from contracts.store.watch import StoreWatch
from signaling.rooms import participants_key
from signaling.service import RoomService

log = logging.getLogger(__name__)


# How often the store is checked for having lost its data (and retried while it is down).
CHECK_SECONDS = 1.0


def node_key(node_id: str) -> str:
    return f"kv:node:signaling:{node_id}"


class Presence:
    def __init__(
        self, service: RoomService, interval: float, watch: StoreWatch | None = None
    ) -> None:
        self.service = service
        self.interval = interval
        self.watch = watch if watch is not None else StoreWatch(service.store)
        self._task: asyncio.Task[None] | None = None
        self._recoveries = 0

    async def beat(self) -> None:
        await self.service.store.set(node_key(self.service.node_id), "1", ttl=self.interval * 3)

    async def restore(self) -> int:
        """Write back the local rooms and participants the store lacks; returns how many
        participants. A room still there is left as it is (it may be newer than our copy)."""
        repo, restored = self.service.repo, 0
        for room, members in self.service.hub.local_members():
            await repo.create(room)
            stored = await self.service.store.hmget(
                participants_key(room.id), [p.id for p in members]
            )
            for participant, raw in zip(members, stored, strict=True):
                if raw is None:
                    await repo.put_participant(participant)
                    restored += 1
        return restored

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
        await self.watch.emptied()  # learns the store's epoch
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
        loop = asyncio.get_running_loop()
        next_beat = loop.time() + self.interval
        while True:
            await asyncio.sleep(min(CHECK_SECONDS, self.interval))
            try:
                emptied = await self.watch.emptied()
                self.watch.answered()
                back = self.watch.recoveries != self._recoveries
                self._recoveries = self.watch.recoveries
                STORE_UP.set(1)
                outage.ok()
                if emptied or back:
                    # Our key first, so no other process sweeps our participants meanwhile.
                    await self.beat()
                    next_beat = loop.time() + self.interval
                    restored = await self.restore()
                    log.warning(
                        "the store is back%s: %d participants written back",
                        " empty" if emptied else "",
                        restored,
                    )
                if loop.time() < next_beat:
                    continue
                next_beat = loop.time() + self.interval
                await self.beat()
                if self.watch.settling:
                    continue  # other processes may not have re-beaten yet
                removed = await self.sweep()
                if removed:
                    log.info("removed %d participants of dead signaling processes", removed)
            except Exception as exc:
                self.watch.failed(exc)
                STORE_UP.set(0)
                outage.failed(exc)
