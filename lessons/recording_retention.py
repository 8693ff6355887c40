"""The retention sweep: finished recordings older than ``SANKE_RECORDINGS_RETENTION_DAYS`` are
deleted (off by default: a district keeps its recordings until it decides), and each deletion
is a record of the teaching-record chain (``RecordingDeleted``: the file, its SHA-256 and
size when it was deleted, why), so ``sanke records verify --recording FILE`` reports a swept
file as deleted by retention rather than missing, and an auditor sees what went when.

Only finished files (``*.mp4``, by their last change: when they were finished) are swept;
a part being written (``*.partial``) never is. The sweep runs where the files are: the
process whose SFU worker writes them (`sanke serve`, a `sanke sfu` node), when it starts and
then daily.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from lessons.recordings import file_sha256
from lessons.records import RecordingDeleted, RecordLog

log = logging.getLogger(__name__)

DAY = 86400.0
SWEEP_INTERVAL_SECONDS = DAY

__all__ = ["RecordingDeleted", "RetentionSweep", "expired"]


class SweepReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deleted: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


def expired(directory: Path, days: float, now: float) -> list[Path]:
    """Finished recordings under ``directory`` last changed more than ``days`` ago, oldest
    first (working files, ``….partial``, are never among them)."""
    if not directory.is_dir():
        return []
    cutoff = now - days * DAY
    found: list[tuple[float, Path]] = []
    for path in directory.rglob("*.mp4"):
        try:
            if path.is_file() and (changed := path.stat().st_mtime) < cutoff:
                found.append((changed, path))
        except FileNotFoundError:
            continue  # swept meanwhile (a directory shared by nodes)
    return [path for _, path in sorted(found)]


class RetentionSweep:
    def __init__(
        self,
        directory: Path,
        records: RecordLog,
        days: float,
        clock: Callable[[], float] = time.time,
        interval: float = SWEEP_INTERVAL_SECONDS,
    ) -> None:
        self.directory = directory
        self.records = records
        self.days = days
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def sweep(self) -> SweepReport:
        """Delete what is past its retention, each with its record; what was swept."""
        report = SweepReport()
        for path in await asyncio.to_thread(expired, self.directory, self.days, self.clock()):
            name = path.relative_to(self.directory).as_posix()
            try:
                body = await asyncio.to_thread(self._delete, path, name)
            except FileNotFoundError:
                continue  # another node sharing the directory swept it first
            except OSError:
                log.exception("retention: %s could not be deleted", name)
                report.failed.append(name)
                continue
            try:
                await self.records.append(body, self.clock())
            except Exception:
                log.exception("RETENTION DELETION NOT RECORDED: %s", body.model_dump_json())
            log.info("retention: deleted %s (older than %g days)", name, self.days)
            report.deleted.append(name)
        return report

    def _delete(self, path: Path, name: str) -> RecordingDeleted:
        stat = path.stat()
        body = RecordingDeleted(
            file=name,
            sha256=file_sha256(path),
            bytes=stat.st_size,
            modified_at=stat.st_mtime,
            retention_days=self.days,
        )
        path.unlink()
        with contextlib.suppress(OSError):
            path.parent.rmdir()  # the room's directory, once its last part is gone
        return body

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception:  # a failing disk must not end the sweep for good
                log.exception("the retention sweep of %s failed", self.directory)
            await asyncio.sleep(self.interval)
