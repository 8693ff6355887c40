"""In-memory Store: the embedded default (one process, no Redis).

Every method runs without an await between its reads and writes, so each is atomic on the
event loop, as the Redis commands and scripts are on the server.
"""

from __future__ import annotations

import fnmatch
import time
from collections import Counter
from collections.abc import Mapping, Sequence

from contracts.store.base import HDel, HSet, Store, Subscription, Write, ZAdd, ZRem
from contracts.store.fanout import Fanout, QueueSubscription


class WrongFamily(TypeError):
    """A key used as another family than it holds (Redis answers WRONGTYPE)."""


class MemoryStore(Store):
    def __init__(self, prefix: str = "sanke:") -> None:
        self.prefix = prefix
        self._strings: dict[str, tuple[str, float | None]] = {}
        self._hashes: dict[str, dict[str, str]] = {}
        self._zsets: dict[str, dict[str, float]] = {}
        self._lists: dict[str, list[str]] = {}
        self._fanout = Fanout()

    async def close(self) -> None:
        for subs in list(self._fanout.channels.values()):
            for sub in list(subs):
                await sub.close()

    async def ping(self) -> bool:
        return True

    def _claim(self, name: str, family: object) -> None:
        if name == "":
            raise ValueError("a key needs a name")
        holders: list[object] = [f for f in (self._hashes, self._zsets, self._lists) if name in f]
        if self._live(name) is not None:
            holders.append(self._strings)
        if any(holder is not family for holder in holders):
            raise WrongFamily(f"{name!r} holds another kind of value")

    # --- any key -------------------------------------------------------------
    async def delete(self, key: str) -> bool:
        return self._delete(key)

    def _delete(self, key: str) -> bool:
        existed = self._live(key) is not None
        self._strings.pop(key, None)
        existed = self._hashes.pop(key, None) is not None or existed
        existed = self._zsets.pop(key, None) is not None or existed
        return self._lists.pop(key, None) is not None or existed

    async def keys(self, pattern: str) -> list[str]:
        names = [k for k in list(self._strings) if self._live(k)]
        names += [*self._hashes, *self._zsets, *self._lists]
        return [k for k in names if fnmatch.fnmatchcase(k, pattern)]

    async def exists(self, name: str) -> bool:
        return self._live(name) is not None or any(
            name in family for family in (self._hashes, self._zsets, self._lists)
        )

    async def atomically(self, writes: Sequence[Write]) -> list[int]:
        results: list[int] = []
        for write in writes:
            match write:
                case HSet(name, field, value):
                    self._claim(name, self._hashes)
                    fields = self._hashes.setdefault(name, {})
                    results.append(int(field not in fields))
                    fields[field] = value
                case HDel(name, field):
                    results.append(int(self._hdel(name, field)))
                case ZAdd(name, member, score):
                    self._claim(name, self._zsets)
                    members = self._zsets.setdefault(name, {})
                    results.append(int(member not in members))
                    members[member] = score
                case ZRem(name, member):
                    members = self._zsets.get(name, {})
                    removed = members.pop(member, None) is not None
                    if not members:
                        self._zsets.pop(name, None)
                    results.append(int(removed))
                case _:
                    results.append(int(self._delete(write.key)))
        return results

    # --- strings -------------------------------------------------------------
    def _live(self, key: str) -> tuple[str, float | None] | None:
        entry = self._strings.get(key)
        if entry is None:
            return None
        if entry[1] is not None and entry[1] <= time.monotonic():
            del self._strings[key]
            return None
        return entry

    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        # SET replaces whatever the name held, as in Redis; with ``nx`` any holder blocks it.
        if nx and (await self.exists(key)):
            return False
        self._delete(key)
        expires = time.monotonic() + ttl if ttl is not None else None
        self._strings[key] = (value, expires)
        return True

    async def get(self, key: str) -> str | None:
        entry = self._live(key)
        return entry[0] if entry else None

    async def incr(self, key: str, ttl: float) -> int:
        self._claim(key, self._strings)
        entry = self._live(key)
        count = int(entry[0]) + 1 if entry else 1
        expires = entry[1] if entry and entry[1] is not None else time.monotonic() + ttl
        self._strings[key] = (str(count), expires)
        return count

    async def ttl(self, key: str) -> float | None:
        entry = self._live(key)
        if entry is None or entry[1] is None:
            return None
        return max(0.0, entry[1] - time.monotonic())

    # --- hashes --------------------------------------------------------------
    async def hset(self, name: str, field: str, value: str) -> None:
        self._claim(name, self._hashes)
        self._hashes.setdefault(name, {})[field] = value

    async def hsetnx(self, name: str, field: str, value: str) -> bool:
        self._claim(name, self._hashes)
        fields = self._hashes.setdefault(name, {})
        if field in fields:
            return False
        fields[field] = value
        return True

    async def hget(self, name: str, field: str) -> str | None:
        return self._hashes.get(name, {}).get(field)

    async def hmget(self, name: str, fields: Sequence[str]) -> list[str | None]:
        values = self._hashes.get(name, {})
        return [values.get(field) for field in fields]

    async def hgetall(self, name: str) -> dict[str, str]:
        return dict(self._hashes.get(name, {}))

    async def hvals(self, name: str) -> list[str]:
        return list(self._hashes.get(name, {}).values())

    async def hkeys(self, name: str) -> list[str]:
        return list(self._hashes.get(name, {}))

    async def hdel(self, name: str, field: str) -> bool:
        return self._hdel(name, field)

    def _hdel(self, name: str, field: str) -> bool:
        fields = self._hashes.get(name)
        if fields is None or field not in fields:
            return False
        del fields[field]
        if not fields:
            del self._hashes[name]
        return True

    # --- sorted sets ---------------------------------------------------------
    async def zrange_by_score(self, name: str, low: float, high: float) -> list[str]:
        members = self._zsets.get(name, {})
        chosen = [(score, m) for m, score in members.items() if low <= score <= high]
        return [m for _, m in sorted(chosen)]

    # --- slots ---------------------------------------------------------------
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
        self._claim(claims, self._hashes)
        self._claim(counts, self._hashes)
        self._hashes.setdefault(claims, {})[member] = best
        bucket_counts = self._hashes.setdefault(counts, {})
        bucket_counts[best] = str(int(bucket_counts.get(best, "0")) + 1)
        return best

    async def release_slot(self, claims: str, counts: str, member: str) -> str | None:
        held = self._hashes.get(claims, {}).get(member)
        if held is None:
            return None
        self._hdel(claims, member)
        left = int(self._hashes.get(counts, {}).get(held, "0")) - 1
        if left > 0:
            self._hashes[counts][held] = str(left)
        else:
            self._hdel(counts, held)
        return held

    async def recount_slots(self, claims: str, counts: str) -> None:
        tally = Counter(self._hashes.get(claims, {}).values())
        self._hashes.pop(counts, None)
        if tally:
            self._hashes[counts] = {b: str(n) for b, n in tally.items()}

    # --- lists ---------------------------------------------------------------
    async def append(self, name: str, value: str) -> int:
        self._claim(name, self._lists)
        items = self._lists.setdefault(name, [])
        items.append(value)
        return len(items)

    async def append_guarded(
        self, name: str, length: int, value: str | None, key: str, key_value: str
    ) -> bool:
        self._claim(name, self._lists)
        self._claim(key, self._strings)
        if len(self._lists.get(name, ())) != length:
            return False
        if value is not None:
            self._lists.setdefault(name, []).append(value)
        self._strings[key] = (key_value, None)
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

    # --- pub/sub -------------------------------------------------------------
    async def publish(self, channel: str, message: str) -> int:
        return self._fanout.deliver(channel, message)

    async def subscribe(self, channel: str) -> Subscription:
        sub = QueueSubscription(channel, self._unsubscribe)
        self._fanout.add(sub)
        return sub

    async def _unsubscribe(self, sub: QueueSubscription) -> None:
        self._fanout.remove(sub)
