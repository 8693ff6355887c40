"""Rooms and their participants in the Store.

Layout (under the store's prefix): ``rooms`` hash id → Room JSON; ``room:{id}:participants``
hash participant id → Participant JSON. Values are stored as JSON, so callers never share
mutable objects with the store.
"""

from __future__ import annotations

from contracts.rooms import Participant, Room
from contracts.store import Store
from contracts.store.base import Delete, HDel

ROOMS = "rooms"


def participants_key(room_id: str) -> str:
    return f"room:{room_id}:participants"


class RoomRepository:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def create(self, room: Room) -> bool:
        """Store a new room; False (and nothing changes) if the id exists."""
        return await self.store.hsetnx(ROOMS, room.id, room.model_dump_json())

    async def put(self, room: Room) -> None:
        await self.store.hset(ROOMS, room.id, room.model_dump_json())

    async def get(self, room_id: str) -> Room | None:
        raw = await self.store.hget(ROOMS, room_id)
        return Room.model_validate_json(raw) if raw is not None else None

    async def all(self) -> list[Room]:
        return [Room.model_validate_json(raw) for raw in await self.store.hvals(ROOMS)]

    async def delete(self, room_id: str) -> bool:
        """Remove the room and its participants."""
        removed, _ = await self.store.atomically(
            [HDel(ROOMS, room_id), Delete(participants_key(room_id))]
        )
        return bool(removed)

    async def put_participant(self, participant: Participant) -> None:
        await self.store.hset(
            participants_key(participant.room_id), participant.id, participant.model_dump_json()
        )

    async def get_participant(self, room_id: str, participant_id: str) -> Participant | None:
        raw = await self.store.hget(participants_key(room_id), participant_id)
        return Participant.model_validate_json(raw) if raw is not None else None

    async def list_participants(self, room_id: str) -> list[Participant]:
        raws = await self.store.hvals(participants_key(room_id))
        return [Participant.model_validate_json(raw) for raw in raws]

    async def remove_participant(self, room_id: str, participant_id: str) -> bool:
        return await self.store.hdel(participants_key(room_id), participant_id)
