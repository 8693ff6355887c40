"""Per-lesson recording control: the teacher (``set_recording`` over the WebSocket) or a
coordinator (``PUT /api/v1/rooms/{id}/recording``) stops and restarts a lesson's recording.

The rules live here:

- **who**: the room's teacher; a coordinator or an admin (the HTTP route authorizes them);
  no classroom, viewer or observer;
- **when**: the room exists and is open, and its kind is one the policy records
  (``SANKE_RECORD_KINDS``) on a server that records at all; otherwise
  ``recording_unavailable`` (409) and nothing changes. A media node without a recordings
  directory refuses the same way.

The switch is the room's state (``Room.recording``), so every participant, a re-joining one
and an SFU node that takes the room over after a failover see it; the media plane finishes
the part being written (stop) or opens a new one (start), and the room is told
(``recording {on, enabled}``). Each change is an audit entry (``recording.started`` /
``recording.stopped``) with who did it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from contracts.errors import ErrorCode, SankeError
from contracts.events import RoomEvent
from contracts.media import MediaPlane
from contracts.protocol import Recording
from contracts.rooms import Role, Room, RoomKind, RoomState
from signaling.audit import AuditSink, record_audit
from signaling.hub import RoomHub
from signaling.rooms import RoomRepository

log = logging.getLogger(__name__)

# Who may turn a lesson's recording off and on (a teacher only in her own room: her token's).
MAY_SWITCH = frozenset({Role.teacher, Role.coordinator, Role.admin})


@dataclass(frozen=True)
class Switcher:
    """Who turns the switch: a token's subject, role and school (for the audit entry)."""

    subject: str
    role: Role
    school_id: str | None = None


class RecordingControl:
    def __init__(
        self,
        repo: RoomRepository,
        hub: RoomHub,
        media: MediaPlane,
        kinds: Iterable[RoomKind] = (),
        audit: AuditSink | None = None,
    ) -> None:
        self.repo = repo
        self.hub = hub
        self.media = media
        # The room kinds recorded here; empty: this server records nothing.
        self.kinds = frozenset(kinds)
        self.audit = audit

    def enabled(self, room: Room) -> bool:
        return room.kind in self.kinds

    def status(self, room: Room) -> Recording:
        enabled = self.enabled(room)
        return Recording(on=enabled and room.recording, enabled=enabled)

    async def status_of(self, room_id: str) -> Recording | None:
        room = await self.repo.get(room_id)
        return self.status(room) if room is not None else None

    async def set(self, room_id: str, on: bool, who: Switcher) -> tuple[Recording, bool]:
        """Turn the room's recording on or off; the room's status and whether it changed.
        Raises SankeError (and changes nothing) where the rules say no."""
        if who.role not in MAY_SWITCH:
            raise SankeError(
                ErrorCode.forbidden,
                f"only the teacher or a coordinator starts or stops the recording, "
                f"you are {who.role.value}",
                403,
            )
        room = await self.repo.get(room_id)
        if room is None:
            raise SankeError(ErrorCode.room_not_found, f"room {room_id} does not exist", 404)
        if room.state is RoomState.closed:
            raise SankeError(ErrorCode.room_closed, f"room {room.id} is closed", 410)
        if not self.enabled(room):
            why = (
                "this server records no lessons"
                if not self.kinds
                else f"{room.kind.value} lessons are not recorded here"
            )
            raise SankeError(ErrorCode.recording_unavailable, why, 409)
        if room.recording == on:
            return self.status(room), False
        # The room's state first: a media node that starts the room's media meanwhile (or
        # takes it over) reads it; put back if the media plane refuses.
        room.recording = on
        await self.repo.put(room)
        try:
            await self.media.set_recording(room.id, on)
        except BaseException:
            room.recording = not on
            await self.repo.put(room)
            raise
        status = self.status(room)
        await self.hub.publish(RoomEvent(room_id=room.id, message=status))
        await record_audit(
            self.audit,
            who.subject,
            who.role,
            who.school_id,
            "recording.started" if on else "recording.stopped",
            room.id,
            school=room.school_id,
            kind=room.kind.value,
        )
        log.info("recording of %s turned %s by %s", room.id, "on" if on else "off", who.subject)
        return status, True
