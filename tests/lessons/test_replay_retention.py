"""Retention per room kind: a 名校 (broadcast) lesson is kept a year while other kinds go after
30 days; a swept part leaves the replay library (its lesson with its last part), its deletion
is a record of the chain as before, and the storage metric per school follows. Both stores.
Also: the kind:days setting, and indexing parts the records name at start."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError
from support.harness import SECRET
from support.replays import KEY, lesson, part

from contracts.rooms import RoomKind
from contracts.store import Store
from lessons.recording_retention import RetentionSweep
from lessons.records import RecordedFile, RecordLog
from lessons.replay_catalogue import ReplayCatalogue, recorded_files
from sanke.recording import retention_sweep
from sanke.settings import Settings


def _bytes(school: str) -> float | None:
    return REGISTRY.get_sample_value("sanke_recordings_bytes", {"school": school})


async def test_each_room_kind_keeps_its_recordings_its_own_days(
    store: Store, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    # schools of their own per store run: the gauge is the process's
    prefix = f"ret-{id(store)}"
    famous, dedicated, young = f"{prefix}-famous", f"{prefix}-ded", f"{prefix}-young"
    await lesson(store, "famous.2025-10-01", kind=RoomKind.broadcast, school=famous)
    await lesson(store, "ded.2025-10-01", kind=RoomKind.dedicated, school=dedicated)
    await lesson(store, "young.2026-11-30", kind=RoomKind.dedicated, school=young)
    old_famous = await part(store, recordings, "famous.2025-10-01", data=b"f" * 100, age_days=40)
    very_old_famous = await part(
        store, recordings, "famous.2025-10-01", data=b"F" * 50, n=2, age_days=400
    )
    old_dedicated = await part(store, recordings, "ded.2025-10-01", data=b"d" * 70, age_days=40)
    fresh = await part(store, recordings, "young.2026-11-30", data=b"y" * 30, age_days=1)
    stray = recordings / "no-lesson" / "x-part1.mp4"  # on disk, in no catalogue
    stray.parent.mkdir(parents=True)
    stray.write_bytes(b"s")
    then = time.time() - 40 * 86400
    os.utime(stray, (then, then))
    catalogue = ReplayCatalogue(store)
    await catalogue.refresh_metrics()
    assert _bytes(famous) == 150 and _bytes(dedicated) == 70 and _bytes(young) == 30

    records = RecordLog(store, KEY)
    sweep = RetentionSweep(
        recordings, records, 30, by_kind={RoomKind.broadcast: 365}, catalogue=catalogue
    )
    report = await sweep.sweep()
    assert sorted(report.deleted) == sorted(
        [very_old_famous.file, old_dedicated.file, "no-lesson/x-part1.mp4"]
    )
    assert (recordings / old_famous.file).is_file() and (recordings / fresh.file).is_file()
    assert not (recordings / very_old_famous.file).exists()

    famous_replay = await catalogue.get("famous.2025-10-01")
    assert famous_replay is not None
    assert [p.file for p in famous_replay.parts] == [old_famous.file]
    assert await catalogue.get("ded.2025-10-01") is None  # its last part went
    assert await catalogue.get("young.2026-11-30") is not None
    assert _bytes(famous) == 100 and _bytes(dedicated) == 0 and _bytes(young) == 30

    deleted = {
        b["file"]: b["retention_days"]
        for line in await records.raw()
        if (b := json.loads(line)["body"]).get("kind") == "recording-deleted"
    }
    assert deleted == {
        very_old_famous.file: 365,
        old_dedicated.file: 30,
        "no-lesson/x-part1.mp4": 30,
    }
    assert (await records.verify()).ok
    assert (await sweep.sweep()).deleted == []  # nothing more is due


async def test_only_a_kind_with_days_is_swept_when_no_default_is_set(
    store: Store, tmp_path: Path
) -> None:
    recordings = tmp_path / "recordings"
    await lesson(store, "ded.2025-10-01", kind=RoomKind.dedicated)
    await lesson(store, "famous.2025-10-01", kind=RoomKind.broadcast)
    ded = await part(store, recordings, "ded.2025-10-01", age_days=10)
    famous = await part(store, recordings, "famous.2025-10-01", age_days=1000)
    sweep = RetentionSweep(
        recordings,
        RecordLog(store, KEY),
        None,
        by_kind={RoomKind.dedicated: 7},
        catalogue=ReplayCatalogue(store),
    )
    assert (await sweep.sweep()).deleted == [ded.file]
    assert (recordings / famous.file).is_file()


def test_the_kind_days_setting() -> None:
    settings = Settings(
        token_secret=SECRET,
        recordings_retention_days="30",  # type: ignore[arg-type]
        recordings_retention_days_by_kind="broadcast:365, dedicated:7",  # type: ignore[arg-type]
    )
    assert settings.retention_by_kind() == {RoomKind.broadcast: 365, RoomKind.dedicated: 7}
    sweep = retention_sweep(settings, Path("/tmp/x"), RecordLog.__new__(RecordLog))
    assert sweep is not None and sweep.days == 30
    assert sweep.by_kind == {RoomKind.broadcast: 365, RoomKind.dedicated: 7}
    only_kinds = Settings(token_secret=SECRET, recordings_retention_days_by_kind="master:90")  # type: ignore[arg-type]
    assert retention_sweep(only_kinds, Path("/tmp/x"), RecordLog.__new__(RecordLog)) is not None
    assert (
        retention_sweep(Settings(token_secret=SECRET), Path("/x"), RecordLog.__new__(RecordLog))
        is None
    )
    for bad in ("meeting:3", "broadcast", "broadcast:0", "broadcast:x", "broadcast:-1"):
        with pytest.raises(ValidationError):
            Settings(token_secret=SECRET, recordings_retention_days_by_kind=bad)  # type: ignore[arg-type]


async def test_parts_the_records_name_are_indexed_at_start(store: Store, tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    await lesson(store, "famous.2026-11-02", kind=RoomKind.broadcast, teacher="wang")
    records = RecordLog(store, KEY)
    names = ["famous.2026-11-02/1-t-part1.mp4", "famous.2026-11-02/2-t-part1-screen.mp4"]
    for i, name in enumerate(names):
        (recordings / name).parent.mkdir(parents=True, exist_ok=True)
        (recordings / name).write_bytes(b"x" * (i + 1))
    gone = "famous.2026-11-02/0-t-part9.mp4"  # named by the records, not on disk
    for name, track in [(names[0], "camera"), (names[1], "screen"), (gone, "camera")]:
        body = RecordedFile(
            room_id="famous.2026-11-02",
            participant_id="p_1",
            part=1,
            track=track,  # type: ignore[arg-type]
            file=name,
            sha256="0" * 64,
            bytes=1,
            started_at=1_700_000_000,
            ended_at=1_700_000_060,
            duration_seconds=60,
        )
        await records.append(body, 1_700_000_100)
    catalogue = ReplayCatalogue(store)
    found = recorded_files(await records.raw())
    assert await catalogue.index_recorded(found, recordings) == 2
    replay = await catalogue.get("famous.2026-11-02")
    assert replay is not None and replay.teacher == "wang"
    assert [p.track for p in replay.parts] == ["camera", "screen"]
    assert await catalogue.index_recorded(found, recordings) == 0  # already there
