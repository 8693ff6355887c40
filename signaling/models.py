"""Domain records of the signaling plane: rooms, participants, lesson sessions.

These are the values the Store keeps (as JSON), so they are pydantic models.
"""

from __future__ import annotations

import time
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class Role(StrEnum):
    teacher = "teacher"
    classroom = "classroom"
    viewer = "viewer"
    observer = "observer"
    coordinator = "coordinator"
    admin = "admin"


# Roles that take part in a live room (coordinators and admins only manage).
ROOM_ROLES = frozenset({Role.teacher, Role.classroom, Role.viewer, Role.observer})

ID_PATTERN = r"^\w[\w.:\-]{0,127}$"


class RoomKind(StrEnum):
    dedicated = "dedicated"  # 专递课堂: interactive, 1–4 remote classrooms
    master = "master"  # 名师课堂: one-to-many, a few on stage
    broadcast = "broadcast"  # 名校网络课堂: large audience


class RoomState(StrEnum):
    open = "open"
    closed = "closed"


class Room(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(default="", max_length=200)
    kind: RoomKind = RoomKind.dedicated
    school_id: str | None = Field(default=None, max_length=128)
    max_participants: int = Field(default=64, ge=1, le=10_000)
    state: RoomState = RoomState.open
    created_at: float = Field(default_factory=time.time)
    closed_at: float | None = None


class Participant(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    room_id: str
    subject: str
    role: Role
    name: str = ""
    classroom_id: str | None = None
    school_id: str | None = None
    node_id: str = Field(description="the signaling process that holds the connection")
    joined_at: float = Field(default_factory=time.time)
    hand_raised: bool = False
    on_stage: bool = False
    muted: bool = False


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
