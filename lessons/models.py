"""Lesson sessions: one occurrence of a timetabled lesson, its room, window and outcome."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from contracts.rooms import ID_PATTERN


class SessionState(StrEnum):
    scheduled = "scheduled"
    live = "live"
    ended = "ended"
    missed = "missed"
    cancelled = "cancelled"


class RemoteClass(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_id: str
    school: str


class LessonSession(BaseModel):
    """One occurrence of a timetabled lesson: a room with a join window and an outcome.

    Times are unix seconds; the calendar date and clock times are those of Asia/Shanghai.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    room_id: str
    offering_id: str | None = None
    district_id: str | None = None
    timetable_version: int | None = None
    teacher: str = ""
    master_school: str = ""
    master_classroom: str = ""
    subject: str = ""
    grade: int | None = None
    date: str = Field(default="", description="YYYY-MM-DD, Asia/Shanghai")
    starts_at: float
    ends_at: float
    opens_at: float = 0.0
    closes_at: float = 0.0
    remotes: list[RemoteClass] = Field(default_factory=list)
    state: SessionState = SessionState.scheduled
    teacher_joined_at: float | None = None
    ended_at: float | None = None
    cancelled_reason: str | None = None
    moved_from: str | None = None
    moved_to: str | None = None
    recorded: bool = False
