"""What one lesson-clock tick reads from the store, at province scale.

    .venv/bin/python benchmarks/lesson_clock.py [--weeks 20 --per-day 3400] [--redis URL]

A province publishes ~17,000 lessons a week (3,400 a school day); a term materializes every
one of them as a session. Mid-term, half are recorded. The baseline is what the clock did
before the indexes (list every session, keep today's and the unrecorded); the indexed read is
``list_open_sessions(today)`` plus ``list_sessions_on(today)``. Memory store always; Redis
too when reachable (``--redis`` or ``REDIS_URL``; a fresh key prefix, removed afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import date, timedelta

from contracts.store import MemoryStore, Store
from contracts.store.redis import RedisStore
from lessons.models import LessonSession
from lessons.repository import SessionRepository


def sessions(weeks: int, per_day: int, today: date) -> list[LessonSession]:
    first = today - timedelta(weeks=weeks // 2)
    out = []
    for d in range(weeks * 7):
        day = first + timedelta(days=d)
        if day.weekday() >= 5:
            continue
        for k in range(per_day):
            out.append(
                LessonSession(
                    id=f"o{k}.{day.isoformat()}",
                    room_id=f"lesson-o{k}-{day.isoformat()}",
                    starts_at=0.0,
                    ends_at=2700.0,
                    date=day.isoformat(),
                    recorded=day < today,
                )
            )
    return out


async def fill(store: Store, items: list[LessonSession]) -> None:
    for k in range(0, len(items), 32):
        await asyncio.gather(*(SessionRepository(store).put(s) for s in items[k : k + 32]))


async def measure(name: str, store: Store, today: str, rounds: int) -> tuple[float, float, int]:
    def best(times: list[float]) -> float:
        return min(times)

    scan, indexed = [], []
    read = 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        every = await SessionRepository(store).all()
        due = [s for s in every if not s.recorded and s.date <= today]
        _ = [s for s in every if s.date == today]
        scan.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        open_ = await SessionRepository(store).list_open(today)
        mine = await SessionRepository(store).list_on(today)
        indexed.append(time.perf_counter() - t0)
        assert sorted(s.id for s in open_) == sorted(s.id for s in due), name
        read = len(open_) + len(mine)
    return best(scan), best(indexed), read


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weeks", type=int, default=20)
    parser.add_argument("--per-day", type=int, default=3400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--redis", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    args = parser.parse_args()
    today = date(2026, 11, 25)
    items = sessions(args.weeks, args.per_day, today)
    print(
        f"{len(items)} sessions ({args.weeks} weeks x {args.per_day} a school day), today {today}"
    )
    stores: list[tuple[str, Store, str | None]] = [("memory", MemoryStore(), None)]
    prefix = f"sanke-bench-{uuid.uuid4().hex[:8]}:"
    redis_store = RedisStore(args.redis, prefix=prefix)
    await redis_store.start()
    if await redis_store.ping():
        stores.append(("redis", redis_store, prefix))
    else:
        print(f"(Redis at {args.redis} not reachable: memory store only)")
        await redis_store.close()
    rows = []
    try:
        for name, store, _ in stores:
            t0 = time.perf_counter()
            await fill(store, items)
            filled = time.perf_counter() - t0
            scan, indexed, read = await measure(name, store, today.isoformat(), args.rounds)
            rows.append((name, filled, scan, indexed, read))
    finally:
        if len(stores) > 1:
            keys = await redis_store._redis.keys(prefix + "*")
            if keys:
                await redis_store._redis.delete(*keys)
            await redis_store.close()
    print()
    print(
        f"{'store':<8}{'fill s':>9}{'scan all s':>12}{'indexed s':>11}{'sessions read':>15}{'speed-up':>10}"
    )
    for name, filled, scan, indexed, read in rows:
        print(
            f"{name:<8}{filled:>9.1f}{scan:>12.3f}{indexed:>11.4f}{read:>15}{scan / indexed:>9.0f}x"
        )
    name, _, scan, indexed, read = rows[-1]
    print(
        f"RESULT lesson_clock sessions={len(items)} store={name} scan_s={scan:.3f} "
        f"indexed_s={indexed:.4f} read={read}"
    )


if __name__ == "__main__":
    asyncio.run(main())
