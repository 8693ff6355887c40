"""The local side of rooms: which connections of this process are in which room.

One store subscription per room with local participants; events arriving on it are
delivered to the local connections they are meant for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from pydantic import ValidationError

from contracts.close_codes import CLOSE_KICKED, CLOSE_ROOM_CLOSED
from contracts.events import RoomEvent, room_channel
from contracts.protocol import ServerMessage
from contracts.rooms import Participant, Role, Room
from contracts.store import Store, Subscription
from signaling.media_messages import protocol_message
from signaling.metrics import ROOMS_LOCAL
from signaling.visibility import can_see

log = logging.getLogger(__name__)


class LocalPeer(Protocol):
    participant_id: str
    role: Role
    # Its copy of itself as the store has it, kept current from the room's events: what is
    # written back if the store loses it (a Redis restarted empty).
    participant: Participant | None

    def deliver(self, message: ServerMessage) -> None:
        """Queue a message for the client (never blocks)."""

    async def terminate(self, message: ServerMessage | None, close_code: int) -> None:
        """Send a last message and close the connection."""


class _LocalRoom:
    def __init__(self, room: Room, subscription: Subscription) -> None:
        # The room as its latest local join read it: written back if the store loses it.
        self.room = room
        self.peers: dict[str, LocalPeer] = {}
        self.subscription = subscription
        self.pump: asyncio.Task[None] | None = None


class RoomHub:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._rooms: dict[str, _LocalRoom] = {}
        self._lock = asyncio.Lock()

    def local_peer(self, room_id: str, participant_id: str) -> LocalPeer | None:
        room = self._rooms.get(room_id)
        return room.peers.get(participant_id) if room else None

    def local_rooms(self) -> list[str]:
        return list(self._rooms)

    def local_members(self) -> list[tuple[Room, list[Participant]]]:
        """Each room with local connections, and their participants (this process's copies)."""
        out = []
        for local in self._rooms.values():
            members = [p.participant for p in local.peers.values() if p.participant is not None]
            out.append((local.room, members))
        return out

    async def attach(self, room: Room, peer: LocalPeer) -> None:
        async with self._lock:
            local = self._rooms.get(room.id)
            if local is None:
                sub = await self._store.subscribe(room_channel(room.id))
                local = _LocalRoom(room, sub)
                local.pump = asyncio.create_task(self._pump(room.id, local), name=f"room-{room.id}")
                self._rooms[room.id] = local
                ROOMS_LOCAL.set(len(self._rooms))
            local.room = room
            local.peers[peer.participant_id] = peer

    async def detach(self, room_id: str, participant_id: str) -> None:
        async with self._lock:
            room = self._rooms.get(room_id)
            if room is None:
                return
            room.peers.pop(participant_id, None)
            if room.peers:
                return
            del self._rooms[room_id]
            ROOMS_LOCAL.set(len(self._rooms))
        await room.subscription.close()
        if room.pump is not None and room.pump is not asyncio.current_task():
            room.pump.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await room.pump

    async def publish(self, event: RoomEvent) -> None:
        await self._store.publish(room_channel(event.room_id), event.model_dump_json())

    async def close(self) -> None:
        for room_id in list(self._rooms):
            room = self._rooms.get(room_id)
            if room is None:
                continue
            for pid in list(room.peers):
                await self.detach(room_id, pid)

    async def _pump(self, room_id: str, room: _LocalRoom) -> None:
        async for raw in room.subscription:
            try:
                event = RoomEvent.model_validate_json(raw)
            except ValidationError:
                log.warning("dropping malformed room event on %s", room_id)
                continue
            try:
                await self._dispatch(room, event)
            except Exception:
                log.exception("room event dispatch failed in %s", room_id)

    async def _dispatch(self, room: _LocalRoom, event: RoomEvent) -> None:
        if event.target is not None:
            peer = room.peers.get(event.target)
            if peer is None:
                return
            if event.action == "kick":
                await peer.terminate(event.message, CLOSE_KICKED)
            elif event.message is not None:
                peer.deliver(event.message)
            elif event.media is not None:
                peer.deliver(protocol_message(event.media))
            return
        for pid, peer in list(room.peers.items()):
            if pid == event.exclude:
                continue
            if event.action == "close":
                await peer.terminate(event.message, CLOSE_ROOM_CLOSED)
            elif event.message is not None and can_see(peer.role, event.about_role):
                peer.deliver(event.message)
