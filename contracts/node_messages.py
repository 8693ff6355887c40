"""What a signaling process and an SFU node say to each other through the store.

A signaling process publishes a request on the hosting node's channel (``node_channel``)
and waits for the reply on its own (``reply_channel``). Each operation is its own model:
a join carries the participant, a stage change its ``on_stage``, and nothing else.

Rolling upgrades: nodes accept the single ``flag`` field older signaling processes sent
for ``set_stage``/``set_muted``, so upgrade the SFU nodes first, then signaling.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter

from contracts.errors import ErrorCode
from contracts.layers import LayerPin
from contracts.media import IceCandidate, PullRequest, PullStatus, Source, StatsReport
from contracts.rooms import Participant


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    reply_to: str
    room_id: str
    participant_id: str | None = None


class JoinRequest(_Request):
    op: Literal["join"] = "join"
    participant: Participant


class LeaveRequest(_Request):
    op: Literal["leave"] = "leave"


class OfferRequest(_Request):
    op: Literal["offer"] = "offer"
    sdp: str


class AnswerRequest(_Request):
    op: Literal["answer"] = "answer"
    sdp: str


class CandidateRequest(_Request):
    op: Literal["candidate"] = "candidate"
    candidate: IceCandidate


class SetStageRequest(_Request):
    op: Literal["set_stage"] = "set_stage"
    on_stage: bool = Field(validation_alias=AliasChoices("on_stage", "flag"))


class SetMutedRequest(_Request):
    op: Literal["set_muted"] = "set_muted"
    muted: bool = Field(validation_alias=AliasChoices("muted", "flag"))


class SetLayerRequest(_Request):
    op: Literal["set_layer"] = "set_layer"
    layer: LayerPin


class SetSourceRequest(_Request):
    op: Literal["set_source"] = "set_source"
    mid: str
    source: Source


class ReportStatsRequest(_Request):
    op: Literal["report_stats"] = "report_stats"
    stats: StatsReport


class SetRecordingRequest(_Request):
    op: Literal["set_recording"] = "set_recording"
    on: bool


class PullCameraRequest(_Request):
    op: Literal["pull"] = "pull"
    pull: PullRequest


class PullStatusRequest(_Request):
    op: Literal["pull_status"] = "pull_status"


class CloseRoomRequest(_Request):
    op: Literal["close_room"] = "close_room"


MediaRequest = Annotated[
    JoinRequest
    | LeaveRequest
    | OfferRequest
    | AnswerRequest
    | CandidateRequest
    | SetStageRequest
    | SetMutedRequest
    | SetLayerRequest
    | SetSourceRequest
    | ReportStatsRequest
    | SetRecordingRequest
    | PullCameraRequest
    | PullStatusRequest
    | CloseRoomRequest,
    Field(discriminator="op"),
]
media_request_adapter: TypeAdapter[MediaRequest] = TypeAdapter(MediaRequest)


class MediaReply(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    ok: bool
    sdp: str | None = None
    pulls: list[PullStatus] | None = Field(default=None, max_length=2)  # a pull_status reply
    code: ErrorCode | None = None
    message: str | None = None


def reply_channel(signaling_node: str) -> str:
    return f"rpc:{signaling_node}"
