"""The SFU's re-offers keep a browser's numbering (SDP level, no media flows).

``data/chromium-156-offer.sdp`` is what Chromium 156 offers for audio + two video senders with
no codec preferences: opus 111, VP8 96 first, H264 102 (42001f) / 108 (42e01f) further down,
AV1/VP9/H265 on other numbers (some in 35–63), extension ids audio-level 1, abs-send-time 2,
transport-cc 3, mid 4. aiortc's own createOffer would re-offer all of it with its defaults
(opus 96, VP8 97 first, mid 1 / audio-level 2 / abs-send-time 3).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiortc import sdp as aiortc_sdp

from contracts.media import OfferToParticipant
from contracts.rooms import Participant, Role
from media import aiortc_seams as seams
from media.router import Router
from media.transport import Transport

CHROME_OFFER = (Path(__file__).parent / "data" / "chromium-156-offer.sdp").read_text()


def parse(sdp: str) -> Any:
    return aiortc_sdp.SessionDescription.parse(sdp)


def payload_types(media: Any) -> list[int]:
    return [int(c.payloadType) for c in media.rtp.codecs]


def codec_identity(codec: Any) -> tuple[str, int, Any, Any, Any]:
    """What a payload type means (H264: its packetization mode and profile, not its level,
    which each side states for itself with level-asymmetry-allowed; RTX: its codec)."""
    p = codec.parameters
    profile = str(p.get("profile-level-id", "")).lower()
    if str(p.get("level-asymmetry-allowed")) == "1":
        profile = profile[:4]
    return (
        codec.mimeType.lower(),
        codec.clockRate,
        p.get("packetization-mode", 0) if codec.mimeType.lower() == "video/h264" else None,
        profile or None,
        p.get("apt"),
    )


class Offers:
    def __init__(self) -> None:
        self.offers: list[str] = []

    async def __call__(self, message: Any) -> None:
        if isinstance(message, OfferToParticipant):
            self.offers.append(message.sdp)


def transport(router: Router, pid: str, role: Role, sink: Offers) -> Transport:
    p = Participant(id=pid, room_id="room-1", subject=pid, role=role, node_id="test")
    t = Transport(p, sink, on_change=lambda t: router.reconcile(), on_failed=lambda t: None)
    router.transports[pid] = t
    return t


async def test_reoffer_keeps_the_browsers_numbers_and_order_and_new_lines_fit_in() -> None:
    router = Router("room-1")
    teacher_sink, class_sink = Offers(), Offers()
    teacher = transport(router, "teacher", Role.teacher, teacher_sink)
    classroom = transport(router, "class-1", Role.classroom, class_sink)
    try:
        await teacher.handle_offer(CHROME_OFFER)
        answer = parse(await classroom.handle_offer(CHROME_OFFER))
        offered = parse(CHROME_OFFER)
        client_codecs = {
            int(c.payloadType): codec_identity(c) for m in offered.media for c in m.rtp.codecs
        }
        client_ext = {e.uri: e.id for m in offered.media for e in m.rtp.headerExtensions}

        # The answer sends H264 first (the SFU prefers it), with the browser's numbers.
        for m in answer.media[1:]:
            assert payload_types(m)[0] == 102, payload_types(m)
        # The teacher's producers make the classroom receive audio + video: a server offer.
        for _ in range(200):
            if class_sink.offers:
                break
            await _tick()
        assert class_sink.offers, "no server offer to the classroom"
        reoffer = parse(class_sink.offers[-1])
        assert len(reoffer.media) == 5

        # 1. the browser's own m-lines: exactly what was answered (numbers, order: H264 first)
        for before, after in zip(answer.media, reoffer.media[:3], strict=True):
            assert payload_types(after) == payload_types(before)
            assert [(e.id, e.uri) for e in after.rtp.headerExtensions] == [
                (e.id, e.uri) for e in before.rtp.headerExtensions
            ]
        # 2. the new consumer m-lines reuse the browser's number for the same codec
        audio, video = reoffer.media[3], reoffer.media[4]
        assert payload_types(audio)[0] == 111  # opus, not aiortc's 96 (the browser's VP8)
        assert payload_types(video)[0] in (102, 108)  # H264 as the browser numbers it
        # 3. one BUNDLE: a payload type means one codec, an extension id one URI, everywhere,
        #    and the browser's meaning wherever the browser used the number
        seen_pt: dict[int, Any] = {}
        seen_ext: dict[int, str] = {}
        for m in reoffer.media:
            for c in m.rtp.codecs:
                pt = int(c.payloadType)
                key = codec_identity(c)
                assert seen_pt.setdefault(pt, key) == key, (pt, key, seen_pt[pt])
                if pt in client_codecs:
                    assert client_codecs[pt] == codec_identity(c), (pt, c, client_codecs[pt])
            for e in m.rtp.headerExtensions:
                assert seen_ext.setdefault(e.id, e.uri) == e.uri
                if e.uri in client_ext:
                    assert e.id == client_ext[e.uri], (e.uri, e.id)
        assert client_ext["urn:ietf:params:rtp-hdrext:sdes:mid"] == 4
        # abs-send-time, mid, and transport-cc as the browser numbers it
        assert client_ext[seams.TRANSPORT_CC_URI] == 3
        assert {e.id for e in video.rtp.headerExtensions} <= {2, 3, 4}

        # The sender of each new m-line will use what was offered (its send parameters).
        for c in classroom.consumers.values():
            assert c.transceiver is not None
            codecs = c.transceiver._codecs
            assert int(codecs[0].payloadType) in (111, 102, 108)
    finally:
        await teacher.close()
        await classroom.close()


async def test_a_browser_offering_again_keeps_sending_the_codec_it_sends() -> None:
    router = Router("room-1")
    sink = Offers()
    teacher = transport(router, "teacher", Role.teacher, sink)
    try:
        first = parse(await teacher.handle_offer(CHROME_OFFER))
        assert payload_types(first.media[1])[0] == 102
        # The browser offers again, VP8 first as always: the answer still puts H264 102 first.
        again = CHROME_OFFER.replace("o=- 5947163167051381455 2", "o=- 5947163167051381455 3")
        second = parse(await teacher.handle_offer(again))
        for m in second.media[1:]:
            assert payload_types(m)[0] == 102, payload_types(m)
    finally:
        await teacher.close()


async def _tick() -> None:
    import asyncio

    await asyncio.sleep(0.02)
