"""Room events: what one process tells every other about a room.

Every event goes through the Store's pub/sub (also in one process), so a participant sees
the same order of events whichever process holds its connection. Signaling processes send
protocol messages; an SFU node sends media events for one participant, which the process
holding its WebSocket turns into protocol messages.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from contracts.media import MediaEvent
from contracts.protocol import ServerMessage
from contracts.rooms import Role


class RoomEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    room_id: str
    action: Literal["deliver", "kick", "close"] = "deliver"
    message: ServerMessage | None = None
    # From the media plane, for ``target`` only.
    media: MediaEvent | None = None
    # The role of the participant the event is about: decides who may see it.
    about_role: Role | None = None
    # Deliver only to this participant (kick, targeted replies) …
    target: str | None = None
    # … or to everyone but this one (the originator already knows).
    exclude: str | None = None


def room_channel(room_id: str) -> str:
    return f"room:{room_id}"
