"""Finished parts to the bucket, then into the replay library.

A part the SFU finished (faststart remux, SHA-256, its record in the chain) is uploaded to
its final key, verified (``S3RecordingStore.put``), and only then catalogued: the library
never lists a part the bucket does not hold. The local file is removed after a verified
upload (unless ``keep_local``).

An upload that fails after its retries keeps the local file: it is a *pending* part. Every
``retry_seconds`` (and when the process starts) the finished ``*.mp4`` files in the
recordings directory that are not uploaded yet are tried again, each with its SHA-256 from
the records chain (the record is written before the upload), so a recording is never lost
to an outage of the object store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from pathlib import Path

from contracts.recording import RecordingFinished
from lessons.recording_store import S3RecordingStore, UploadFailed
from lessons.records import RecordedFile, RecordLog
from lessons.replay_catalogue import ReplayCatalogue, recorded_files

log = logging.getLogger(__name__)

DEFAULT_RETRY_SECONDS = 60.0


def finished_locally(directory: Path) -> list[Path]:
    """Finished parts in the recordings directory (never a ``.partial``), oldest first."""
    if not directory.is_dir():
        return []
    found = []
    for path in directory.rglob("*.mp4"):
        with contextlib.suppress(FileNotFoundError):
            if path.is_file():
                found.append((path.stat().st_mtime, path))
    return [p for _, p in sorted(found)]


class RecordingUploads:
    def __init__(
        self,
        store: S3RecordingStore,
        directory: Path,
        records: RecordLog,
        catalogue: ReplayCatalogue | None,
        *,
        keep_local: bool = False,
        retry_seconds: float = DEFAULT_RETRY_SECONDS,
    ) -> None:
        self.store = store
        self.directory = directory
        self.records = records
        self.catalogue = catalogue
        self.keep_local = keep_local
        self.retry_seconds = retry_seconds
        self._busy: set[str] = set()  # names being uploaded by this process
        self._task: asyncio.Task[None] | None = None

    async def publish(self, recording: RecordingFinished) -> bool:
        """Upload a finished part, verify it, catalogue it, remove the local file; False when
        the upload failed (the file stays for the next retry)."""
        name = recording.file
        if name in self._busy:
            return False
        self._busy.add(name)
        try:
            local = self.directory / name
            try:
                await self.store.put(local, name, recording.sha256)
            except FileNotFoundError:
                log.warning("upload: %s is gone from the recordings directory", name)
                return False
            except UploadFailed as exc:
                log.error("upload of %s failed, kept here to try again: %s", name, exc)
                return False
            log.info("uploaded %s (%d bytes) to the recordings bucket", name, recording.bytes)
            if self.catalogue is not None:
                try:
                    await self.catalogue.add(recording)
                except Exception:  # in the bucket and the records: indexed again at start
                    log.exception("replay: %s could not be catalogued", name)
                    return True
            if not self.keep_local:
                with contextlib.suppress(FileNotFoundError):
                    await asyncio.to_thread(local.unlink)
                with contextlib.suppress(OSError):
                    local.parent.rmdir()  # the room's directory, once its last part left
            return True
        finally:
            self._busy.discard(name)

    async def pending(self) -> list[Path]:
        """Finished local parts not in the bucket's catalogue yet."""
        local = await asyncio.to_thread(finished_locally, self.directory)
        if not self.keep_local or self.catalogue is None:
            return local
        return [
            p
            for p in local
            if await self.catalogue.part_of_file(p.relative_to(self.directory).as_posix()) is None
        ]

    async def retry_pending(self) -> int:
        """Try the pending parts again; how many are uploaded now."""
        waiting = await self.pending()
        if not waiting:
            return 0
        await self.store.ensure_bucket()  # a server that came back empty (a new MinIO)
        named = {r.file: r for r in recorded_files(await self.records.raw())}
        done = 0
        for path in waiting:
            name = path.relative_to(self.directory).as_posix()
            record = named.get(name)
            if record is None:
                log.warning("upload: no record names %s, kept here", name)
                continue
            if await self.publish(_finished(record)):
                done += 1
        return done

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="uploads")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        await self.store.ensure_bucket()
        while True:
            try:
                await self.retry_pending()
            except Exception:  # the store is down: the next round tries again
                log.exception("retrying the pending recording uploads failed")
            await asyncio.sleep(self.retry_seconds)


def _finished(record: RecordedFile) -> RecordingFinished:
    return RecordingFinished(
        room_id=record.room_id,
        participant_id=record.participant_id,
        part=record.part,
        track=record.track,
        file=record.file,
        sha256=record.sha256,
        bytes=record.bytes,
        started_at=record.started_at,
        ended_at=record.ended_at,
        duration_seconds=record.duration_seconds,
    )
