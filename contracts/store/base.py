"""The Store core: the few data structures every component's repository is built from.

Keys are names under the store's prefix, chosen by the repository that owns them (each
repository documents its layout); the core adds nothing to them, so the Redis layout is
exactly what the repositories say. Values are strings the repositories encode from their
own pydantic models. Families of one name do not mix: a key is a string, a hash, a sorted
set or a list, as in Redis.

Beyond Redis's plain commands the core has three atomic steps that repositories need and
cannot build from the others without a race: an atomic batch of writes (``atomically``), a
capacity claim (``claim_slot``) and a guarded append (``append_guarded``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass

# A subscriber that falls this far behind loses the oldest messages instead of
# growing memory; every consumer of room events tolerates a gap (it resyncs).
SUBSCRIPTION_QUEUE_LIMIT = 1024


class Subscription(abc.ABC):
    """Messages published on one channel, in order, until closed."""

    channel: str
    dropped: int = 0

    @abc.abstractmethod
    def __aiter__(self) -> AsyncIterator[str]: ...

    @abc.abstractmethod
    async def get(self, timeout: float | None = None) -> str | None:
        """The next message, or None after ``timeout`` seconds or once closed."""

    @abc.abstractmethod
    async def close(self) -> None: ...


# --- writes that can go into one atomic batch ----------------------------------------


@dataclass(frozen=True, slots=True)
class HSet:
    name: str
    field: str
    value: str


@dataclass(frozen=True, slots=True)
class HDel:
    name: str
    field: str


@dataclass(frozen=True, slots=True)
class ZAdd:
    name: str
    member: str
    score: float


@dataclass(frozen=True, slots=True)
class ZRem:
    name: str
    member: str


@dataclass(frozen=True, slots=True)
class Delete:
    key: str


Write = HSet | HDel | ZAdd | ZRem | Delete


class Store(abc.ABC):
    prefix: str

    async def start(self) -> None:  # noqa: B027 - optional hook
        """Connect; called once before use."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ping(self) -> bool:
        """True when the backing store answers."""

    # --- any key -------------------------------------------------------------
    @abc.abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove the key whatever it holds; whether it existed."""

    @abc.abstractmethod
    async def keys(self, pattern: str) -> list[str]:
        """Keys matching a glob pattern (``*`` and ``?``), of any family."""

    @abc.abstractmethod
    async def atomically(self, writes: Sequence[Write]) -> list[int]:
        """Apply ``writes`` in order as one step nobody sees half done; for each, what its
        command returns: fields or members added (HSet, ZAdd) or removed (HDel, ZRem,
        Delete)."""

    # --- strings with TTL ----------------------------------------------------
    @abc.abstractmethod
    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        """Set ``key``; with ``nx`` only if absent (returns whether it was set)."""

    @abc.abstractmethod
    async def get(self, key: str) -> str | None: ...

    @abc.abstractmethod
    async def incr(self, key: str, ttl: float) -> int:
        """Add one to the counter ``key`` (created at 0, expiring ``ttl`` seconds after its
        creation) and return it, atomically."""

    @abc.abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds left, None if the key has no expiry or does not exist."""

    # --- hashes --------------------------------------------------------------
    @abc.abstractmethod
    async def hset(self, name: str, field: str, value: str) -> None: ...

    @abc.abstractmethod
    async def hsetnx(self, name: str, field: str, value: str) -> bool:
        """Set ``field`` only if absent (atomic); whether it was set."""

    @abc.abstractmethod
    async def hget(self, name: str, field: str) -> str | None: ...

    @abc.abstractmethod
    async def hmget(self, name: str, fields: Sequence[str]) -> list[str | None]:
        """The values of ``fields`` in order (None where absent)."""

    @abc.abstractmethod
    async def hgetall(self, name: str) -> dict[str, str]: ...

    @abc.abstractmethod
    async def hvals(self, name: str) -> list[str]:
        """The values only (a repository listing its records reads half of HGETALL)."""

    @abc.abstractmethod
    async def hkeys(self, name: str) -> list[str]:
        """The fields only (a repository listing large records it keeps summaries of)."""

    @abc.abstractmethod
    async def hdel(self, name: str, field: str) -> bool: ...

    @abc.abstractmethod
    async def exists(self, name: str) -> bool:
        """Whether the key exists (of any family)."""

    # --- sorted sets ---------------------------------------------------------
    @abc.abstractmethod
    async def zrange_by_score(self, name: str, low: float, high: float) -> list[str]:
        """Members with ``low <= score <= high``, by score then member."""

    # --- slots: members claiming capacity in buckets, counted atomically ------
    # A member (a room) holds one slot of one bucket (a media node) in the ``claims`` hash
    # (member -> bucket); ``counts`` (bucket -> claimed slots) changes with it in the same
    # atomic step. Choosing among counts read earlier herds: at a period start thousands
    # of rooms are placed within a minute from many processes.
    @abc.abstractmethod
    async def claim_slot(
        self, claims: str, counts: str, member: str, capacities: Mapping[str, int]
    ) -> str | None:
        """The bucket ``member`` holds; if none, atomically the bucket of ``capacities``
        with the most free slots (capacity minus its count; ties by name) and count it.
        None when the member holds nothing and every bucket is full."""

    @abc.abstractmethod
    async def release_slot(self, claims: str, counts: str, member: str) -> str | None:
        """Drop ``member``'s claim and uncount it; the bucket it held, None if it held none
        (so of two callers releasing at once exactly one gets the bucket)."""

    @abc.abstractmethod
    async def recount_slots(self, claims: str, counts: str) -> None:
        """Rebuild ``counts`` from ``claims`` (atomic): claims written without counting,
        e.g. by a process of an older release during a rolling upgrade, get counted."""

    # --- lists (logs) --------------------------------------------------------
    @abc.abstractmethod
    async def append(self, name: str, value: str) -> int:
        """Append to a list; returns its new length."""

    @abc.abstractmethod
    async def append_guarded(
        self, name: str, length: int, value: str | None, key: str, key_value: str
    ) -> bool:
        """If the list has exactly ``length`` items: append ``value`` (unless None) and set the
        string ``key`` (no TTL) to ``key_value``, in one atomic step; whether it happened.
        A hash-chained log and its signed head change together or not at all, and of two
        writers appending at once one wins and the other re-reads."""

    @abc.abstractmethod
    async def length(self, name: str) -> int:
        """How many items the list has (0 if it does not exist)."""

    @abc.abstractmethod
    async def range(self, name: str, start: int = 0, stop: int = -1) -> list[str]:
        """Items ``start``..``stop`` inclusive (negative counts from the end)."""

    @abc.abstractmethod
    async def replace_at(self, name: str, index: int, value: str) -> None:
        """Overwrite one list item (used by tooling and tamper tests, never by a log)."""

    # --- pub/sub (channel names are their own namespace, under the prefix) ------
    @abc.abstractmethod
    async def publish(self, channel: str, message: str) -> int:
        """Send ``message`` to the channel's subscribers; how many got it (processes on
        Redis, subscriptions in memory), 0 when nobody listens."""

    @abc.abstractmethod
    async def subscribe(self, channel: str) -> Subscription: ...
