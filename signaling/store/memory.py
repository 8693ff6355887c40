"""In-memory Store: the embedded default (one process, no Redis)."""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from collections.abc import Mapping

from signaling.models import LessonSession, Participant, Room
from signaling.store.base import Store, Subscription
from signaling.store.fanout import Fanout, QueueSubscription


class MemoryStore(Store):
    def __init__(self, prefix: str = "sanke:") -> None:
        self.prefix = prefix
        self._rooms: dict[str, str] = {}
        self._participants: dict[str, dict[str, str]] = {}
        self._sessions: dict[str, str] = {}
        # Session ids by date, and those not yet recorded by date (the lesson clock's).
        self._session_date: dict[str, str] = {}
        self._sessions_by_date: dict[str, set[str]] = {}
        self._open_sessions: dict[str, set[str]] = {}
        self._kv: dict[str, tuple[str, float | None]] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._lists: dict[str, list[str]] = {}
        self._fanout = Fanout()

    async def close(self) -> None:
        for subs in list(self._fanout.channels.values()):
            for sub in list(subs):
                await sub.close()

    async def ping(self) -> bool:
        return True

    # rooms — stored as JSON so callers never share mutable objects with the store
    async def create_room(self, room: Room) -> bool:
        if room.id in self._rooms:
            return False
        self._rooms[room.id] = room.model_dump_json()
        return True

    async def put_room(self, room: Room) -> None:
        self._rooms[room.id] = room.model_dump_json()

    async def get_room(self, room_id: str) -> Room | None:
        raw = self._rooms.get(room_id)
        return Room.model_validate_json(raw) if raw is not None else None

    async def list_rooms(self) -> list[Room]:
        return [Room.model_validate_json(raw) for raw in self._rooms.values()]

    async def delete_room(self, room_id: str) -> bool:
        self._participants.pop(room_id, None)
        return self._rooms.pop(room_id, None) is not None

    # participants
    async def put_participant(self, participant: Participant) -> None:
        room = self._participants.setdefault(participant.room_id, {})
        room[participant.id] = participant.model_dump_json()

    async def get_participant(self, room_id: str, participant_id: str) -> Participant | None:
        raw = self._participants.get(room_id, {}).get(participant_id)
        return Participant.model_validate_json(raw) if raw is not None else None

    async def list_participants(self, room_id: str) -> list[Participant]:
        return [
            Participant.model_validate_json(raw)
            for raw in self._participants.get(room_id, {}).values()
        ]

    async def remove_participant(self, room_id: str, participant_id: str) -> bool:
        room = self._participants.get(room_id)
        if room is None or participant_id not in room:
            return False
        del room[participant_id]
        if not room:
            del self._participants[room_id]
        return True

    # sessions
    async def put_session(self, session: LessonSession) -> None:
        self._unindex_session(session.id)
        self._sessions[session.id] = session.model_dump_json()
        self._session_date[session.id] = session.date
        self._sessions_by_date.setdefault(session.date, set()).add(session.id)
        if not session.recorded:
            self._open_sessions.setdefault(session.date, set()).add(session.id)

    def _unindex_session(self, session_id: str) -> None:
        date = self._session_date.pop(session_id, None)
        if date is None:
            return
        for index in (self._sessions_by_date, self._open_sessions):
            ids = index.get(date)
            if ids is not None:
                ids.discard(session_id)
                if not ids:
                    del index[date]

    async def get_session(self, session_id: str) -> LessonSession | None:
        raw = self._sessions.get(session_id)
        return LessonSession.model_validate_json(raw) if raw is not None else None

    async def list_sessions(self) -> list[LessonSession]:
        return [LessonSession.model_validate_json(raw) for raw in self._sessions.values()]

    async def list_sessions_on(self, date: str) -> list[LessonSession]:
        ids = sorted(self._sessions_by_date.get(date, ()))
        return [LessonSession.model_validate_json(self._sessions[i]) for i in ids]

    async def list_open_sessions(self, until: str) -> list[LessonSession]:
        ids = sorted(i for date, ids in self._open_sessions.items() if date <= until for i in ids)
        return [LessonSession.model_validate_json(self._sessions[i]) for i in ids]

    async def delete_session(self, session_id: str) -> bool:
        self._unindex_session(session_id)
        return self._sessions.pop(session_id, None) is not None

    # key/value
    def _live(self, key: str) -> tuple[str, float | None] | None:
        entry = self._kv.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.monotonic():
            del self._kv[key]
            return None
        return entry

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        if nx and self._live(key) is not None:
            return False
        expires = time.monotonic() + ttl if ttl is not None else None
        self._kv[key] = (value, expires)
        return True

    async def get(self, key: str) -> str | None:
        entry = self._live(key)
        return entry[0] if entry else None

    async def incr(self, key: str, ttl: float) -> int:
        entry = self._live(key)
        count = int(entry[0]) + 1 if entry else 1
        expires = entry[1] if entry and entry[1] is not None else time.monotonic() + ttl
        self._kv[key] = (str(count), expires)
        return count

    async def delete(self, key: str) -> bool:
        return self._live(key) is not None and self._kv.pop(key, None) is not None

    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        if entry is None or entry[1] is None:
            return None
        return max(0.0, entry[1] - time.monotonic())

    async def keys(self, pattern: str) -> list[str]:
        return [k for k in list(self._kv) if fnmatch.fnmatchcase(k, pattern) and self._live(k)]

    # hashes
    async def hset(self, name: str, field: str, value: str) -> None:
        self._hashes.setdefault(name, {})[field] = value

    async def hsetnx(self, name: str, field: str, value: str) -> bool:
        h = self._hashes.setdefault(name, {})
        if field in h:
            return False
        h[field] = value
        return True

    async def hget(self, name: str, field: str) -> str | None:
        return self._hashes.get(name, {}).get(field)

    async def hgetall(self, name: str) -> dict[str, str]:
        return dict(self._hashes.get(name, {}))

    async def hdel(self, name: str, field: str) -> bool:
        h = self._hashes.get(name)
        if h is None or field not in h:
            return False
        del h[field]
        if not h:
            del self._hashes[name]
        return True

    # slots: no await between reading and writing, so each call is atomic on the loop
    async def claim_slot(
        self, claims: str, counts: str, member: str, capacities: Mapping[str, int]
    ) -> str | None:
        held = self._hashes.get(claims, {}).get(member)
        if held is not None:
            return held
        used = self._hashes.get(counts, {})
        free = {b: cap - int(used.get(b, "0")) for b, cap in capacities.items()}
        best = max((b for b, f in free.items() if f > 0), key=lambda b: (free[b], b), default=None)
        if best is None:
            return None
        self._hashes.setdefault(claims, {})[member] = best
        bucket_counts = self._hashes.setdefault(counts, {})
        bucket_counts[best] = str(int(bucket_counts.get(best, "0")) + 1)
        return best

    async def release_slot(self, claims: str, counts: str, member: str) -> str | None:
        held = self._hashes.get(claims, {}).get(member)
        if held is None:
            return None
        await self.hdel(claims, member)
        left = int(self._hashes.get(counts, {}).get(held, "0")) - 1
        if left > 0:
            self._hashes[counts][held] = str(left)
        else:
            await self.hdel(counts, held)
        return held

    async def recount_slots(self, claims: str, counts: str) -> None:
        tally = Counter(self._hashes.get(claims, {}).values())
        self._hashes.pop(counts, None)
        if tally:
            self._hashes[counts] = {b: str(n) for b, n in tally.items()}

    # lists
    async def append(self, name: str, value: str) -> int:
        items = self._lists.setdefault(name, [])
        items.append(value)
        return len(items)

    async def append_guarded(
        self, name: str, length: int, value: str | None, key: str, key_value: str
    ) -> bool:
        items = self._lists.setdefault(name, [])
        if len(items) != length:
            return False
        if value is not None:
            items.append(value)
        self._kv[key] = (key_value, None)
        return True

    async def length(self, name: str) -> int:
        return len(self._lists.get(name, ()))

    async def range(self, name: str, start: int = 0, stop: int = -1) -> list[str]:
        # Redis LRANGE: inclusive stop, negatives count from the end, out of range clamps
        # (plain slicing would wrap around for indices before the first item).
        items = self._lists.get(name, [])
        n = len(items)
        first = max(start + n if start < 0 else start, 0)
        last = min(stop + n if stop < 0 else stop, n - 1)
        return items[first : last + 1] if first <= last else []

    async def replace_at(self, name: str, index: int, value: str) -> None:
        self._lists[name][index] = value

    # pub/sub
    async def publish(self, channel: str, message: str) -> None:
        self._fanout.deliver(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        sub = QueueSubscription(channel, self._unsubscribe)
        self._fanout.add(sub)
        return sub

    async def _unsubscribe(self, sub: QueueSubscription) -> None:
        self._fanout.remove(sub)
