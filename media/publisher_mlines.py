"""What a publisher's m-lines carry, read from its offers: the codec each producer receives
and whether the publisher still sends on it."""

from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.sdp import SessionDescription

from media import aiortc_seams as seams
from media.producer import Producer

VIDEO_PREFERENCE = ["video/H264", "video/VP8"]


def producer_payload_types(pc: RTCPeerConnection, producers: dict[str, Producer]) -> dict[str, int]:
    """The payload type each producer's m-line negotiated first (what the client sends)."""
    out = {}
    for t in pc.getTransceivers():
        codecs = seams.negotiated_codecs(t)
        if t.mid in producers and codecs and codecs[0].payloadType is not None:
            out[str(t.mid)] = int(codecs[0].payloadType)
    return out


def keep_producer_codecs(pc: RTCPeerConnection, sending: dict[str, int]) -> None:
    """A client that offers again keeps sending what the producers already receive."""
    for t in pc.getTransceivers():
        pt = sending.get(str(t.mid))
        if pt is not None and not seams.keep_first_payload_type(t, pt) and t.kind == "video":
            seams.prefer_codecs(t, VIDEO_PREFERENCE)


def follow_directions(sdp: str, producers: dict[str, Producer]) -> None:
    """A producer whose m-line the client made inactive (e.g. a stopped screen share) is no
    longer forwarded; it is again when the client sends on it again."""
    sending = {
        m.rtp.muxId: m.port != 0 and m.direction in ("sendonly", "sendrecv")
        for m in SessionDescription.parse(sdp).media
    }
    for mid, p in producers.items():
        if mid in sending and sending[mid] != p.active:
            p.active = sending[mid]
            if p.active and p.kind == "video":
                p.request_keyframe()
