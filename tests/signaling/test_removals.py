"""Pending removals: retried while the store is down, bounded, oldest dropped first."""

from __future__ import annotations

import asyncio

import redis

from contracts.protocol import LeaveReason
from contracts.rooms import Participant, Role
from signaling.removals import PendingRemovals


def participant(i: int) -> Participant:
    return Participant(id=f"p{i}", room_id="r", subject=f"v{i}", role=Role.viewer, node_id="n")


async def test_retried_until_the_store_answers_then_done() -> None:
    down = True
    removed: list[str] = []

    async def remove(p: Participant, reason: LeaveReason) -> bool:
        if down:
            raise redis.ConnectionError("down")
        removed.append(p.id)
        return True

    pending = PendingRemovals(remove, interval=0.02, limit=3)
    for i in range(5):
        pending.add(participant(i), "left")
    assert len(pending) == 3  # the two oldest dropped
    await asyncio.sleep(0.1)
    assert removed == [] and len(pending) == 3
    down = False
    await asyncio.sleep(0.1)
    assert removed == ["p2", "p3", "p4"] and len(pending) == 0
    await pending.close()
