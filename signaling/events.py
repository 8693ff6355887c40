"""Room events: what one signaling process tells every other about a room.

Every event goes through the Store's pub/sub (also in one process), so a participant
sees the same order of events whichever process holds its connection.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from signaling.models import Role
from signaling.protocol import Error, ServerMessage


class RoomEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: str
    action: Literal["deliver", "kick", "close"] = "deliver"
    message: ServerMessage | None = None
    # The role of the participant the event is about: decides who may see it.
    about_role: Role | None = None
    # Deliver only to this participant (kick, targeted replies) …
    target: str | None = None
    # … or to everyone but this one (the originator already knows).
    exclude: str | None = None


def room_channel(room_id: str) -> str:
    return f"room:{room_id}"


def can_see(viewer: Role, about: Role | None) -> bool:
    """Whether a participant with role ``viewer`` is told about one with role ``about``.

    Observers (巡课) are invisible to everyone. Viewers of a broadcast are shown to
    the teacher only: hundreds of audience joins are noise for classrooms.
    """
    if about is None:
        return True
    if about is Role.observer:
        return False
    if about is Role.viewer:
        return viewer is Role.teacher
    return True


def kick_event(room_id: str, participant_id: str, error: Error) -> RoomEvent:
    return RoomEvent(room_id=room_id, action="kick", target=participant_id, message=error)
