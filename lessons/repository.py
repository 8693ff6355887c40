"""Lesson sessions in the Store.

Layout (under the store's prefix): ``sessions`` hash id → LessonSession JSON, with two
sorted sets of ids scored by the day as YYYYMMDD: ``sessions:by_date`` (every session) and
``sessions:open`` (not yet recorded: what the lesson clock must look at; a term holds
hundreds of thousands of sessions, a day a few thousand).
"""

from __future__ import annotations

from contracts.store import Store
from contracts.store.base import HDel, HSet, Write, ZAdd, ZRem
from lessons.models import LessonSession

SESSIONS = "sessions"
BY_DATE = "sessions:by_date"
OPEN = "sessions:open"


def day_number(date: str) -> int:
    """YYYY-MM-DD as the sortable number YYYYMMDD (a session without a date: 0)."""
    digits = date.replace("-", "")
    return int(digits) if digits.isdigit() else 0


class SessionRepository:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._indexed = False

    async def put(self, session: LessonSession) -> None:
        day = day_number(session.date)
        writes: list[Write] = [
            HSet(SESSIONS, session.id, session.model_dump_json()),
            ZAdd(BY_DATE, session.id, day),
            ZRem(OPEN, session.id) if session.recorded else ZAdd(OPEN, session.id, day),
        ]
        await self.store.atomically(writes)

    async def get(self, session_id: str) -> LessonSession | None:
        raw = await self.store.hget(SESSIONS, session_id)
        return LessonSession.model_validate_json(raw) if raw is not None else None

    async def all(self) -> list[LessonSession]:
        raws = await self.store.hvals(SESSIONS)
        return [LessonSession.model_validate_json(raw) for raw in raws]

    async def list_on(self, date: str) -> list[LessonSession]:
        """The sessions of one day (``LessonSession.date``, YYYY-MM-DD), from the index."""
        await self._ensure_indexes()
        day = day_number(date)
        return await self._by_id(await self.store.zrange_by_score(BY_DATE, day, day))

    async def list_open(self, until: str) -> list[LessonSession]:
        """The sessions not yet recorded whose date is ``until`` or earlier, from the index."""
        await self._ensure_indexes()
        ids = await self.store.zrange_by_score(OPEN, float("-inf"), day_number(until))
        return await self._by_id(ids)

    async def delete(self, session_id: str) -> bool:
        removed, _, _ = await self.store.atomically(
            [HDel(SESSIONS, session_id), ZRem(BY_DATE, session_id), ZRem(OPEN, session_id)]
        )
        return bool(removed)

    async def _by_id(self, ids: list[str]) -> list[LessonSession]:
        raws = await self.store.hmget(SESSIONS, sorted(ids))
        return [LessonSession.model_validate_json(raw) for raw in raws if raw is not None]

    async def _ensure_indexes(self) -> None:
        """Sessions written before the indexes existed get indexed once (idempotent, so two
        processes doing it at once agree)."""
        if self._indexed:
            return
        if await self.store.exists(SESSIONS) and not await self.store.exists(BY_DATE):
            for session in await self.all():
                await self.put(session)
        self._indexed = True
