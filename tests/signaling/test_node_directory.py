"""Room placement and orphan detection on the Store (both implementations)."""

from __future__ import annotations

import asyncio

import pytest

import contracts.nodes as nodes
from contracts.errors import SankeError
from contracts.nodes import NodeDirectory, NodeInfo
from contracts.store import Store


async def test_rooms_spread_over_nodes_and_concurrent_placements_agree(store: Store) -> None:
    directory = NodeDirectory(store)
    await directory.register(NodeInfo(id="a", capacity=3))
    await directory.register(NodeInfo(id="b", capacity=3))
    placed = [await directory.assign(f"room-{k}") for k in range(6)]
    assert sorted(placed) == ["a", "a", "a", "b", "b", "b"]
    assert await directory.assign("room-0") == placed[0]  # placed once, then looked up
    with pytest.raises(SankeError):
        await directory.assign("room-7")  # every node full
    # Two directories (two signaling processes) placing one new room at once agree.
    await directory.register(NodeInfo(id="c", capacity=10))
    other = NodeDirectory(store)
    first, second = await asyncio.gather(directory.assign("new"), other.assign("new"))
    assert first == second == await directory.room_node("new")


async def test_rooms_of_a_lost_node_are_orphaned_once_released(store: Store) -> None:
    directory = NodeDirectory(store)
    await directory.register(NodeInfo(id="a", capacity=5))
    await directory.register(NodeInfo(id="b", capacity=5))
    rooms = {f"room-{k}": await directory.assign(f"room-{k}") for k in range(4)}
    assert await directory.orphaned_rooms() == []  # the first round reads every placement
    await directory.unregister("a")  # its heartbeat key expired
    lost = sorted((r, n) for r, n in rooms.items() if n == "a")
    assert lost and await directory.orphaned_rooms() == lost
    # Only one caller wins the release (one process announces the rejoin).
    assert [await directory.release(r) for r, _ in lost] == [True] * len(lost)
    assert [await directory.release(r) for r, _ in lost] == [False] * len(lost)
    assert await directory.orphaned_rooms() == []


async def test_placements_are_read_only_after_a_loss_or_periodically(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = NodeDirectory(store)
    await directory.register(NodeInfo(id="a", capacity=5))
    monkeypatch.setattr(nodes, "REAP_AFTER_LOSS_SECONDS", 0.0)
    assert await directory.orphaned_rooms() == []  # first round: full read
    # A room left on a node that vanished before this process saw it (no loss observed):
    await store.hset(nodes.PLACEMENTS, "stale", "gone-before")
    assert await directory.orphaned_rooms() == []  # not read again yet...
    monkeypatch.setattr(nodes, "REAP_FULL_EVERY_SECONDS", 0.0)
    assert await directory.orphaned_rooms() == [("stale", "gone-before")]  # ...but periodically


async def test_placed_counts_follow_placements_and_releases(store: Store) -> None:
    directory = NodeDirectory(store)
    await directory.register(NodeInfo(id="a", capacity=2))
    await directory.register(NodeInfo(id="b", capacity=2))
    for k in range(4):
        await directory.assign(f"room-{k}")
    assert await directory.placed_count() == {"a": 2, "b": 2}
    assert await directory.release("room-0")
    freed = "a" if (await directory.placed_count()).get("a") == 1 else "b"
    assert await directory.assign("room-4") == freed  # the freed slot is the only one
    # Released twice: counted down once.
    assert await directory.release("room-4")
    assert not await directory.release("room-4")
    assert sum((await directory.placed_count()).values()) == 3


async def test_placements_written_without_counts_are_counted(store: Store) -> None:
    """A placement written by a process of the previous release (no count) still counts:
    placement rebuilds missing counts, and the reaper's full pass recounts."""
    directory = NodeDirectory(store)
    await directory.register(NodeInfo(id="a", capacity=2))
    await directory.register(NodeInfo(id="b", capacity=2))
    await store.hsetnx(nodes.PLACEMENTS, "old-1", "a")
    await store.hsetnx(nodes.PLACEMENTS, "old-2", "a")
    assert await directory.assign("new") == "b"  # a is full by the old placements
    await store.hsetnx(nodes.PLACEMENTS, "old-3", "b")
    assert await directory.orphaned_rooms() == []  # the first round is a full pass
    assert await directory.placed_count() == {"a": 2, "b": 2}
    with pytest.raises(SankeError):
        await directory.assign("one-too-many")
