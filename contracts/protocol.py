"""Signaling protocol v1: every WebSocket message, client and server side.

The media plane's own types (a publisher's stats report, track descriptions, frame sizes)
are defined in ``contracts.media`` and composed into these messages unchanged.

Each message is a JSON object with a ``type`` field; the unions below are discriminated
on it. ``docs/protocol.json`` is generated from these models (``sanke protocol export``)
and a test checks it is current.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from contracts.errors import ErrorCode
from contracts.layers import LayerPin
from contracts.media import (
    MAX_SDP_BYTES,
    ParticipantId,
    QualityReport,
    Source,
    StatsReport,
    TrackInfo,
)
from contracts.rooms import Role

PROTOCOL_VERSION = 1
LeaveReason = Literal[
    "left", "disconnected", "timeout", "kicked", "replaced", "room_closed", "expired", "revoked"
]
RequestId = Annotated[str | None, Field(default=None, max_length=64)]


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _ClientMessage(_Message):
    # Echoed in the reply or error, so a client can match them to its request.
    rid: RequestId = None


# --- client → server ---------------------------------------------------------


class Join(_ClientMessage):
    type: Literal["join"]
    token: str = Field(min_length=1, max_length=4096)
    name: str | None = Field(default=None, max_length=100)


class Leave(_ClientMessage):
    type: Literal["leave"]


class SessionDescription(_Message):
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)


class Offer(_ClientMessage):
    type: Literal["offer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)


class Answer(_ClientMessage):
    type: Literal["answer"]
    sdp: str = Field(min_length=1, max_length=MAX_SDP_BYTES)


class Candidate(_ClientMessage):
    """A trickled ICE candidate (RFC 8839 ``candidate:`` attribute value); empty ends gathering."""

    type: Literal["candidate"]
    candidate: str = Field(max_length=1024)
    sdp_mid: str | None = Field(default=None, max_length=64)
    sdp_mline_index: int | None = Field(default=None, ge=0, le=255)


class RaiseHand(_ClientMessage):
    type: Literal["raise_hand"]


class LowerHand(_ClientMessage):
    type: Literal["lower_hand"]
    # A teacher may lower someone else's hand; a classroom only its own.
    participant_id: ParticipantId | None = None


class SetStage(_ClientMessage):
    type: Literal["set_stage"]
    participant_id: ParticipantId
    on_stage: bool


class Mute(_ClientMessage):
    """Teacher mutes (or unmutes) one classroom, or every classroom when no id is given."""

    type: Literal["mute"]
    participant_id: ParticipantId | None = None
    muted: bool = True


class Kick(_ClientMessage):
    type: Literal["kick"]
    participant_id: ParticipantId
    reason: str = Field(default="", max_length=200)


class SetLayer(_ClientMessage):
    """Pin the video layer this participant receives (``auto`` lets the SFU choose)."""

    type: Literal["set_layer"]
    layer: LayerPin


class SetSource(_ClientMessage):
    """What the publisher sends on one of its m-lines (by SDP mid): its camera (the default;
    video m-lines in order are the high and low layers) or its screen share. Send it before
    the offer that adds the m-line; the SFU also relabels an m-line it already receives."""

    type: Literal["set_source"]
    mid: str = Field(min_length=1, max_length=32)
    source: Source


class SetRecording(_ClientMessage):
    """The teacher stops (or restarts) the lesson's recording: stopping finishes the part
    being written, starting opens a new part. Only in a room whose kind is recorded."""

    type: Literal["set_recording"]
    on: bool


class EndLesson(_ClientMessage):
    """The teacher ends the lesson: the room closes for everyone and the lesson is recorded."""

    type: Literal["end_lesson"]


class Ping(_ClientMessage):
    type: Literal["ping"]
    ts: float | None = None


class Stats(_ClientMessage, StatsReport):
    """Sent by a publishing page every 2 s; at most one a second is accepted."""

    type: Literal["stats"]

    def report(self) -> StatsReport:
        return StatsReport.model_validate(self.model_dump(exclude={"type", "rid"}))


ClientMessage = Annotated[
    Join
    | Leave
    | Offer
    | Answer
    | Candidate
    | RaiseHand
    | LowerHand
    | SetStage
    | Mute
    | Kick
    | SetLayer
    | SetSource
    | SetRecording
    | EndLesson
    | Ping
    | Stats,
    Field(discriminator="type"),
]
CLIENT_MESSAGE_TYPES = frozenset(
    {
        "join",
        "leave",
        "offer",
        "answer",
        "candidate",
        "raise_hand",
        "lower_hand",
        "set_stage",
        "mute",
        "kick",
        "set_layer",
        "set_source",
        "set_recording",
        "end_lesson",
        "ping",
        "stats",
    }
)
client_message_adapter: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)


# --- server → client ---------------------------------------------------------


class ParticipantInfo(_Message):
    id: ParticipantId
    role: Role
    name: str = ""
    classroom_id: str | None = None
    school_id: str | None = None
    hand_raised: bool = False
    on_stage: bool = False
    muted: bool = False
    # classroom hardware publishing as the teacher (a WHIP encoder): the lesson's picture,
    # kept in the classrooms' main area when a teacher console joins beside it
    publish_only: bool = False


class IceServer(_Message):
    urls: list[str]
    username: str | None = None
    credential: str | None = None


class Joined(_Message):
    type: Literal["joined"] = "joined"
    rid: RequestId = None
    protocol: int = PROTOCOL_VERSION
    participant_id: ParticipantId
    room_id: str
    role: Role
    participants: list[ParticipantInfo]
    ice_servers: list[IceServer] = Field(default_factory=list)


class ParticipantJoined(_Message):
    type: Literal["participant_joined"] = "participant_joined"
    participant: ParticipantInfo


class ParticipantLeft(_Message):
    type: Literal["participant_left"] = "participant_left"
    participant_id: ParticipantId
    reason: LeaveReason = "left"


class HandRaised(_Message):
    type: Literal["hand_raised"] = "hand_raised"
    participant_id: ParticipantId
    raised: bool


class StageChanged(_Message):
    type: Literal["stage_changed"] = "stage_changed"
    participant_id: ParticipantId
    on_stage: bool


class Muted(_Message):
    type: Literal["muted"] = "muted"
    participant_id: ParticipantId
    muted: bool


class ServerOffer(_Message):
    """The SFU renegotiates (e.g. a new track to receive); the client replies with ``answer``."""

    type: Literal["offer"] = "offer"
    sdp: str


class ServerAnswer(_Message):
    type: Literal["answer"] = "answer"
    rid: RequestId = None
    sdp: str


class ServerCandidate(_Message):
    type: Literal["candidate"] = "candidate"
    candidate: str
    sdp_mid: str | None = None
    sdp_mline_index: int | None = None


class Tracks(_Message):
    type: Literal["tracks"] = "tracks"
    tracks: list[TrackInfo]


class Left(_Message):
    """Acknowledges the participant's own ``leave``."""

    type: Literal["left"] = "left"
    rid: RequestId = None


class Error(_Message):
    type: Literal["error"] = "error"
    code: ErrorCode
    message: str
    rid: RequestId = None


class Pong(_Message):
    type: Literal["pong"] = "pong"
    rid: RequestId = None
    ts: float | None = None
    server_ts: float


class Rejoin(_Message):
    """The room moved (its media node failed or is draining): join again with the same token."""

    type: Literal["rejoin"] = "rejoin"
    reason: str


class Quality(_Message, QualityReport):
    """Connection quality of one participant, 1 (bad) – 5 (excellent), per direction.

    ``up``: what the SFU receives from it; ``down``: what it receives. The teacher gets
    every classroom's; each classroom gets its own and the teacher's.
    """

    type: Literal["quality"] = "quality"


class LessonChanged(_Message):
    """A coordinator cancelled or moved the lesson this room is for."""

    type: Literal["lesson_changed"] = "lesson_changed"
    session_id: str
    state: str
    message: str
    moved_to: str | None = None
    new_starts_at: float | None = None


class Recording(_Message):
    """Whether the lesson is recorded: sent after ``joined`` and to everyone when it changes,
    so the pages show a recording indicator (people in the room should know).

    ``enabled``: the room's kind is recorded at all (else ``on`` is false and cannot change)."""

    type: Literal["recording"] = "recording"
    on: bool
    enabled: bool


class SourceState(_Message):
    """The hardware source teaching the room (an RTSP camera, an RTMP encoder: a
    ``publish_only`` teacher) lost its picture and Sanke reconnects it (``reconnecting``), or
    its picture is back (``connected``): classrooms show "主讲画面重连中" instead of a frozen
    last frame. Sent to everyone when it changes, and again every few seconds while the
    outage lasts, so a classroom that joins meanwhile learns it."""

    type: Literal["source_state"] = "source_state"
    participant_id: str
    state: Literal["connected", "reconnecting"]
    since: float  # unix time the state began


class RoomClosed(_Message):
    type: Literal["room_closed"] = "room_closed"
    room_id: str


ServerMessage = Annotated[
    Joined
    | ParticipantJoined
    | ParticipantLeft
    | Left
    | HandRaised
    | StageChanged
    | Muted
    | ServerOffer
    | ServerAnswer
    | ServerCandidate
    | Tracks
    | Error
    | Pong
    | Rejoin
    | LessonChanged
    | Quality
    | Recording
    | SourceState
    | RoomClosed,
    Field(discriminator="type"),
]
server_message_adapter: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)
