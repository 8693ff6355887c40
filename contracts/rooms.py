"""Rooms and participants: who may be in a live room and as what.

Signaling keeps them (RoomRepository), the media plane routes by them, lessons open and
close rooms; so they are shared contracts, pydantic models stored as JSON.
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
    # The per-lesson switch (signaling.recording_control): the teacher or a coordinator stops
    # and restarts the recording. Only a room whose kind the policy records is recorded at all.
    recording: bool = True


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
    # An ingest source (a WHIP encoder, a camera): it only sends, so the SFU forwards it
    # nothing (it could not answer a renegotiation) and tells it only its own quality.
    publish_only: bool = False
