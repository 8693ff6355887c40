"""The timetable repository on both stores (memory and a real Redis): the district document,
timetable versions, the published one, and versions that concurrent solves cannot collide on."""

from __future__ import annotations

import asyncio
from typing import Any, cast

from contracts.store import Store
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository
from scheduler.timetable import Assignment, SolveStats, Timetable, Unmet


def timetable(district_id: str = "d-1", served: int = 1) -> Timetable:
    assignment = Assignment(
        demand_id="dm-1", class_id="c-1", school="s-1", offering_id="o-1", teacher="t-1",
        master_school="m-1", weekday="mon", master_period=1, remote_period=2,
        overlap_minutes=38,
    )  # fmt: skip
    return Timetable(
        district_id=district_id,
        assignments=[assignment] * served,
        unmet=[
            Unmet(demand_id="dm-2", class_id="c-2", subject="英语", missing_periods=1, reasons=[])
        ],
        stats=SolveStats(served=served, demanded=served + 1, gap_pct=0.5),
    )


class Interleaving:
    """A store that yields to the event loop before every call, as a networked store does.

    The memory store never suspends, so two coroutines on it could not interleave at all and a
    race between them would pass unseen; on Redis this only adds what the network already does.
    """

    def __init__(self, store: Store) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(0)
            return await method(*args, **kwargs)

        return call


async def test_district_round_trip(store: Store) -> None:
    repo = TimetableRepository(store)
    assert await repo.district() is None
    assert await repo.district_json() is None
    assert await repo.district_id() is None

    district = demo_district()
    await repo.put_district(district)
    assert await repo.district() == district
    assert await repo.district_id() == district.id

    await repo.put_district_json('{"changed": true}', "d-2")
    assert await repo.district_json() == '{"changed": true}'
    assert await repo.district_id() == "d-2"


async def test_a_district_stored_before_its_id_was_kept_gets_its_id(store: Store) -> None:
    district = demo_district()
    await store.set("kv:schedule:district", district.model_dump_json())  # an older release
    assert await TimetableRepository(store).district_id() == district.id
    assert await store.get("kv:schedule:district_id") == district.id


async def test_versions_count_up_and_keep_what_was_stored(store: Store) -> None:
    repo = TimetableRepository(store)
    assert await repo.versions() == []
    assert await repo.get(1) is None
    first, second = timetable(served=1), timetable(served=2)
    assert await repo.add(first) == 1
    assert await repo.add(second) == 2

    stored = await repo.get(2)
    assert stored is not None
    assert stored.timetable == second.model_copy(update={"version": 2})
    assert first.version is None, "add stores a copy, it does not change the caller's"
    assert [(v.version, v.served, v.demanded, v.gap_pct) for v in await repo.versions()] == [
        (1, 1, 2, 0.5),
        (2, 2, 3, 0.5),
    ]


async def test_published_version_and_its_log(store: Store) -> None:
    repo = TimetableRepository(store)
    assert await repo.published_version() is None
    for _ in range(3):
        await repo.add(timetable())
    await repo.publish(2)
    assert await repo.published_version() == 2
    assert [v.published for v in await repo.versions()] == [False, True, False]
    await repo.publish(3)
    assert await repo.published_version() == 3
    log = await store.range("l:schedule:publish_log")
    assert [line.split(",")[0] for line in log] == ['{"version": 2', '{"version": 3']


async def test_concurrent_solves_get_distinct_versions_and_both_are_kept(store: Store) -> None:
    # Two replicas (or two jobs) finishing their solves at the same moment.
    shared = cast(Store, Interleaving(store))
    replicas = [TimetableRepository(shared) for _ in range(2)]
    solved = [timetable(district_id=f"from-{k}") for k in range(2)]
    versions = await asyncio.gather(*(r.add(t) for r, t in zip(replicas, solved, strict=True)))

    assert sorted(versions) == [1, 2]
    repo = TimetableRepository(store)
    assert [v.version for v in await repo.versions()] == [1, 2]
    for version, sent in zip(versions, solved, strict=True):
        stored = await repo.get(version)
        assert stored is not None
        assert stored.timetable.district_id == sent.district_id
        assert stored.timetable.version == version


async def test_many_concurrent_solves_each_get_their_own_version(store: Store) -> None:
    repo = TimetableRepository(cast(Store, Interleaving(store)))
    await repo.add(timetable(district_id="before"))
    versions = await asyncio.gather(*(repo.add(timetable(district_id=f"t-{k}")) for k in range(6)))
    assert sorted(versions) == [2, 3, 4, 5, 6, 7]
    kept = {v: await repo.get(v) for v in versions}
    assert {v: s.timetable.district_id for v, s in kept.items() if s} == {
        v: f"t-{k}" for k, v in enumerate(versions)
    }


async def test_versions_are_stored_compressed_and_earlier_plain_ones_still_read(
    store: Store,
) -> None:
    from datetime import UTC, datetime

    from scheduler.repository import TIMETABLES, StoredTimetable, unpack

    repo = TimetableRepository(store)
    big = timetable(served=400)
    version = await repo.add(big)
    raw = await store.hget(TIMETABLES, str(version))
    assert raw is not None and raw.startswith("z1:")
    plain = StoredTimetable(created=datetime.now(UTC), timetable=big).model_dump_json()
    assert len(raw) * 5 < len(plain)  # a timetable repeats itself: compressed well
    assert StoredTimetable.model_validate_json(unpack(raw)).timetable.assignments == big.assignments
    # A version an earlier release wrote: plain JSON, and no summary in the info hash.
    legacy = StoredTimetable(created=datetime.now(UTC), timetable=timetable(served=3))
    await store.hset(TIMETABLES, "7", legacy.model_dump_json())
    stored = await repo.get(7)
    assert stored is not None and stored.timetable.stats.served == 3
    assert [(v.version, v.served) for v in await repo.versions()] == [(version, 400), (7, 3)]


async def test_only_the_newest_versions_and_the_published_one_are_kept(store: Store) -> None:
    repo = TimetableRepository(store, keep_versions=3)
    first = await repo.add(timetable(served=1))
    await repo.publish(first)
    numbers = [await repo.add(timetable(served=n)) for n in range(2, 7)]
    kept = [v.version for v in await repo.versions()]
    assert kept == [first, *numbers[-3:]]  # the published one stays although it is oldest
    assert await repo.get(numbers[0]) is None
    assert (await repo.get(first)) is not None
