"""Recording a lesson: what the media plane asks before it records a room, and what it says
when a recording is finished.

The SFU records (media/recorder.py) but does not know lessons, room kinds or the teaching
records; whoever wires the processes together (sanke) gives the worker ``RecordingHooks``
that answer from the room's kind and put each finished file's hash into the record chain.
"""

from __future__ import annotations

from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

Sha256Hex = str
# Which of the teacher's tracks a part holds: the camera (with the microphone) or the screen
# share (video only, its own file, parts of its own).
RecordedTrack = Literal["camera", "screen"]


class RecordingFinished(BaseModel):
    """One finished part of a lesson's recording: a seekable MP4 on the node, H264 + AAC (the
    camera and microphone) or H264 alone (the screen share, ``track="screen"``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["recording"] = "recording"
    room_id: str = Field(max_length=128)
    participant_id: str = Field(max_length=64, description="whose camera and microphone")
    part: int = Field(
        ge=1,
        description="1, then 2… when the teacher published again (a screen share: each share)",
    )
    track: RecordedTrack = "camera"
    file: str = Field(max_length=512, description="path relative to the recordings directory")
    sha256: Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    started_at: float = Field(description="wall clock of its first frame")
    ended_at: float
    duration_seconds: float = Field(ge=0)
    width: int | None = Field(default=None, ge=0, le=8192, description="of its first keyframe")
    height: int | None = Field(default=None, ge=0, le=8192)
    video_frames: int = Field(default=0, ge=0)
    audio_frames: int = Field(default=0, ge=0)
    dropped_frames: int = Field(
        default=0, ge=0, description="dropped because the disk did not keep up"
    )
    faststart: bool = Field(
        default=True, description="remuxed with its index first; False: left fragmented"
    )
    recovered: bool = Field(
        default=False,
        description="finished after a crash, from what its working file held (times: the "
        "second its name gives, its file's last change)",
    )


class RecordingCheckpoint(BaseModel):
    """While a part is written: the SHA-256 of its working file's first ``bytes`` bytes (the
    fragmented file only grows), so a part a crash cuts short is covered by the records too."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["recording-checkpoint"] = "recording-checkpoint"
    room_id: str = Field(max_length=128)
    participant_id: str = Field(max_length=64)
    part: int = Field(ge=1)
    track: RecordedTrack = "camera"
    file: str = Field(
        max_length=512, description="the part's final name (its working file: +.partial)"
    )
    bytes: int = Field(ge=0)
    sha256: Sha256Hex = Field(pattern=r"^[0-9a-f]{64}$")


class RecordingHooks(Protocol):
    async def should_record(self, room_id: str) -> bool:
        """Whether the policy keeps this room's lesson (asked once per room)."""

    async def checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        """A part being written reached another checkpoint: hash it into the records."""

    async def finished(self, recording: RecordingFinished) -> None:
        """A part is finished and in its final place: hash it into the records."""


class NoRecording:
    """A media plane that records nothing (tests, nodes without a recordings directory)."""

    async def should_record(self, room_id: str) -> bool:
        return False

    async def checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        return None

    async def finished(self, recording: RecordingFinished) -> None:
        return None
