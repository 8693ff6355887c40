"""The recording hooks a process with an SFU worker gives it: the lessons' policy and records."""

from __future__ import annotations

from contracts.store import Store
from lessons.recordings import LessonRecordings
from lessons.records import RecordLog
from lessons.repository import SessionRepository
from sanke.settings import Settings
from signaling.rooms import RoomRepository


def lesson_recordings(settings: Settings, store: Store, records: RecordLog) -> LessonRecordings:
    return LessonRecordings(
        RoomRepository(store), SessionRepository(store), records, settings.recorded_kinds()
    )
