"""Which lesson rooms are sent as live HLS: by the room's kind (``SANKE_HLS_KINDS``),
名校网络课堂 (broadcast) and 名师课堂 (master) by default, the rooms with large audiences."""

from __future__ import annotations

from collections.abc import Iterable

from contracts.rooms import RoomKind
from signaling.rooms import RoomRepository

DEFAULT_HLS_KINDS = frozenset({RoomKind.master, RoomKind.broadcast})


class LessonHls:
    """The HLS hooks of a process that hosts an SFU worker."""

    def __init__(self, rooms: RoomRepository, kinds: Iterable[RoomKind] = DEFAULT_HLS_KINDS):
        self.rooms = rooms
        self.kinds = frozenset(kinds)

    async def should_package(self, room_id: str) -> bool:
        room = await self.rooms.get(room_id)
        return room is not None and room.kind in self.kinds
