"""Lesson sessions in the Store and their indexes, on both implementations."""

from __future__ import annotations

from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.store import Store
from contracts.store.redis import RedisStore
from lessons.models import LessonSession, SessionState
from lessons.repository import SessionRepository

# --- lesson sessions -----------------------------------------------------------


async def test_sessions(store: Store) -> None:
    sessions = SessionRepository(store)
    s1 = LessonSession(id="s1", room_id="r", starts_at=1000.0, ends_at=3400.0)
    # extra fields are allowed on a session and must survive the round trip
    s2 = LessonSession.model_validate(
        {"id": "s2", "room_id": "r", "starts_at": 1.0, "ends_at": 2.0, "teacher": "t-9"}
    )
    assert await sessions.get("s1") is None
    await sessions.put(s1)
    await sessions.put(s2)
    assert await sessions.get("s1") == s1
    got2 = await sessions.get("s2")
    assert got2 is not None and got2.model_dump()["teacher"] == "t-9"
    assert sorted(s.id for s in await sessions.all()) == ["s1", "s2"]
    live = s1.model_copy(update={"state": SessionState.live})
    await sessions.put(live)
    assert (await sessions.get("s1")) == live
    assert await sessions.delete("s1") is True
    assert await sessions.delete("s1") is False
    assert [s.id for s in await sessions.all()] == ["s2"]


def on(day: str, sid: str, **fields: object) -> LessonSession:
    return LessonSession.model_validate(
        {"id": sid, "room_id": f"room-{sid}", "starts_at": 1.0, "ends_at": 2.0, "date": day}
        | fields
    )


async def test_session_indexes_by_date_and_open(store: Store) -> None:
    sessions = SessionRepository(store)
    """The lesson clock reads only the sessions not yet recorded up to today; a day's
    sessions come from an index too. Updates move a session between the indexes."""
    await sessions.put(on("2026-11-27", "past-open"))
    await sessions.put(on("2026-11-27", "past-done", recorded=True))
    await sessions.put(on("2026-11-28", "today-a"))
    await sessions.put(on("2026-11-28", "today-b", state=SessionState.live))
    await sessions.put(on("2026-12-01", "future"))
    await sessions.put(on("2027-01-04", "next-year"))

    async def open_ids(until: str) -> list[str]:
        return [s.id for s in await sessions.list_open(until)]

    assert await open_ids("2026-11-28") == ["past-open", "today-a", "today-b"]
    assert await open_ids("2026-11-26") == []
    assert await open_ids("2027-12-31") == [
        "future",
        "next-year",
        "past-open",
        "today-a",
        "today-b",
    ]
    assert [s.id for s in await sessions.list_on("2026-11-28")] == ["today-a", "today-b"]
    assert [s.id for s in await sessions.list_on("2026-11-27")] == [
        "past-done",
        "past-open",
    ]
    assert await sessions.list_on("2026-11-29") == []
    got = {s.id: s for s in await sessions.list_on("2026-11-28")}
    assert got["today-b"].state is SessionState.live

    # Recording takes a session out of the open index, not out of its day.
    await sessions.put(on("2026-11-28", "today-a", recorded=True))
    assert await open_ids("2026-11-28") == ["past-open", "today-b"]
    assert len(await sessions.list_on("2026-11-28")) == 2
    # A session whose date changes moves to the other day.
    await sessions.put(on("2026-12-01", "today-b"))
    assert [s.id for s in await sessions.list_on("2026-11-28")] == ["today-a"]
    assert [s.id for s in await sessions.list_on("2026-12-01")] == ["future", "today-b"]
    assert await open_ids("2026-11-28") == ["past-open"]
    # Deleting removes it from every index.
    assert await sessions.delete("past-open") is True
    assert await open_ids("2026-11-28") == []
    assert [s.id for s in await sessions.list_on("2026-11-27")] == ["past-done"]
    assert sorted(s.id for s in await sessions.all()) == [
        "future",
        "next-year",
        "past-done",
        "today-a",
        "today-b",
    ]


async def test_redis_indexes_sessions_written_before_the_indexes(redis_url: str) -> None:
    prefix = fresh_prefix()
    writer, reader = RedisStore(redis_url, prefix=prefix), RedisStore(redis_url, prefix=prefix)
    sessions = SessionRepository(reader)
    await writer.start()
    await reader.start()
    try:
        # As an older version wrote them: the hash only.
        for session in (on("2026-11-28", "old-a"), on("2026-11-28", "old-b", recorded=True)):
            await writer._redis.hset(f"{prefix}sessions", session.id, session.model_dump_json())
        assert [s.id for s in await sessions.list_open("2026-11-28")] == ["old-a"]
        assert [s.id for s in await sessions.list_on("2026-11-28")] == ["old-a", "old-b"]
    finally:
        await writer.close()
        await reader.close()
        purge_prefix(redis_url, prefix)
