"""Offers and answers are checked before aiortc sees them: a clean ``invalid_sdp`` error, no
parser internals, nothing changed for the sender, nothing noticed by anyone else."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from media_peers import Peer, load_clip, wait_for
from support.harness import running_app

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from media.sdp_check import MAX_MEDIA_SECTIONS, SdpRejected, check_candidate, check_sdp
from media.worker import Worker

# Words of Python, aiortc or aioice that must never reach a client.
INTERNALS = re.compile(
    r"Traceback|invalid literal|assert|Error\b|object has no attribute|"
    r"list index|not enough values|unpack|KeyError|StopIteration|NoneType",
    re.IGNORECASE,
)


async def client_offer() -> str:
    """A real aiortc client offer: audio and video to send, with its host candidates."""
    pc = RTCPeerConnection()
    try:
        pc.addTransceiver("audio", direction="sendonly")
        pc.addTransceiver("video", direction="sendonly")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()


def section_lines(sdp: str, index: int) -> list[str]:
    """The lines of media section ``index`` (0 = the first m= line)."""
    sections: list[list[str]] = []
    for line in sdp.split("\r\n"):
        if line.startswith("m="):
            sections.append([])
        if sections:
            sections[-1].append(line)
    return sections[index]


def with_new_section(sdp: str, mid: str, media: str, formats: str, rtpmaps: list[str]) -> str:
    """``sdp`` plus a bundled m-line (credentials copied from the first one)."""
    first = section_lines(sdp, 0)
    copied = [
        line
        for line in first
        if line.startswith(("a=ice-ufrag", "a=ice-pwd", "a=fingerprint", "a=setup", "c="))
    ]
    section = [
        f"m={media} 9 UDP/TLS/RTP/SAVPF {formats}",
        *copied,
        "a=sendonly",
        f"a=mid:{mid}",
        "a=rtcp-mux",
        *rtpmaps,
    ]
    text = sdp.rstrip("\r\n") + "\r\n" + "\r\n".join(section) + "\r\n"
    return re.sub(r"a=group:BUNDLE ([^\r\n]*)", rf"a=group:BUNDLE \1 {mid}", text)


def without(sdp: str, prefix: str) -> str:
    return "\r\n".join(line for line in sdp.split("\r\n") if not line.startswith(prefix))


def too_many_sections(sdp: str) -> str:
    head = sdp.split("\r\nm=")[0]
    extra = "".join(
        f"\r\nm=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:x{i}\r\na=rtcp-mux"
        for i in range(MAX_MEDIA_SECTIONS + 1)
    )
    return head + extra + "\r\n"


def bad_sdps(sdp: str) -> dict[str, str]:
    """name -> an SDP the SFU must refuse (each derived from the good ``sdp``)."""
    return {
        "garbage": "hello, I am an offer",
        "empty_lines": "\r\n\r\n\r\n",
        "oversized": sdp + "a=x-padding:" + "z" * 40_000 + "\r\n",
        "too_many_m_lines": too_many_sections(sdp),
        "no_time": without(sdp, "t="),
        "nul_byte": sdp.replace("a=rtcp-mux", "a=rtcp-mux\x00", 1),
        "bidi_override": sdp.replace("s=-", "s=\u202e-", 1),
        "no_ice_ufrag": without(sdp, "a=ice-ufrag"),
        "no_fingerprint": without(sdp, "a=fingerprint"),
        "no_bundle": without(sdp, "a=group:BUNDLE"),
        "no_rtcp_mux": without(sdp, "a=rtcp-mux"),
        "no_origin": without(sdp, "o="),
        "bad_payload_type": re.sub(r"(m=video [0-9]+ UDP/TLS/RTP/SAVPF) [0-9]+", r"\1 abc", sdp),
        "rtpmap_without_clock": re.sub(r"a=rtpmap:(\d+) (\w+)/90000", r"a=rtpmap:\1 \2", sdp),
        "bad_extmap_id": re.sub(r"a=extmap:\d+ ", "a=extmap:x ", sdp, count=1),
        "data_channel": with_new_section(sdp, "dc", "application", "webrtc-datachannel", []),
        "unknown_codec_only": with_new_section(sdp, "9", "video", "45", ["a=rtpmap:45 AV1/90000"]),
        "duplicate_mid": re.sub(r"a=mid:1", "a=mid:0", sdp),
        "bad_candidate": re.sub(r"a=candidate:(\S+) 1 udp", r"a=candidate:\1 1 udp x", sdp),
        "bad_setup": sdp.replace("a=setup:actpass", "a=setup:whatever"),
    }


async def test_a_real_client_offer_passes_and_each_broken_one_gets_a_clean_reason() -> None:
    sdp = await client_offer()
    check_sdp(sdp, "offer")  # nothing to complain about
    for name, bad in bad_sdps(sdp).items():
        with pytest.raises(SdpRejected) as caught:
            check_sdp(bad, "offer")
        error = caught.value
        assert error.code is ErrorCode.invalid_sdp and error.status == 400, name
        assert error.message and not INTERNALS.search(error.message), (name, error.message)


async def test_reoffers_keep_negotiated_m_lines_and_answers_match_the_offer() -> None:
    sdp = await client_offer()
    negotiated = [("audio", "0"), ("video", "1")]
    check_sdp(sdp, "offer", negotiated=negotiated)
    with pytest.raises(SdpRejected, match="in place"):
        check_sdp(sdp, "offer", negotiated=[("video", "0"), ("audio", "1")])
    answer = sdp.replace("a=setup:actpass", "a=setup:active")
    check_sdp(answer, "answer", negotiated=negotiated)
    with pytest.raises(SdpRejected, match="do not match"):
        check_sdp(answer, "answer", negotiated=[*negotiated, ("video", "2")])
    with pytest.raises(SdpRejected, match="active or passive"):
        check_sdp(sdp, "answer", negotiated=negotiated)


def test_trickled_candidates_are_checked_too() -> None:
    check_candidate("842163049 1 udp 1677729535 192.0.2.7 56143 typ srflx raddr 0.0.0.0 rport 0")
    check_candidate("candidate:1 1 UDP 2122252543 fd00::7 40000 typ host generation 0")
    for bad in (
        "",
        "1 1 udp 1 192.0.2.7 56143",  # no typ
        "1 1 udp 1 192.0.2.7 99999 typ host",  # port
        "1 1 udp 99999999999 192.0.2.7 5000 typ host",  # priority
        "1 1 udp 1 192.0.2.7 5000 typ host raddr",  # extension without a value
        "1 1 udp 1 192.0.2.7\x00 5000 typ host",
    ):
        with pytest.raises(SdpRejected):
            check_candidate(bad)


def snapshot(worker: Worker, pid: str) -> dict[str, Any]:
    t = worker.transport("room-1", pid)
    assert t is not None
    return {
        "signaling": t.pc.signalingState,
        "transceivers": [(x.kind, x.mid, x.direction) for x in t.pc.getTransceivers()],
        "producers": sorted(t.producers),
        "consumers": sorted(t.consumers),
        "remote": t.pc.remoteDescription.sdp if t.pc.remoteDescription else None,
        "local": t.pc.localDescription.sdp if t.pc.localDescription else None,
        "active": {mid: p.active for mid, p in t.producers.items()},
    }


@pytest.mark.timeout(90)
async def test_bad_offers_change_nothing_and_nobody_else_notices(clips: dict[str, Any]) -> None:
    worker = Worker()
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["high"], "video"), "video/H264")]
    )
    viewer = Peer(worker, "viewer", Role.viewer)
    try:
        await teacher.connect()
        await viewer.connect()
        assert await wait_for(lambda: sum(r.frames for r in viewer.video("teacher")) >= 15, 20)
        good = str(teacher.pc.localDescription.sdp)
        before = snapshot(worker, "teacher")
        for name, bad in bad_sdps(good).items():
            frames = sum(r.frames for r in viewer.video("teacher"))
            with pytest.raises(SankeError) as caught:
                await worker.offer("room-1", "teacher", bad)
                pytest.fail(f"{name} was accepted")
            assert caught.value.code is ErrorCode.invalid_sdp, (name, caught.value.message)
            assert not INTERNALS.search(caught.value.message), (name, caught.value.message)
            assert snapshot(worker, "teacher") == before, name
            # the viewer keeps receiving the teacher while the teacher's offers are refused
            assert await wait_for(
                lambda f=frames: sum(r.frames for r in viewer.video("teacher")) > f, 5
            ), name
        # an answer nobody asked for, garbage or not, is refused the same clean way
        with pytest.raises(SankeError) as caught:
            await worker.answer("room-1", "teacher", "garbage")
        assert caught.value.code is ErrorCode.conflict
        # the teacher's own connection still negotiates: a fresh, valid re-offer is answered
        await teacher.pc.setLocalDescription(await teacher.pc.createOffer())
        answer = await worker.offer("room-1", "teacher", str(teacher.pc.localDescription.sdp))
        assert answer.startswith("v=0")
        after = snapshot(worker, "teacher")
        assert after["producers"] == before["producers"]
        assert after["transceivers"] == before["transceivers"]
    finally:
        await teacher.close()
        await viewer.close()
        await worker.close()


async def test_a_bad_offer_over_the_websocket_gets_an_error_and_the_connection_stays() -> None:
    worker = Worker()
    async with running_app(media=worker) as h:
        await h.room()
        teacher = await h.joined(Role.teacher)
        for sdp in ("garbage", "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video x\r\n"):
            await teacher.send({"type": "offer", "sdp": sdp, "rid": "o1"})
            error = await teacher.expect("error", rid="o1")
            assert error["code"] == "invalid_sdp", error
            assert not INTERNALS.search(error["message"]), error
        await teacher.send({"type": "candidate", "candidate": "candidate:x y z", "rid": "c1"})
        error = await teacher.expect("error", rid="c1")
        assert error["code"] == "invalid_sdp" and not INTERNALS.search(error["message"]), error
        await teacher.send({"type": "ping", "ts": 1})
        await teacher.expect("pong")
    await worker.close()
