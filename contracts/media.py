"""The media plane's contract: what signaling asks of the SFU, and what the SFU tells a
participant.

Signaling owns the WebSocket and the room state; the media plane owns peer connections.
In the embedded server both live in one process and signaling calls the media plane
directly; a distributed deployment puts a Redis-backed implementation of this same
interface in front of remote SFU nodes (``signaling.remote_media``, speaking ``contracts.node_messages``).

The media plane speaks in its own events (tracks changed, an offer, a quality report), not
in WebSocket messages: signaling turns them into protocol messages, and participants that
are not WebSocket clients (an ingest source, a recorder) can use the same plane.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.errors import ErrorCode, SankeError
from contracts.layers import LayerPin, ReceivedLayer
from contracts.rooms import Participant

MAX_SDP_BYTES = 32 * 1024
ParticipantId = Annotated[str, Field(min_length=1, max_length=64)]
Bps = Annotated[float, Field(ge=0, le=1e9, allow_inf_nan=False)]
Pixels = Annotated[int, Field(ge=0, le=8192)]
Source = Literal["camera", "screen"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- what the media plane is told -------------------------------------------------


class IceCandidate(_Model):
    """A trickled ICE candidate (RFC 8839 ``candidate:`` attribute value); empty ends gathering."""

    candidate: str = Field(max_length=1024)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=255)


class FrameSize(_Model):
    width: Pixels
    height: Pixels


class OutboundVideo(_Model):
    """One video m-line as the publisher's browser sends it (its ``outbound-rtp`` stats)."""

    mid: str = Field(min_length=1, max_length=16)
    width: Pixels | None = None
    height: Pixels | None = None
    fps: float | None = Field(default=None, ge=0, le=240, allow_inf_nan=False)
    bitrate_bps: Bps | None = None
    # why the encoder sends less than it captures (WebRTC's qualityLimitationReason)
    quality_limitation: Literal["none", "cpu", "bandwidth", "other"] = "none"


class StatsReport(_Model):
    """A publisher's own view of its sending; the SFU cannot see the browser's estimate or
    what the camera captures, only what arrives."""

    # the send-side bandwidth estimate (the nominated candidate pair's availableOutgoingBitrate)
    available_outgoing_bitrate: Bps | None = None
    outbound: list[OutboundVideo] = Field(default_factory=list, max_length=8)
    capture: FrameSize | None = None  # the camera track's getSettings()


class PullRequest(_Model):
    """Pull an RTSP camera (or a 录播 host's RTSP output) as the participant's camera, or
    expect an RTMP push for it: its H.264 passed through, never decoded. An RTSP pull has
    ``url`` (credentials in it: basic or digest); an RTMP push has ``push_key_sha256``, the
    SHA-256 of its stream key (the key itself never reaches the SFU but from the encoder)."""

    # rtsp(s):// a camera; srt:// an SRT stream remuxed by ffmpeg (media.srt_origin)
    url: str | None = Field(default=None, pattern=r"^(rtsps?|srt)://", max_length=2048)
    push_key_sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    # the camera's sub-stream: the ``low`` layer (switched to at its own keyframes)
    low_url: str | None = Field(default=None, pattern=r"^rtsps?://", max_length=2048)
    transport: Literal["tcp", "udp"] = "tcp"

    @model_validator(mode="after")
    def _one_kind(self) -> PullRequest:
        if (self.url is None) == (self.push_key_sha256 is None):
            raise ValueError("a pull has a url (RTSP) or a push_key_sha256 (RTMP), not both")
        if self.push_key_sha256 is not None and self.low_url is not None:
            raise ValueError("an RTMP push has no sub-stream")
        return self


PullState = Literal["connecting", "connected", "reconnecting", "refused", "unauthorized", "stopped"]


class PullStatus(_Model):
    """One pulled stream (the camera's main stream: ``high``; its sub-stream: ``low``)."""

    layer: Literal["high", "low"]
    state: PullState
    # why it is not connected: what the camera's operator has to change
    message: str | None = Field(default=None, max_length=500)
    codec: str | None = None
    width: Pixels | None = None
    height: Pixels | None = None
    fps: float | None = Field(default=None, ge=0, le=240, allow_inf_nan=False)
    bitrate_bps: Bps | None = None
    frames: int = Field(default=0, ge=0)
    dropped: int = Field(default=0, ge=0)
    reconnects: int = Field(default=0, ge=0)
    connected_since: float | None = None  # unix time


# --- what the media plane tells a participant -------------------------------------


class TrackInfo(_Model):
    """Which participant a received media stream belongs to (``stream_id`` is the SDP msid)."""

    stream_id: str
    track_id: str
    participant_id: ParticipantId
    kind: Literal["audio", "video"]
    source: Literal["camera", "microphone", "screen"] = "camera"


class TracksChanged(_Model):
    """The streams the participant receives changed; an ``OfferToParticipant`` follows."""

    event: Literal["tracks"] = "tracks"
    tracks: list[TrackInfo]


class OfferToParticipant(_Model):
    """The SFU renegotiates: the participant answers this offer."""

    event: Literal["offer"] = "offer"
    sdp: str


class QualityReport(_Model):
    """Connection quality of one participant, 1 (bad) – 5 (excellent), per direction.

    ``up``: what the SFU receives from it; ``down``: what it receives."""

    participant_id: ParticipantId
    score: int = Field(ge=1, le=5)
    up: int | None = Field(default=None, ge=1, le=5)
    down: int | None = Field(default=None, ge=1, le=5)
    # what the SFU receives of its camera's high layer (from the bitstream), and what its
    # page says the camera captures: a 180p picture of a 720p camera scores low
    resolution: FrameSize | None = None
    capture: FrameSize | None = None
    # the same high layer's bitrate and frame rate as the SFU receives them (an ingest
    # source's status shows them; no page reports them for an encoder)
    bitrate_bps: Bps | None = None
    fps: float | None = Field(default=None, ge=0, le=240, allow_inf_nan=False)
    # its camera's H264 has B-frames, which WebRTC receivers play out of order (stutter): the
    # publisher's encoder must not send them (x264 bframes=0)
    b_frames: bool = False
    # the lowest video layer the SFU forwards to it ("audio": its video is held back)
    layer: ReceivedLayer | None = None


class QualityMeasured(QualityReport):
    """The SFU's measurement, for the participant itself and the teacher."""

    event: Literal["quality"] = "quality"


MediaEvent = Annotated[
    TracksChanged | OfferToParticipant | QualityMeasured, Field(discriminator="event")
]

# How the media plane reaches one participant (its WebSocket through signaling, or a
# component's own handler).
SendToParticipant = Callable[[MediaEvent], Awaitable[None]]


class MediaPlane(Protocol):
    async def join(self, participant: Participant, send: SendToParticipant) -> None:
        """A participant joined its room; the media plane may start serving it."""

    async def leave(self, room_id: str, participant_id: str) -> None:
        """Free everything the participant held (peer connection, producers, consumers)."""

    async def offer(self, room_id: str, participant_id: str, sdp: str) -> str:
        """Apply the participant's offer; return the SDP answer."""

    async def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        """The participant's answer to a server offer."""

    async def candidate(
        self, room_id: str, participant_id: str, candidate: IceCandidate
    ) -> None: ...

    async def set_stage(self, room_id: str, participant_id: str, on_stage: bool) -> None:
        """A classroom goes on or off stage: its audio reaches other classrooms only on stage."""

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        """Stop (or resume) forwarding the participant's audio at the SFU."""

    async def set_layer(self, room_id: str, participant_id: str, layer: LayerPin) -> None: ...

    async def set_source(self, room_id: str, participant_id: str, mid: str, source: Source) -> None:
        """What the publisher sends on the m-line ``mid``: its camera or its screen share."""

    async def report_stats(self, room_id: str, participant_id: str, report: StatsReport) -> None:
        """The publisher's own view of its sending (its estimate, what it captures and sends),
        kept for the quality score and the metrics; the latest report replaces the last."""

    async def set_recording(self, room_id: str, on: bool) -> None:
        """Stop (finish the part being written) or restart (a new part) the room's recording;
        raises ``recording_unavailable`` where nothing records."""

    async def pull(self, room_id: str, participant_id: str, request: PullRequest) -> None:
        """The participant's camera is an RTSP source the SFU pulls (it replaces an earlier
        pull; the participant's leave stops it)."""

    async def pull_status(self, room_id: str, participant_id: str) -> list[PullStatus]:
        """The participant's pulled streams, as the SFU receives them (none: it pulls none)."""

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

    async def candidate(self, room_id: str, participant_id: str, candidate: IceCandidate) -> None:
        raise SankeError(ErrorCode.media_unavailable, "no media plane is attached to this server")

    async def set_stage(self, room_id: str, participant_id: str, on_stage: bool) -> None:
        return None

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        return None

    async def set_layer(self, room_id: str, participant_id: str, layer: LayerPin) -> None:
        return None

    async def set_source(self, room_id: str, participant_id: str, mid: str, source: Source) -> None:
        return None

    async def report_stats(self, room_id: str, participant_id: str, report: StatsReport) -> None:
        return None

    async def set_recording(self, room_id: str, on: bool) -> None:
        raise SankeError(
            ErrorCode.recording_unavailable, "no media plane records on this server", 409
        )

    async def pull(self, room_id: str, participant_id: str, request: PullRequest) -> None:
        raise SankeError(ErrorCode.media_unavailable, "no media plane is attached to this server")

    async def pull_status(self, room_id: str, participant_id: str) -> list[PullStatus]:
        return []

    async def close_room(self, room_id: str) -> None:
        return None

    async def close(self) -> None:
        return None
