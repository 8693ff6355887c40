"""A timetabled lesson for tests: 三年级英语 at 实验小学 for the class jd-1-g3, its room open
from 10 minutes before the start to 10 minutes after the end (the lesson clock's window)."""

from __future__ import annotations

from typing import Any

from lessons.models import LessonSession, RemoteClass


def english_lesson(
    sid: str, starts_at: float, *, minutes: float = 40, **fields: Any
) -> LessonSession:
    ends_at = starts_at + minutes * 60
    data: dict[str, Any] = {
        "id": sid,
        "room_id": sid,
        "teacher": "张老师",
        "subject": "英语",
        "master_school": "xian-shiyan",
        "date": "2026-11-02",
        "starts_at": starts_at,
        "ends_at": ends_at,
        "opens_at": starts_at - 600,
        "closes_at": ends_at + 600,
        "remotes": [RemoteClass(class_id="jd-1-g3", school="jd-1")],
    }
    return LessonSession.model_validate(data | fields)
