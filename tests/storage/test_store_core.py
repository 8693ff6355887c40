"""The Store core's contract, run against both implementations (memory and a real Redis)."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.store import MemoryStore, Store, Subscription
from contracts.store.base import SUBSCRIPTION_QUEUE_LIMIT, Delete, HDel, HSet, ZAdd, ZRem
from contracts.store.redis import RedisStore

# Generous: only "it happens eventually" is asserted, never how fast.
EVENTUALLY = 5.0


async def eventually_none(store: Store, key: str) -> None:
    deadline = time.monotonic() + EVENTUALLY
    while await store.get(key) is not None:
        assert time.monotonic() < deadline, f"{key} did not expire within {EVENTUALLY}s"
        await asyncio.sleep(0.05)


async def next_message(sub: Subscription) -> str:
    message = await sub.get(timeout=EVENTUALLY)
    assert message is not None, f"nothing arrived on {sub.channel} within {EVENTUALLY}s"
    return message


async def nothing_more(sub: Subscription, *, sentinel_store: Store, channel: str) -> None:
    """Nothing else is queued on ``sub``: publish a marker and check it comes next.

    A marker instead of a sleep: pub/sub delivery is ordered, so anything stray that
    was published before the marker would arrive first.
    """
    await sentinel_store.publish(channel, "__marker__")
    assert await next_message(sub) == "__marker__"


# --- key/value -----------------------------------------------------------------


async def test_kv_set_get_delete(store: Store) -> None:
    assert await store.get("k") is None
    assert await store.set("k", "v1") is True
    assert await store.get("k") == "v1"
    assert await store.set("k", "v2") is True
    assert await store.get("k") == "v2"
    assert await store.set("中文:键", "值 ✓") is True
    assert await store.get("中文:键") == "值 ✓"
    assert await store.delete("k") is True
    assert await store.delete("k") is False
    assert await store.get("k") is None


async def test_kv_nx(store: Store) -> None:
    assert await store.set("lock", "node-a", nx=True) is True
    assert await store.set("lock", "node-b", nx=True) is False
    assert await store.get("lock") == "node-a"
    await store.delete("lock")
    assert await store.set("lock", "node-b", nx=True) is True
    assert await store.get("lock") == "node-b"


async def test_kv_nx_succeeds_once_the_holder_expired(store: Store) -> None:
    assert await store.set("owner", "node-a", ttl=0.2, nx=True) is True
    assert await store.set("owner", "node-b", ttl=0.2, nx=True) is False
    await eventually_none(store, "owner")
    assert await store.set("owner", "node-b", nx=True) is True
    assert await store.get("owner") == "node-b"


async def test_kv_ttl_expiry(store: Store) -> None:
    await store.set("short", "x", ttl=0.2)
    await store.set("forever", "y")
    left = await store.ttl("short")
    # ttl() is positive and never more than what was asked (no timing beyond that)
    assert left is not None and 0 < left <= 0.2
    assert await store.ttl("forever") is None
    assert await store.ttl("missing") is None
    await eventually_none(store, "short")
    assert await store.ttl("short") is None
    assert await store.delete("short") is False
    assert "short" not in await store.keys("*")
    assert await store.get("forever") == "y"


async def test_set_without_ttl_clears_an_existing_ttl(store: Store) -> None:
    await store.set("k", "a", ttl=0.2)
    await store.set("k", "b")
    assert await store.ttl("k") is None
    await asyncio.sleep(0.3)
    assert await store.get("k") == "b"


async def test_ttl_refresh_extends(store: Store) -> None:
    await store.set("hb", "1", ttl=0.2)
    await store.set("hb", "1", ttl=60)
    left = await store.ttl("hb")
    assert left is not None and 0.2 < left <= 60


async def test_keys_glob(store: Store) -> None:
    for key in ("node:signaling:a", "node:signaling:b", "node:sfu:a", "nodes", "room:1"):
        await store.set(key, "1")
    assert sorted(await store.keys("node:signaling:*")) == ["node:signaling:a", "node:signaling:b"]
    assert sorted(await store.keys("node:*:a")) == ["node:sfu:a", "node:signaling:a"]
    assert sorted(await store.keys("node?")) == ["nodes"]
    assert await store.keys("room:?") == ["room:1"]
    assert await store.keys("nothing*") == []
    assert sorted(await store.keys("*")) == sorted(
        ["node:signaling:a", "node:signaling:b", "node:sfu:a", "nodes", "room:1"]
    )


async def test_keys_lists_every_family(store: Store) -> None:
    """Names are the repositories': the core lists strings, hashes, sorted sets and lists
    alike, as Redis's SCAN does."""
    await store.hset("h:x", "f", "v")
    await store.append("l:x", "x")
    await store.atomically([ZAdd("z:x", "m", 1)])
    await store.set("kv:x", "1")
    assert sorted(await store.keys("*")) == ["h:x", "kv:x", "l:x", "z:x"]
    assert await store.keys("h:*") == ["h:x"]


# --- hashes ----------------------------------------------------------------------


async def test_hashes(store: Store) -> None:
    assert await store.hgetall("doc") == {}
    assert await store.hget("doc", "a") is None
    await store.hset("doc", "a", "1")
    await store.hset("doc", "b", "二")
    await store.hset("doc", "a", "3")
    assert await store.hget("doc", "a") == "3"
    assert await store.hgetall("doc") == {"a": "3", "b": "二"}
    assert await store.hgetall("other") == {}
    assert await store.hdel("doc", "a") is True
    assert await store.hdel("doc", "a") is False
    assert await store.hdel("nothing", "a") is False
    assert await store.hgetall("doc") == {"b": "二"}
    assert await store.hdel("doc", "b") is True
    assert await store.hgetall("doc") == {}


async def test_hsetnx_sets_only_an_absent_field_and_one_racer_wins(store: Store) -> None:
    assert await store.hsetnx("placements", "room-1", "node-a") is True
    assert await store.hsetnx("placements", "room-1", "node-b") is False
    assert await store.hget("placements", "room-1") == "node-a"
    # Many concurrent claims of one field: exactly one is set, and it is what is stored.
    results = await asyncio.gather(
        *(store.hsetnx("placements", "room-2", f"node-{k}") for k in range(20))
    )
    assert sum(results) == 1
    assert await store.hget("placements", "room-2") == f"node-{results.index(True)}"
    assert await store.hdel("placements", "room-1") is True
    assert await store.hsetnx("placements", "room-1", "node-c") is True
    assert await store.hgetall("placements") == {
        "room-1": "node-c",
        "room-2": f"node-{results.index(True)}",
    }


async def test_hgetall_returns_a_copy(store: Store) -> None:
    await store.hset("doc", "a", "1")
    got = await store.hgetall("doc")
    got["a"] = "changed"
    assert await store.hget("doc", "a") == "1"


# --- lists ---------------------------------------------------------------------


async def test_lists_append_and_range(store: Store) -> None:
    assert await store.range("log") == []
    for i, item in enumerate(["a", "b", "c", "d", "e"], start=1):
        assert await store.append("log", item) == i
    assert await store.range("log") == ["a", "b", "c", "d", "e"]
    assert await store.range("log", 1, 3) == ["b", "c", "d"]
    assert await store.range("log", 0, 0) == ["a"]
    assert await store.range("log", -2) == ["d", "e"]
    assert await store.range("log", -3, -2) == ["c", "d"]
    assert await store.range("log", 2, -2) == ["c", "d"]
    assert await store.range("log", 3, 100) == ["d", "e"]
    assert await store.range("log", 4, 1) == []
    assert await store.range("log", 10, 20) == []
    assert await store.range("log", -100, 1) == ["a", "b"]
    assert await store.range("log", 0, -100) == []
    # just past the start: Redis clamps, Python slicing would wrap around
    assert await store.range("log", 0, -6) == []
    assert await store.range("log", 0, -7) == []
    assert await store.range("log", -7, -4) == ["a", "b"]
    assert await store.range("log", -6) == ["a", "b", "c", "d", "e"]
    assert await store.range("other") == []


async def test_incr_counts_and_expires_from_the_first_count(store: Store) -> None:
    assert [await store.incr("hits", ttl=0.3) for _ in range(3)] == [1, 2, 3]
    ttl = await store.ttl("hits")
    assert ttl is not None and 0 < ttl <= 0.3
    await asyncio.sleep(0.2)
    assert await store.incr("hits", ttl=0.3) == 4, "a later count does not extend the window"
    await asyncio.sleep(0.2)
    assert await store.incr("hits", ttl=0.3) == 1
    counts = await asyncio.gather(*(store.incr("burst", ttl=5) for _ in range(50)))
    assert sorted(counts) == list(range(1, 51))


async def test_length_and_guarded_append(store: Store) -> None:
    assert await store.length("log") == 0
    assert await store.append_guarded("log", 0, "a", "head", "1")
    assert not await store.append_guarded("log", 0, "b", "head", "lost"), "the list grew"
    assert await store.range("log") == ["a"] and await store.get("head") == "1"
    assert await store.append_guarded("log", 1, None, "head", "resealed")
    assert await store.length("log") == 1 and await store.get("head") == "resealed"
    assert await store.append_guarded("log", 1, "b", "head", "2")
    assert await store.range("log") == ["a", "b"] and await store.length("log") == 2


async def test_guarded_appends_at_once_keep_one_order(store: Store) -> None:
    async def writer(name: str) -> None:
        for _ in range(20):
            while True:
                n = await store.length("chain")
                if await store.append_guarded("chain", n, f"{name}{n}", "head", str(n + 1)):
                    break

    await asyncio.gather(writer("a"), writer("b"), writer("c"))
    items = await store.range("chain")
    assert len(items) == 60 and [int(i[1:]) for i in items] == list(range(60))
    assert await store.get("head") == "60"


async def test_replace_at(store: Store) -> None:
    for item in ("a", "b", "c"):
        await store.append("log", item)
    await store.replace_at("log", 1, "B")
    await store.replace_at("log", -1, "C")
    assert await store.range("log") == ["a", "B", "C"]


async def test_replace_at_out_of_range_raises_and_changes_nothing(store: Store) -> None:
    await store.append("log", "a")
    with pytest.raises(Exception):  # noqa: B017 - each backend has its own error type
        await store.replace_at("log", 5, "x")
    assert await store.range("log") == ["a"]


_list_names = itertools.count()
_items = st.lists(st.text(max_size=8), max_size=12)
_index = st.integers(min_value=-15, max_value=15)


def _model_range(items: list[str], start: int, stop: int) -> list[str]:
    """Redis LRANGE semantics: inclusive stop, negatives from the end, clamped."""
    n = len(items)
    start = max(start + n if start < 0 else start, 0)
    stop = stop + n if stop < 0 else stop
    stop = min(stop, n - 1)
    return items[start : stop + 1] if start <= stop else []


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(items=_items, start=_index, stop=_index)
async def test_list_matches_a_python_model(
    store: Store, items: list[str], start: int, stop: int
) -> None:
    name = f"prop-{next(_list_names)}"
    for i, item in enumerate(items, start=1):
        assert await store.append(name, item) == i
    assert await store.range(name) == items
    assert await store.range(name, start, stop) == _model_range(items, start, stop)


# --- sorted sets, any key, atomic batches -------------------------------------


async def test_sorted_set_ranges_by_score_then_member(store: Store) -> None:
    assert await store.atomically(
        [ZAdd("z", "b", 20260102), ZAdd("z", "a", 20260102), ZAdd("z", "c", 20251231)]
    ) == [1, 1, 1]
    assert await store.zrange_by_score("z", 20260102, 20260102) == ["a", "b"]
    assert await store.zrange_by_score("z", float("-inf"), 20260102) == ["c", "a", "b"]
    # a member added again moves (0 added), a removed one is gone
    assert await store.atomically([ZAdd("z", "c", 20270101), ZRem("z", "a"), ZRem("z", "x")]) == [
        0,
        1,
        0,
    ]
    assert await store.zrange_by_score("z", 0, float("inf")) == ["b", "c"]
    assert await store.zrange_by_score("missing", 0, 1) == []


async def test_atomically_applies_every_write_in_order_and_reports_each(store: Store) -> None:
    await store.hset("h:a", "old", "1")
    await store.append("l:a", "x")
    results = await store.atomically(
        [
            HSet("h:a", "new", "2"),
            HSet("h:a", "new", "3"),  # the later write wins
            HDel("h:a", "old"),
            HDel("h:a", "never"),
            Delete("l:a"),
            Delete("l:a"),
        ]
    )
    assert results == [1, 0, 1, 0, 1, 0]
    assert await store.hgetall("h:a") == {"new": "3"}
    assert await store.range("l:a") == []
    assert await store.atomically([]) == []


async def test_delete_and_exists_cover_every_family(store: Store) -> None:
    await store.set("s", "1")
    await store.hset("h", "f", "v")
    await store.atomically([ZAdd("z", "m", 1)])
    await store.append("l", "x")
    for name in ("s", "h", "z", "l"):
        assert await store.exists(name) is True
        assert await store.delete(name) is True
        assert await store.exists(name) is False
        assert await store.delete(name) is False


async def test_a_name_holds_one_family(store: Store) -> None:
    """As Redis answers WRONGTYPE, the memory store refuses too: a repository that reuses a
    name for another kind of value fails in the embedded tests, not first in production."""
    await store.hset("taken", "f", "v")
    with pytest.raises(Exception, match=r"(?i)wrongtype|another kind"):
        await store.append("taken", "x")
    with pytest.raises(Exception, match=r"(?i)wrongtype|another kind"):
        await store.atomically([ZAdd("taken", "m", 1)])
    assert await store.hgetall("taken") == {"f": "v"}
    # SET is the exception in Redis: it replaces whatever the name held (unless NX).
    assert await store.set("taken", "x", nx=True) is False
    assert await store.set("taken", "x") is True
    assert await store.get("taken") == "x"
    assert await store.keys("taken") == ["taken"]


async def test_hvals_are_the_values_of_hgetall(store: Store) -> None:
    assert await store.hvals("h") == []
    for i in range(5):
        await store.hset("h", f"f{i}", f"v{i}")
    assert sorted(await store.hvals("h")) == sorted((await store.hgetall("h")).values())


async def test_hkeys_are_the_fields_of_hgetall(store: Store) -> None:
    assert await store.hkeys("h") == []
    for i in range(5):
        await store.hset("h", f"f{i}", f"v{i}")
    assert sorted(await store.hkeys("h")) == sorted(await store.hgetall("h"))


async def test_hmget_in_order_with_gaps(store: Store) -> None:
    await store.hset("h", "a", "1")
    await store.hset("h", "c", "3")
    assert await store.hmget("h", ["c", "b", "a"]) == ["3", None, "1"]
    assert await store.hmget("h", []) == []
    assert await store.hmget("missing", ["a"]) == [None]


# --- pub/sub -------------------------------------------------------------------


async def test_pubsub_order_and_channel_isolation(store: Store) -> None:
    room_a = await store.subscribe("room:a")
    room_b = await store.subscribe("room:b")
    try:
        assert room_a.channel == "room:a"
        messages = [f"m{i}-课" for i in range(50)]
        for m in messages:
            await store.publish("room:a", m)
        await store.publish("room:b", "only-b")
        assert [await next_message(room_a) for _ in messages] == messages
        assert await next_message(room_b) == "only-b"
        # room:b got nothing of room:a and vice versa
        await nothing_more(room_a, sentinel_store=store, channel="room:a")
        await nothing_more(room_b, sentinel_store=store, channel="room:b")
    finally:
        await room_a.close()
        await room_b.close()


async def test_pubsub_two_subscribers_both_get_it(store: Store) -> None:
    one = await store.subscribe("room:x")
    two = await store.subscribe("room:x")
    try:
        await store.publish("room:x", "hello")
        await store.publish("room:x", "again")
        assert [await next_message(one), await next_message(one)] == ["hello", "again"]
        assert [await next_message(two), await next_message(two)] == ["hello", "again"]
    finally:
        await one.close()
        await two.close()


async def test_pubsub_closing_one_subscriber_keeps_the_other(store: Store) -> None:
    one = await store.subscribe("room:x")
    two = await store.subscribe("room:x")
    try:
        await one.close()
        assert await one.get(timeout=0.1) is None
        await store.publish("room:x", "after-close")
        assert await next_message(two) == "after-close"
        assert await one.get(timeout=0.1) is None
        # a new subscriber on the same channel works too
        three = await store.subscribe("room:x")
        await store.publish("room:x", "third")
        assert await next_message(three) == "third"
        assert await next_message(two) == "third"
        await three.close()
    finally:
        await two.close()


async def test_pubsub_resubscribe_after_everyone_left(store: Store) -> None:
    first = await store.subscribe("room:y")
    await first.close()
    second = await store.subscribe("room:y")
    try:
        await store.publish("room:y", "back")
        assert await next_message(second) == "back"
    finally:
        await second.close()


async def test_pubsub_close_ends_iteration_after_queued_messages(store: Store) -> None:
    sub = await store.subscribe("room:z")
    witness = await store.subscribe("room:z")
    try:
        await store.publish("room:z", "one")
        await store.publish("room:z", "two")
        # once the witness has both, both are queued on ``sub`` as well
        assert [await next_message(witness), await next_message(witness)] == ["one", "two"]
        await sub.close()

        async def collect() -> list[str]:
            return [m async for m in sub]

        assert await asyncio.wait_for(collect(), EVENTUALLY) == ["one", "two"]
        assert await sub.get(timeout=0.1) is None
        await store.publish("room:z", "three")
        assert await next_message(witness) == "three"
        assert await sub.get(timeout=0.1) is None
    finally:
        await sub.close()
        await witness.close()


async def test_get_times_out_with_none(store: Store) -> None:
    sub = await store.subscribe("quiet")
    try:
        assert await sub.get(timeout=0.05) is None
    finally:
        await sub.close()


async def test_slow_subscriber_is_bounded_and_keeps_the_newest(store: Store) -> None:
    extra = 100
    total = SUBSCRIPTION_QUEUE_LIMIT + extra
    slow = await store.subscribe("busy")
    try:
        for i in range(total):
            await store.publish("busy", str(i))
        deadline = time.monotonic() + EVENTUALLY * 2
        while slow.dropped < extra:
            assert time.monotonic() < deadline, f"only {slow.dropped} of {extra} drops counted"
            await asyncio.sleep(0.02)
        assert slow.dropped == extra
        received: list[str] = []
        while (message := await slow.get(timeout=0.2)) is not None:
            received.append(message)
        assert len(received) == SUBSCRIPTION_QUEUE_LIMIT
        # the oldest were dropped; what is kept is the newest, still in order
        assert received == [str(i) for i in range(extra, total)]
    finally:
        await slow.close()


async def test_slow_subscriber_does_not_hold_back_a_fast_one(store: Store) -> None:
    slow = await store.subscribe("busy")
    fast = await store.subscribe("busy")
    try:
        total = SUBSCRIPTION_QUEUE_LIMIT + 10
        got: list[str] = []
        for i in range(total):
            await store.publish("busy", str(i))
            if (i + 1) % 100 == 0 or i == total - 1:
                while len(got) <= i:
                    got.append(await next_message(fast))
        assert got == [str(i) for i in range(total)]
        assert fast.dropped == 0
        deadline = time.monotonic() + EVENTUALLY
        while slow.dropped < 10:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
    finally:
        await slow.close()
        await fast.close()


# --- prefixes and health -------------------------------------------------------


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


async def test_redis_ping_is_false_when_unreachable() -> None:
    dead = RedisStore("redis://127.0.0.1:1/0", prefix=fresh_prefix())
    try:
        assert await dead.ping() is False
    finally:
        await dead.close()


async def test_memory_stores_are_independent() -> None:
    a, b = MemoryStore(prefix="a:"), MemoryStore(prefix="b:")
    await a.set("k", "a")
    await a.hset("h", "f", "a")
    assert await b.get("k") is None
    assert await b.hgetall("h") == {}


async def test_redis_prefix_isolation(redis_url: str) -> None:
    prefix_a, prefix_b = fresh_prefix(), fresh_prefix()
    a, b = RedisStore(redis_url, prefix=prefix_a), RedisStore(redis_url, prefix=prefix_b)
    await a.start()
    await b.start()
    try:
        await a.set("k", "from-a")
        await a.hset("h", "f", "a")
        await a.append("l", "a")

        assert await b.get("k") is None
        assert await b.keys("*") == []
        assert await b.hgetall("h") == {}
        assert await b.range("l") == []
        # the same name may exist under each prefix
        assert await b.hsetnx("h", "f", "b") is True
        assert await a.hget("h", "f") == "a"

        sub_b = await b.subscribe("room:r")
        sub_a = await a.subscribe("room:r")
        try:
            await a.publish("room:r", "for-a")
            await b.publish("room:r", "for-b")
            assert await next_message(sub_a) == "for-a"
            assert await next_message(sub_b) == "for-b"
            await nothing_more(sub_a, sentinel_store=a, channel="room:r")
            await nothing_more(sub_b, sentinel_store=b, channel="room:r")
        finally:
            await sub_a.close()
            await sub_b.close()
    finally:
        await a.close()
        await b.close()
        purge_prefix(redis_url, prefix_a)
        purge_prefix(redis_url, prefix_b)


async def test_redis_stores_sharing_a_prefix_share_state(redis_url: str) -> None:
    """Two processes (two stores) with one prefix see one another: that is distribution."""
    prefix = fresh_prefix()
    a, b = RedisStore(redis_url, prefix=prefix), RedisStore(redis_url, prefix=prefix)
    try:
        assert await a.hsetnx("rooms", "r", "{}") is True
        assert await b.hsetnx("rooms", "r", "{}") is False
        assert await a.set("owner", "a", nx=True) is True
        assert await b.set("owner", "b", nx=True) is False
        sub = await b.subscribe("room:r")
        try:
            await a.publish("room:r", "cross")
            assert await next_message(sub) == "cross"
        finally:
            await sub.close()
    finally:
        await a.close()
        await b.close()
        purge_prefix(redis_url, prefix)
