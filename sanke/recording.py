"""What a process with an SFU worker gives it: its settings (where it records) and the
recording hooks (the lessons' policy and records). Apart from sanke.app, so that `sanke sfu`
does not import the whole application."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from contracts.store import Store
from lessons.hls import LessonHls
from lessons.recording_retention import RetentionSweep
from lessons.recording_store import S3RecordingStore
from lessons.recording_uploads import RecordingUploads
from lessons.recordings import LessonRecordings
from lessons.records import RecordLog
from lessons.replay_catalogue import ReplayCatalogue
from lessons.repository import SessionRepository
from sanke.settings import Settings
from signaling.rooms import RoomRepository


def recording_store(settings: Settings) -> S3RecordingStore | None:
    """The bucket finished recordings go to (SANKE_RECORDINGS_S3_*), None: the directory."""
    s3 = settings.recordings_s3()
    return S3RecordingStore(s3) if s3 is not None else None


def lesson_hls(settings: Settings, store: Store) -> LessonHls | None:
    """The HLS policy (by room kind), where any kind is packaged."""
    kinds = settings.hls_room_kinds()
    return LessonHls(RoomRepository(store), kinds) if kinds else None


def lesson_recordings(settings: Settings, store: Store, records: RecordLog) -> LessonRecordings:
    catalogue = ReplayCatalogue(store)
    bucket = recording_store(settings)
    uploads = (
        RecordingUploads(
            bucket,
            settings.recordings_path(),
            records,
            catalogue,
            keep_local=settings.recordings_s3_keep_local,
            retry_seconds=settings.recordings_s3_retry_seconds,
        )
        if bucket is not None
        else None
    )
    return LessonRecordings(
        RoomRepository(store),
        SessionRepository(store),
        records,
        settings.recorded_kinds(),
        catalogue=catalogue,
        uploads=uploads,
    )


def retention_sweep(
    settings: Settings,
    directory: Path | None,
    records: RecordLog,
    catalogue: ReplayCatalogue | None = None,
) -> RetentionSweep | None:
    """The retention sweep of the recordings this process writes (and of the bucket they go
    to), where retention is set (for every room kind or for some)."""
    days = settings.recordings_retention_days
    by_kind = settings.retention_by_kind()
    if directory is None or (days is None and not by_kind):
        return None
    return RetentionSweep(
        directory,
        records,
        days,
        by_kind=by_kind,
        catalogue=catalogue,
        bucket=recording_store(settings),
    )


def worker_settings(settings: Settings, *, hls: bool = True) -> Any:
    """The SFU worker's settings from the process's: its ICE policy, where and how it records."""
    from media.hls_packager import HlsSettings
    from media.recorder import RecorderSettings
    from media.worker import WorkerSettings

    return WorkerSettings(
        ice=settings.ice_policy(),
        recordings_dir=settings.recordings_path(),
        recorder=RecorderSettings(
            keyframe_interval=settings.recording_keyframe_seconds,
            checkpoint_interval=settings.recording_checkpoint_seconds,
            node_id=settings.node_id,
        ),
        hls_dir=settings.hls_path() if hls else None,
        hls=HlsSettings(
            segment_seconds=settings.hls_segment_seconds,
            keyframe_interval=settings.hls_keyframe_seconds,
            window=settings.hls_window,
            playlist_type=settings.hls_playlist_type,
        ),
    )
