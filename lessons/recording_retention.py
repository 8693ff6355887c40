"""The retention sweep: finished recordings older than their room kind's retention are
deleted (off by default: a district keeps its recordings until it decides), and each deletion
is a record of the teaching-record chain (``RecordingDeleted``: the file, its SHA-256 and
size when it was deleted, why), so ``sanke records verify --recording FILE`` reports a swept
file as deleted by retention rather than missing, and an auditor sees what went when.

How long: ``SANKE_RECORDINGS_RETENTION_DAYS`` for every room kind, and
``SANKE_RECORDINGS_RETENTION_DAYS_BY_KIND`` (``broadcast:365,dedicated:7``) for the kinds that
keep theirs longer or shorter. A file's kind is its lesson's in the replay library's
catalogue; a file the catalogue does not know gets the days for every kind (none set: kept).
A swept file's part leaves the catalogue (its lesson with its last part), and the storage
metric (``sanke_recordings_bytes``) is refreshed.

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
from collections.abc import Callable, Mapping
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from contracts.rooms import RoomKind
from lessons.recording_store import S3RecordingStore
from lessons.recordings import file_sha256
from lessons.records import RecordingDeleted, RecordLog
from lessons.replay_catalogue import ReplayCatalogue

log = logging.getLogger(__name__)

DAY = 86400.0
SWEEP_INTERVAL_SECONDS = DAY

__all__ = ["RecordingDeleted", "RetentionSweep", "expired"]


class SweepReport(BaseModel):
    model_config = ConfigDict(extra="forbid")

    deleted: list[str] = Field(default_factory=list)
    failed: list[str] = Field(default_factory=list)


def finished(directory: Path, before: float) -> list[tuple[float, Path]]:
    """Finished recordings under ``directory`` last changed before ``before``, with that
    time, oldest first (working files, ``….partial``, are never among them)."""
    if not directory.is_dir():
        return []
    found: list[tuple[float, Path]] = []
    for path in directory.rglob("*.mp4"):
        try:
            if path.is_file() and (changed := path.stat().st_mtime) < before:
                found.append((changed, path))
        except FileNotFoundError:
            continue  # swept meanwhile (a directory shared by nodes)
    return sorted(found)


def expired(directory: Path, days: float, now: float) -> list[Path]:
    """Finished recordings under ``directory`` last changed more than ``days`` ago."""
    return [path for _, path in finished(directory, now - days * DAY)]


class RetentionSweep:
    def __init__(
        self,
        directory: Path,
        records: RecordLog,
        days: float | None,
        clock: Callable[[], float] = time.time,
        interval: float = SWEEP_INTERVAL_SECONDS,
        *,
        by_kind: Mapping[RoomKind, float] | None = None,
        catalogue: ReplayCatalogue | None = None,
        bucket: S3RecordingStore | None = None,
    ) -> None:
        self.directory = directory
        self.bucket = bucket  # finished parts uploaded there are swept there too
        self.records = records
        self.days = days  # every room kind's, unless ``by_kind`` says otherwise
        self.by_kind = dict(by_kind or {})
        self.catalogue = catalogue
        self.clock = clock
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def days_of(self, name: str) -> float | None:
        """How long the file ``name`` (relative to the directory) is kept: its lesson's kind's
        days, or every kind's (None: kept)."""
        if not self.by_kind or self.catalogue is None:
            return self.days
        part = await self.catalogue.part_of_file(name)
        lesson = await self.catalogue.lesson(part.replay_id) if part is not None else None
        if lesson is None:
            return self.days
        return self.by_kind.get(lesson.kind, self.days)

    async def sweep(self) -> SweepReport:
        """Delete what is past its retention, each with its record; what was swept."""
        report = SweepReport()
        kept = [d for d in (self.days, *self.by_kind.values()) if d is not None]
        if not kept:
            return report
        now = self.clock()
        # the shortest retention bounds what can be expired: only those files are looked up
        candidates = await asyncio.to_thread(finished, self.directory, now - min(kept) * DAY)
        for changed, path in candidates:
            name = path.relative_to(self.directory).as_posix()
            try:
                days = await self.days_of(name)
            except Exception:  # the catalogue's store is down: sweep it next time
                log.exception("retention: the kind of %s is unknown now; kept", name)
                continue
            if days is None or changed >= now - days * DAY:
                continue
            try:
                body = await asyncio.to_thread(self._delete, path, name, days)
            except FileNotFoundError:
                continue  # another node sharing the directory swept it first
            except OSError:
                log.exception("retention: %s could not be deleted", name)
                report.failed.append(name)
                continue
            await self._forget(name, body, days, report)
        if self.bucket is not None:
            await self._sweep_bucket(self.bucket, now, min(kept), report)
        if self.catalogue is not None and report.deleted:
            await self.catalogue.refresh_metrics()
        return report

    async def _forget(
        self, name: str, body: RecordingDeleted, days: float, report: SweepReport
    ) -> None:
        """A file is deleted: its record, and its part leaves the catalogue."""
        try:
            await self.records.append(body, self.clock())
        except Exception:
            log.exception("RETENTION DELETION NOT RECORDED: %s", body.model_dump_json())
        if self.catalogue is not None:
            try:
                await self.catalogue.remove_file(name)
            except Exception:
                log.exception("retention: %s deleted but still in the catalogue", name)
        log.info("retention: deleted %s (older than %g days)", name, days)
        report.deleted.append(name)

    async def _sweep_bucket(
        self, bucket: S3RecordingStore, now: float, shortest: float, report: SweepReport
    ) -> None:
        try:
            objects = await bucket.list()
        except Exception:  # the object store is down: sweep it next time
            log.exception("retention: the recordings bucket cannot be listed now")
            return
        for obj in sorted(objects, key=lambda o: o.modified_at):
            if obj.modified_at >= now - shortest * DAY:
                continue
            try:
                days = await self.days_of(obj.name)
                if days is None or obj.modified_at >= now - days * DAY:
                    continue
                part = (
                    await self.catalogue.part_of_file(obj.name)
                    if self.catalogue is not None
                    else None
                )
                sha256 = part.sha256 if part is not None else await bucket.sha256(obj.name)
                await bucket.delete(obj.name)
            except Exception:
                log.exception("retention: %s could not be deleted from the bucket", obj.name)
                report.failed.append(obj.name)
                continue
            body = RecordingDeleted(
                file=obj.name,
                sha256=sha256,
                bytes=obj.size,
                modified_at=obj.modified_at,
                retention_days=days,
            )
            await self._forget(obj.name, body, days, report)

    def _delete(self, path: Path, name: str, days: float) -> RecordingDeleted:
        stat = path.stat()
        body = RecordingDeleted(
            file=name,
            sha256=file_sha256(path),
            bytes=stat.st_size,
            modified_at=stat.st_mtime,
            retention_days=days,
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
