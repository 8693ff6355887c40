"""SFU nodes in the Store, and which node hosts which room (LiveKit's ``nodes`` and
``room_node_map``).

A node refreshes ``node:sfu:{id}`` (with its capacity and load) every second with a
3-second TTL, so a node that dies disappears within 3 s. A room is placed on the
live node that is not draining with the most free room slots, in one atomic step of the
Store (a Lua script on Redis) that checks capacity against ``media:placed_count`` and
records the room in ``media:placements``: many signaling processes placing rooms at once
spread them exactly and agree on one node per room.
"""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import ErrorCode, SankeError
from contracts.store import Store

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
    return f"kv:node:sfu:{node_id}"


# Room placements, one hash (room -> node), and rooms placed per node (node -> count),
# kept together by the Store's slot operations; the reaper reads the placements in one read.
PLACEMENTS = "h:media:placements"
PLACED_COUNT = "h:media:placed_count"
# After a media node disappears, the reaper keeps reading every placement this long: a
# signaling process may still place a room on it from a node list read just before.
REAP_AFTER_LOSS_SECONDS = 10.0
# And at least this often anyway.
REAP_FULL_EVERY_SECONDS = 30.0


# The capacity a node claims with for a room it already hosts: any count fits.
UNBOUNDED_SLOTS = 1 << 30


def node_channel(node_id: str) -> str:
    return f"sfu:{node_id}"


class NodeDirectory:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._alive: set[str] = set()
        self._lost_at = 0.0
        self._full_at = 0.0

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
            await self.store.release_slot(PLACEMENTS, PLACED_COUNT, room_id)
        capacities = {n.id: n.capacity for n in await self.live_nodes() if not n.draining}
        node = await self.store.claim_slot(PLACEMENTS, PLACED_COUNT, room_id, capacities)
        if node is None:
            raise SankeError(
                ErrorCode.media_unavailable, "no media node has room for this lesson now", 503
            )
        return node

    async def room_nodes(self, room_ids: list[str]) -> list[str | None]:
        """The node each of ``room_ids`` is placed on (None where it has no placement)."""
        return await self.store.hmget(PLACEMENTS, room_ids)

    async def reclaim(self, room_id: str, node_id: str) -> str | None:
        """Place ``room_id`` on ``node_id``, which hosts it already, unless it is placed:
        the node it is placed on. Its capacity is not checked: the lesson runs there."""
        return await self.store.claim_slot(
            PLACEMENTS, PLACED_COUNT, room_id, {node_id: UNBOUNDED_SLOTS}
        )

    async def release(self, room_id: str) -> bool:
        """Drop the room's placement; whether this call dropped it (one caller wins)."""
        return await self.store.release_slot(PLACEMENTS, PLACED_COUNT, room_id) is not None

    async def placed_count(self) -> dict[str, int]:
        """Rooms placed per node (the counts placement checks capacity against)."""
        return {node: int(n) for node, n in (await self.store.hgetall(PLACED_COUNT)).items()}

    async def placements(self) -> list[tuple[str, str]]:
        """(room, node) for every placed room."""
        return sorted((await self.store.hgetall(PLACEMENTS)).items())

    async def orphaned_rooms(self) -> list[tuple[str, str]]:
        """(room, node) for every room placed on a node that is no longer alive.

        The placements are read only while a node was lost recently (or every
        REAP_FULL_EVERY_SECONDS): a province has thousands of them and every signaling
        process asks twice a second."""
        alive = {n.id for n in await self.live_nodes()}
        now = time.monotonic()
        if self._alive - alive:
            self._lost_at = now
        self._alive = alive
        recent_loss = now - self._lost_at < REAP_AFTER_LOSS_SECONDS
        if not (recent_loss or now - self._full_at >= REAP_FULL_EVERY_SECONDS):
            return []
        self._full_at = now
        # The full pass also recounts, so placements written without counting (a process
        # of the previous release during a rolling upgrade) are counted within a pass.
        await self.store.recount_slots(PLACEMENTS, PLACED_COUNT)
        return [(room, node) for room, node in await self.placements() if node not in alive]
