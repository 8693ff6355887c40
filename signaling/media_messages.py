"""The media plane's events as the WebSocket protocol's messages."""

from __future__ import annotations

from contracts.media import (
    IceCandidate,
    MediaEvent,
    OfferToParticipant,
    QualityMeasured,
    TracksChanged,
)
from contracts.protocol import Candidate, Quality, ServerMessage, ServerOffer, Tracks


def protocol_message(event: MediaEvent) -> ServerMessage:
    match event:
        case TracksChanged():
            return Tracks(tracks=event.tracks)
        case OfferToParticipant():
            return ServerOffer(sdp=event.sdp)
        case QualityMeasured():
            return Quality.model_validate(event.model_dump(exclude={"event"}))


def ice_candidate(message: Candidate) -> IceCandidate:
    return IceCandidate(
        candidate=message.candidate,
        sdp_mid=message.sdp_mid,
        sdp_mline_index=message.sdp_mline_index,
    )
