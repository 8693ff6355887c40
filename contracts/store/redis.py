"""Redis Store (redis-py asyncio): the distributed deployment's shared state.

A key is the prefix plus the name a repository gives it (the repositories document the
layout); a channel is the prefix plus ``ch:`` and its name. One pub/sub connection per
process is shared by every local subscriber (a process may follow thousands of rooms).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping, Sequence

import redis
import redis.asyncio as aioredis
from redis.asyncio.client import PubSub
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff

from contracts.store.base import HDel, HSet, Store, Subscription, Write, ZAdd, ZRem
from contracts.store.fanout import Fanout, QueueSubscription
from contracts.store.outage import OutageLog
from contracts.store.redis_cancel import CancellableRedis, keeping_cancellation

log = logging.getLogger(__name__)


# KEYS: claims, counts. ARGV: member, then bucket and capacity pairs. One script, so the
# read of the counts and the claim are one step however many processes place at once.
# The counts are rebuilt first when they are missing while claims exist (written by a
# release that did not count them).
_CLAIM_SLOT = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if held then return held end
if redis.call('EXISTS', KEYS[2]) == 0 and redis.call('EXISTS', KEYS[1]) == 1 then
  for _, bucket in ipairs(redis.call('HVALS', KEYS[1])) do
    redis.call('HINCRBY', KEYS[2], bucket, 1)
  end
end
local best, best_free = nil, 0
for i = 2, #ARGV, 2 do
  local bucket = ARGV[i]
  local free = tonumber(ARGV[i + 1]) - tonumber(redis.call('HGET', KEYS[2], bucket) or '0')
  if free > best_free or (free == best_free and best ~= nil and bucket > best) then
    best, best_free = bucket, free
  end
end
if best == nil then return false end
redis.call('HSET', KEYS[1], ARGV[1], best)
redis.call('HINCRBY', KEYS[2], best, 1)
return best
"""
_RELEASE_SLOT = """
local held = redis.call('HGET', KEYS[1], ARGV[1])
if not held then return false end
redis.call('HDEL', KEYS[1], ARGV[1])
if redis.call('HINCRBY', KEYS[2], held, -1) <= 0 then redis.call('HDEL', KEYS[2], held) end
return held
"""
_RECOUNT_SLOTS = """
redis.call('DEL', KEYS[2])
for _, bucket in ipairs(redis.call('HVALS', KEYS[1])) do
  redis.call('HINCRBY', KEYS[2], bucket, 1)
end
return 1
"""

# KEYS: list, key. ARGV: expected length, value ('' with ARGV[3] == '0': none), key value.
_APPEND_GUARDED = """
if redis.call('LLEN', KEYS[1]) ~= tonumber(ARGV[1]) then return 0 end
if ARGV[3] == '1' then redis.call('RPUSH', KEYS[1], ARGV[2]) end
redis.call('SET', KEYS[2], ARGV[4])
return 1
"""

# KEYS: counter. ARGV: ttl in ms. The expiry is set with the first increment (or repaired
# if a counter somehow lost it), never extended.
_INCR = """
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return n
"""


class RedisStore(Store):
    def __init__(self, url: str, prefix: str = "sanke:") -> None:
        self.prefix = prefix
        self.url = url
        self._redis: aioredis.Redis = CancellableRedis.from_url(
            url, decode_responses=True, health_check_interval=10, retry=_reconnecting()
        )
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._fanout = Fanout()
        self._lock = asyncio.Lock()
        self._claim_slot = self._redis.register_script(_CLAIM_SLOT)
        self._release_slot = self._redis.register_script(_RELEASE_SLOT)
        self._recount_slots = self._redis.register_script(_RECOUNT_SLOTS)
        self._append_guarded = self._redis.register_script(_APPEND_GUARDED)
        self._incr = self._redis.register_script(_INCR)

    def _k(self, name: str) -> str:
        return self.prefix + name

    def _channel(self, name: str) -> str:
        return self.prefix + "ch:" + name

    async def close(self) -> None:
        for subs in list(self._fanout.channels.values()):
            for sub in list(subs):
                await sub.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        if self._pubsub is not None:
            with contextlib.suppress(Exception):
                await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()

    async def ping(self) -> bool:
        try:
            return bool(await self._redis.ping())
        except Exception:
            return False

    # any key
    async def delete(self, key: str) -> bool:
        return bool(await self._redis.delete(self._k(key)))

    async def keys(self, pattern: str) -> list[str]:
        start = len(self.prefix)
        return [k[start:] async for k in self._redis.scan_iter(self._k(pattern), count=500)]

    async def exists(self, name: str) -> bool:
        return bool(await self._redis.exists(self._k(name)))

    async def atomically(self, writes: Sequence[Write]) -> list[int]:
        async with self._redis.pipeline(transaction=True) as pipe:
            for write in writes:
                match write:
                    case HSet(name, field, value):
                        pipe.hset(self._k(name), field, value)
                    case HDel(name, field):
                        pipe.hdel(self._k(name), field)
                    case ZAdd(name, member, score):
                        pipe.zadd(self._k(name), {member: score})
                    case ZRem(name, member):
                        pipe.zrem(self._k(name), member)
                    case _:
                        pipe.delete(self._k(write.key))
            return [int(r) for r in await keeping_cancellation(pipe.execute())]

    # strings
    async def set(
        self, key: str, value: str, ttl: float | None = None, *, nx: bool = False
    ) -> bool:
        px = max(1, math.ceil(ttl * 1000)) if ttl is not None else None
        result = await self._redis.set(self._k(key), value, px=px, nx=nx)
        return bool(result)

    async def get(self, key: str) -> str | None:
        return _text(await self._redis.get(self._k(key)))

    async def incr(self, key: str, ttl: float) -> int:
        ms = max(1, math.ceil(ttl * 1000))
        return int(await self._incr(keys=[self._k(key)], args=[ms]))

    async def ttl(self, key: str) -> float | None:
        ms = await self._redis.pttl(self._k(key))
        return ms / 1000 if ms >= 0 else None

    # hashes
    async def hset(self, name: str, field: str, value: str) -> None:
        await self._redis.hset(self._k(name), field, value)

    async def hsetnx(self, name: str, field: str, value: str) -> bool:
        return bool(await self._redis.hsetnx(self._k(name), field, value))

    async def hget(self, name: str, field: str) -> str | None:
        return _text(await self._redis.hget(self._k(name), field))

    async def hmget(self, name: str, fields: Sequence[str]) -> list[str | None]:
        if not fields:
            return []
        return [_text(value) for value in await self._redis.hmget(self._k(name), list(fields))]

    async def hgetall(self, name: str) -> dict[str, str]:
        result = await self._redis.hgetall(self._k(name))
        return {str(k): str(v) for k, v in result.items()}

    async def hvals(self, name: str) -> list[str]:
        return [str(value) for value in await self._redis.hvals(self._k(name))]

    async def hkeys(self, name: str) -> list[str]:
        return [str(field) for field in await self._redis.hkeys(self._k(name))]

    async def hdel(self, name: str, field: str) -> bool:
        return bool(await self._redis.hdel(self._k(name), field))

    # sorted sets
    async def zrange_by_score(self, name: str, low: float, high: float) -> list[str]:
        return [str(m) for m in await self._redis.zrangebyscore(self._k(name), low, high)]

    # slots
    async def claim_slot(
        self, claims: str, counts: str, member: str, capacities: Mapping[str, int]
    ) -> str | None:
        args: list[str | int] = [member]
        for bucket, capacity in sorted(capacities.items()):
            args += [bucket, int(capacity)]
        keys = [self._k(claims), self._k(counts)]
        return _text(await self._claim_slot(keys=keys, args=args))

    async def release_slot(self, claims: str, counts: str, member: str) -> str | None:
        keys = [self._k(claims), self._k(counts)]
        return _text(await self._release_slot(keys=keys, args=[member]))

    async def recount_slots(self, claims: str, counts: str) -> None:
        await self._recount_slots(keys=[self._k(claims), self._k(counts)], args=[])

    # lists
    async def append(self, name: str, value: str) -> int:
        return int(await self._redis.rpush(self._k(name), value))

    async def append_guarded(
        self, name: str, length: int, value: str | None, key: str, key_value: str
    ) -> bool:
        keys = [self._k(name), self._k(key)]
        args: list[str | int] = [length, value or "", "0" if value is None else "1", key_value]
        return bool(await self._append_guarded(keys=keys, args=args))

    async def length(self, name: str) -> int:
        return int(await self._redis.llen(self._k(name)))

    async def range(self, name: str, start: int = 0, stop: int = -1) -> list[str]:
        return [str(item) for item in await self._redis.lrange(self._k(name), start, stop)]

    async def replace_at(self, name: str, index: int, value: str) -> None:
        await self._redis.lset(self._k(name), index, value)

    # pub/sub
    async def publish(self, channel: str, message: str) -> int:
        return int(await self._redis.publish(self._channel(channel), message))

    async def subscribe(self, channel: str) -> Subscription:
        sub = QueueSubscription(channel, self._unsubscribe)
        async with self._lock:
            if self._pubsub is None:
                self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            if self._fanout.add(sub):
                await self._pubsub.subscribe(self._channel(channel))
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="redis-pubsub-reader")
        return sub

    async def _unsubscribe(self, sub: QueueSubscription) -> None:
        async with self._lock:
            if self._fanout.remove(sub) and self._pubsub is not None:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(self._channel(sub.channel))

    async def _read(self) -> None:
        assert self._pubsub is not None
        start = len(self._channel(""))
        outage = OutageLog(log, "redis pub/sub read")
        while True:
            try:
                if not self._pubsub.subscribed:
                    await asyncio.sleep(0.05)
                    continue
                msg = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                outage.failed(exc)
                await asyncio.sleep(0.5)
                continue
            outage.ok()
            if msg is None or msg.get("type") != "message":
                continue
            self._fanout.deliver(str(msg["channel"])[start:], str(msg["data"]))


def _reconnecting() -> Retry:
    """After a Redis restart every pooled connection is dead, and from_url's connections
    retry nothing: each one's first command would fail (a lost server offer, a 503) though
    Redis is back. A few quick reconnecting retries, only on connection errors: a command
    that timed out may have run, and running an INCR or an append twice is wrong."""
    return Retry(
        ExponentialBackoff(cap=0.5, base=0.05), retries=3, supported_errors=(redis.ConnectionError,)
    )


def _text(value: bytes | str | None) -> str | None:
    # The client decodes responses; the union is redis-py's typing, not a runtime case.
    return value.decode() if isinstance(value, bytes) else value
