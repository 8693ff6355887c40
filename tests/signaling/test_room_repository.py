"""Rooms and participants in the Store, on both implementations (memory and a real Redis)."""

from __future__ import annotations

from contracts.rooms import Participant, Role, Room, RoomKind, RoomState
from contracts.store import Store
from signaling.rooms import RoomRepository


def room(room_id: str, **fields: object) -> Room:
    return Room.model_validate({"id": room_id, **fields})


def participant(room_id: str, pid: str, **fields: object) -> Participant:
    data: dict[str, object] = {
        "id": pid,
        "room_id": room_id,
        "subject": f"sub-{pid}",
        "role": Role.classroom,
        "node_id": "node-a",
    }
    data.update(fields)
    return Participant.model_validate(data)


# --- rooms -------------------------------------------------------------------


async def test_create_room_is_insert_only(store: Store) -> None:
    rooms = RoomRepository(store)
    first = room("r-1", name="数学", kind=RoomKind.master, max_participants=5)
    assert await rooms.create(first) is True
    assert await rooms.create(room("r-1", name="other")) is False
    stored = await rooms.get("r-1")
    assert stored == first, "a refused create must not change the stored room"


async def test_put_get_list_rooms(store: Store) -> None:
    rooms = RoomRepository(store)
    assert await rooms.get("missing") is None
    assert await rooms.all() == []
    a = room("a", name="语文")
    b = room("b.2:x-y_z", school_id="jd-1")
    await rooms.put(a)
    await rooms.put(b)
    assert await rooms.get("a") == a
    assert sorted(r.id for r in await rooms.all()) == ["a", "b.2:x-y_z"]
    # put overwrites (closing a room is a put)
    closed = a.model_copy(update={"state": RoomState.closed, "closed_at": 123.0})
    await rooms.put(closed)
    assert await rooms.get("a") == closed
    assert len(await rooms.all()) == 2


async def test_returned_room_is_a_copy(store: Store) -> None:
    rooms = RoomRepository(store)
    await rooms.put(room("r"))
    got = await rooms.get("r")
    assert got is not None
    got.name = "changed by caller"
    again = await rooms.get("r")
    assert again is not None and again.name == ""


async def test_delete_room_removes_its_participants(store: Store) -> None:
    rooms = RoomRepository(store)
    await rooms.create(room("r"))
    await rooms.create(room("other"))
    await rooms.put_participant(participant("r", "p1"))
    await rooms.put_participant(participant("r", "p2"))
    await rooms.put_participant(participant("other", "p3"))
    assert await rooms.delete("r") is True
    assert await rooms.get("r") is None
    assert await rooms.list_participants("r") == []
    assert await rooms.get_participant("r", "p1") is None
    assert await rooms.delete("r") is False
    # the other room is untouched
    assert [p.id for p in await rooms.list_participants("other")] == ["p3"]
    assert [r.id for r in await rooms.all()] == ["other"]
    # a room created again with the same id starts empty
    assert await rooms.create(room("r")) is True
    assert await rooms.list_participants("r") == []


# --- participants ------------------------------------------------------------


async def test_participants(store: Store) -> None:
    rooms = RoomRepository(store)
    p1 = participant("r", "p1", role=Role.teacher, name="张老师", school_id="s1")
    p2 = participant("r", "p2", classroom_id="c-2")
    await rooms.put_participant(p1)
    await rooms.put_participant(p2)
    assert await rooms.get_participant("r", "p1") == p1
    assert await rooms.get_participant("r", "nobody") is None
    assert await rooms.get_participant("other-room", "p1") is None
    assert sorted(p.id for p in await rooms.list_participants("r")) == ["p1", "p2"]

    raised = p2.model_copy(update={"hand_raised": True, "muted": True})
    await rooms.put_participant(raised)
    assert await rooms.get_participant("r", "p2") == raised
    assert len(await rooms.list_participants("r")) == 2

    assert await rooms.remove_participant("r", "p1") is True
    assert await rooms.remove_participant("r", "p1") is False
    assert await rooms.remove_participant("nowhere", "p2") is False
    assert [p.id for p in await rooms.list_participants("r")] == ["p2"]
    assert await rooms.remove_participant("r", "p2") is True
    assert await rooms.list_participants("r") == []
