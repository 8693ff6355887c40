"""What the lessons HTTP handlers share: the lesson service, the device registry, the records."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from lessons.devices import DeviceRegistry
from lessons.records import RecordLog
from lessons.service import LessonService


@dataclass(frozen=True)
class LessonsContext:
    lessons: LessonService
    devices: DeviceRegistry
    records: RecordLog


LESSONS_KEY: web.AppKey[LessonsContext] = web.AppKey("lessons", LessonsContext)


def lessons_context(request: web.Request) -> LessonsContext:
    return request.app[LESSONS_KEY]
