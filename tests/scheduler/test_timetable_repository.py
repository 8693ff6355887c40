"""The timetable repository on both stores (memory and a real Redis): the district document,
timetable versions, the published one."""

from __future__ import annotations

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
