"""SFU nodes in the Store, and which node hosts which room (LiveKit's ``nodes`` and
``room_node_map``).

A node refreshes ``node:sfu:{id}`` (with its capacity and load) every second with a
3-second TTL, so a node that dies disappears within 3 s. A room is placed on the
least-loaded live node that is not draining, with ``HSETNX`` in the ``media:placements``
hash: two signaling processes placing the same room at once agree on one node.
"""

from __future__ import annotations

import time
from collections import Counter

from pydantic import BaseModel, ConfigDict, Field

from signaling.errors import ErrorCode, SankeError
from signaling.store import Store

NODE_HEARTBEAT_SECONDS = 1.0
NODE_TTL_SECONDS = 3.0


class NodeInfo(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    address: str = ""
    region: str = Field(default="", description="region key (province/city/county) it serves")
    capacity: int = Field(ge=0, description="lesson rooms this node may host at once")
    rooms: int = Field(default=0, ge=0)
    participants: int = Field(default=0, ge=0)
    draining: bool = False
    started_at: float = Field(default_factory=time.time)


def node_key(node_id: str) -> str:
    return f"node:sfu:{node_id}"


# Room placements, one hash (room -> node): placing a room counts the placements and the
# reaper checks them every half second, so they must be one read, not a key scan.
PLACEMENTS = "media:placements"


def node_channel(node_id: str) -> str:
    return f"sfu:{node_id}"


class NodeDirectory:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def register(self, info: NodeInfo) -> None:
        await self.store.set(node_key(info.id), info.model_dump_json(), ttl=NODE_TTL_SECONDS)

    async def unregister(self, node_id: str) -> None:
        await self.store.delete(node_key(node_id))

    async def node(self, node_id: str) -> NodeInfo | None:
        raw = await self.store.get(node_key(node_id))
        return NodeInfo.model_validate_json(raw) if raw else None

    async def live_nodes(self) -> list[NodeInfo]:
        nodes = []
        for key in await self.store.keys(node_key("*")):
            raw = await self.store.get(key)
            if raw:
                nodes.append(NodeInfo.model_validate_json(raw))
        return sorted(nodes, key=lambda n: n.id)

    async def capacity_by_region(self) -> dict[str, int]:
        """Lesson rooms the live, non-draining nodes of each region host at once."""
        out: dict[str, int] = {}
        for n in await self.live_nodes():
            if n.region and not n.draining:
                out[n.region] = out.get(n.region, 0) + n.capacity
        return out

    async def room_node(self, room_id: str) -> str | None:
        return await self.store.hget(PLACEMENTS, room_id)

    async def assign(self, room_id: str) -> str:
        """The node hosting ``room_id``, placing the room on a node if it has none (atomic)."""
        current = await self.room_node(room_id)
        if current is not None:
            if await self.node(current) is not None:
                return current
            await self.store.hdel(PLACEMENTS, room_id)
        # A node's heartbeat reports its load once a second; placements made since then
        # are counted from the map itself, so a burst of new rooms still spreads out.
        placed = Counter(node for _, node in await self.placements())
        free = {
            n.id: n.capacity - max(n.rooms, placed[n.id])
            for n in await self.live_nodes()
            if not n.draining
        }
        candidates = [(room_share, node) for node, room_share in free.items() if room_share > 0]
        if not candidates:
            raise SankeError(
                ErrorCode.media_unavailable, "no media node has room for this lesson now", 503
            )
        best = max(candidates, key=lambda c: (c[0], c[1]))[1]
        if await self.store.hsetnx(PLACEMENTS, room_id, best):
            return best
        winner = await self.room_node(room_id)
        if winner is None:
            raise SankeError(ErrorCode.media_unavailable, "room placement raced; retry", 503)
        return winner

    async def release(self, room_id: str) -> bool:
        """Drop the room's placement; whether this call dropped it (one caller wins)."""
        return await self.store.hdel(PLACEMENTS, room_id)

    async def placements(self) -> list[tuple[str, str]]:
        """(room, node) for every placed room."""
        return sorted((await self.store.hgetall(PLACEMENTS)).items())

    async def orphaned_rooms(self) -> list[tuple[str, str]]:
        """(room, node) for every room placed on a node that is no longer alive."""
        alive = {n.id for n in await self.live_nodes()}
        return [(room, node) for room, node in await self.placements() if node not in alive]
