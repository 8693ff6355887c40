"""The retention sweep: finished recordings older than SANKE_RECORDINGS_RETENTION_DAYS are
deleted (off by default), each deletion a record of the chain, so `sanke records verify
--recording` reports a swept file as deleted by retention, not as missing."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

from aiohttp.test_utils import TestServer
from support.harness import SECRET
from support.processes import SANKE

from contracts.store import MemoryStore
from lessons.recording_retention import RetentionSweep
from lessons.records import RecordedFile, RecordingDeleted, RecordLog
from sanke.app import create_app
from sanke.recording import retention_sweep
from sanke.settings import Settings

KEY = "k" * 40
DAY = 86400


def _file(directory: Path, name: str, age_days: float, data: bytes = b"mp4") -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    then = time.time() - age_days * DAY
    os.utime(path, (then, then))
    return path


async def test_old_finished_recordings_are_deleted_and_the_chain_says_so(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    old = _file(recordings, "famous-1/20260101T010000Z-p_1-part1.mp4", 40, b"old lesson" * 100)
    old_sha = hashlib.sha256(old.read_bytes()).hexdigest()
    recent = _file(recordings, "famous-1/20261101T010000Z-p_1-part2.mp4", 5)
    cut_short = _file(recordings, "famous-2/20260101T010000Z-p_2-part1.mp4.partial", 40)
    lone = _file(recordings, "famous-3/20260101T010000Z-p_3-part1.mp4", 31)
    store = MemoryStore()
    records = RecordLog(store, KEY)
    await records.append(
        RecordedFile(
            room_id="famous-1",
            participant_id="p_1",
            part=1,
            file="famous-1/20260101T010000Z-p_1-part1.mp4",
            sha256=old_sha,
            bytes=old.stat().st_size,
            started_at=1.0,
            ended_at=2.0,
            duration_seconds=1.0,
        ),
        time.time(),
    )

    report = await RetentionSweep(recordings, records, 30).sweep()

    assert report.deleted == [
        "famous-1/20260101T010000Z-p_1-part1.mp4",
        "famous-3/20260101T010000Z-p_3-part1.mp4",
    ]
    assert not old.exists() and not lone.exists()
    assert recent.exists() and cut_short.exists()  # younger, or still a working file
    assert not (recordings / "famous-3").exists()  # its room's last part went
    assert (await RetentionSweep(recordings, records, 30).sweep()).deleted == []
    lines = await records.raw()
    deleted = [
        RecordingDeleted.model_validate(json.loads(line)["body"])
        for line in lines
        if '"kind":"recording-deleted"' in line
    ]
    assert [(d.file, d.reason, d.retention_days) for d in deleted] == [
        ("famous-1/20260101T010000Z-p_1-part1.mp4", "retention", 30),
        ("famous-3/20260101T010000Z-p_3-part1.mp4", "retention", 30),
    ]
    assert deleted[0].sha256 == old_sha and deleted[0].bytes == 1000
    assert (await records.verify()).ok

    export = tmp_path / "records.jsonl"
    export.write_text("\n".join(lines) + "\n")

    def verify(path: Path) -> subprocess.CompletedProcess[str]:
        args = ["--file", str(export), "--key", KEY, "--recording", str(path)]
        return subprocess.run([SANKE, "records", "verify", *args], capture_output=True, text=True)

    swept = verify(old)
    assert swept.returncode == 0, swept.stdout + swept.stderr
    assert "deleted by retention (30 days" in swept.stdout and old_sha in swept.stdout
    missing = verify(recordings / "famous-1" / "never-recorded.mp4")
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_retention_is_off_by_default(tmp_path: Path) -> None:
    records = RecordLog(MemoryStore(), KEY)
    assert Settings().recordings_retention_days is None
    assert retention_sweep(Settings(), tmp_path, records) is None
    sweep = retention_sweep(Settings(recordings_retention_days=7), tmp_path, records)
    assert isinstance(sweep, RetentionSweep) and sweep.days == 7
    assert retention_sweep(Settings(recordings_retention_days=7), None, records) is None


async def test_the_embedded_server_sweeps_when_it_starts(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    old = _file(recordings, "famous-1/20260101T010000Z-p_1-part1.mp4", 10)
    recent = _file(recordings, "famous-1/20261201T010000Z-p_1-part2.mp4", 1)
    settings = Settings(
        token_secret=SECRET,
        dev=True,
        records_key=KEY,
        recordings_dir=str(recordings),
        recordings_retention_days=7,
        host=["127.0.0.1"],
        redis_url=None,
    )
    store = MemoryStore()
    server = TestServer(create_app(settings, store=store), host="127.0.0.1")
    await server.start_server()
    try:
        for _ in range(100):
            if not old.exists():
                break
            await asyncio.sleep(0.1)
        assert not old.exists() and recent.exists()
        lines = await RecordLog(store, KEY).raw()
        for _ in range(50):
            if any('"kind":"recording-deleted"' in line for line in lines):
                break
            await asyncio.sleep(0.1)
            lines = await RecordLog(store, KEY).raw()
        assert any('"kind":"recording-deleted"' in line for line in lines)
    finally:
        await server.close()
