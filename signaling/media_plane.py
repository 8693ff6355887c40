"""The seam between signaling and the media plane (the SFU).

Signaling owns the WebSocket and the room state; the media plane owns peer
connections. In the embedded server both live in one process and signaling calls
the media plane directly; a distributed deployment puts a Redis-backed
implementation of this same interface in front of remote SFU nodes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal, Protocol

from signaling.errors import ErrorCode, SankeError
from signaling.models import Participant
from signaling.protocol import Candidate, ServerMessage, StatsReport

# How the media plane reaches one participant's WebSocket (server offers, candidates,
# track info, quality reports).
SendToParticipant = Callable[[ServerMessage], Awaitable[None]]
Layer = Literal["auto", "high", "low", "audio"]
Source = Literal["camera", "screen"]


class MediaPlane(Protocol):
    async def join(self, participant: Participant, send: SendToParticipant) -> None:
        """A participant joined its room; the media plane may start serving it."""

    async def leave(self, room_id: str, participant_id: str) -> None:
        """Free everything the participant held (peer connection, producers, consumers)."""

    async def offer(self, room_id: str, participant_id: str, sdp: str) -> str:
        """Apply the participant's offer; return the SDP answer."""

    async def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        """The participant's answer to a server offer."""

    async def candidate(self, room_id: str, participant_id: str, candidate: Candidate) -> None: ...

    async def set_stage(self, room_id: str, participant_id: str, on_stage: bool) -> None:
        """A classroom goes on or off stage: its audio reaches other classrooms only on stage."""

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        """Stop (or resume) forwarding the participant's audio at the SFU."""

    async def set_layer(self, room_id: str, participant_id: str, layer: Layer) -> None: ...

    async def set_source(self, room_id: str, participant_id: str, mid: str, source: Source) -> None:
        """What the publisher sends on the m-line ``mid``: its camera or its screen share."""

    async def report_stats(self, room_id: str, participant_id: str, report: StatsReport) -> None:
        """The publisher's own view of its sending (its estimate, what it captures and sends),
        kept for the quality score and the metrics; the latest report replaces the last."""

    async def close_room(self, room_id: str) -> None: ...

    async def close(self) -> None: ...


class NullMediaPlane:
    """Signaling without media (tests of the signaling plane, signaling-only processes)."""

    async def join(self, participant: Participant, send: SendToParticipant) -> None:
        return None

    async def leave(self, room_id: str, participant_id: str) -> None:
        return None

    async def offer(self, room_id: str, participant_id: str, sdp: str) -> str:
        raise SankeError(ErrorCode.media_unavailable, "no media plane is attached to this server")

    async def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        raise SankeError(ErrorCode.media_unavailable, "no media plane is attached to this server")

    async def candidate(self, room_id: str, participant_id: str, candidate: Candidate) -> None:
        raise SankeError(ErrorCode.media_unavailable, "no media plane is attached to this server")

    async def set_stage(self, room_id: str, participant_id: str, on_stage: bool) -> None:
        return None

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        return None

    async def set_layer(self, room_id: str, participant_id: str, layer: Layer) -> None:
        return None

    async def set_source(self, room_id: str, participant_id: str, mid: str, source: Source) -> None:
        return None

    async def report_stats(self, room_id: str, participant_id: str, report: StatsReport) -> None:
        return None

    async def close_room(self, room_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
