"""The aiortc internals the SFU relies on are where it expects them (fails loudly otherwise)."""

from __future__ import annotations

import inspect

import aiortc
import pytest
from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterFrame

from media import aiortc_seams as seams
from media.frames import FrameParser, h264_nal_types, vp8_is_keyframe


def test_installed_aiortc_has_every_seam() -> None:
    assert aiortc.__version__ == seams.AIORTC_VERSION
    seams.check_seams()


def test_check_fails_loudly_when_a_seam_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    real = inspect.getsource

    def moved(obj: object) -> str:
        text = real(obj)  # type: ignore[arg-type]
        return text.replace("self.__decoder_queue.put((codec, encoded_frame))", "self.decode(f)")

    monkeypatch.setattr(inspect, "getsource", moved)
    with pytest.raises(seams.SeamError, match="decoder_queue"):
        seams.check_seams()


async def test_tap_and_packer_sit_in_real_aiortc_objects() -> None:
    pc = RTCPeerConnection()
    try:
        t = pc.addTransceiver("video", direction="sendrecv")
        got: list[tuple[str, bytes, int]] = []
        seams.tap_receiver(t.receiver, lambda c, d, ts: got.append((c, d, ts)))
        assert seams.is_tapped(t.receiver)
        # what the receiver does with a reassembled frame: the tap gets it, nothing is queued
        queue = t.receiver._RTCRtpReceiver__decoder_queue
        codec = aiortc.RTCRtpCodecParameters(mimeType="video/VP8", clockRate=90000, payloadType=97)
        queue.put((codec, JitterFrame(data=b"x", timestamp=3)))
        assert got == [("VP8", b"x", 3)]
        assert queue.get() is None  # the decoder thread stops before creating a decoder
        seams.install_packer(t.sender)
        assert seams.has_packer(t.sender)
        packer = t.sender._RTCRtpSender__encoder
        assert packer.pack(seams.OutFrame([b"a", b"b"], 7)) == ([b"a", b"b"], 7)
        with pytest.raises(seams.SeamError):
            packer.encode(None)
    finally:
        await pc.close()


def test_packetizers_and_keyframes() -> None:
    sps, pps, idr = b"\x67\x42\xc0\x1e\xaa", b"\x68\xce\x3c\x80", b"\x65" + b"\x88" * 3000
    start = b"\x00\x00\x00\x01"
    parser = FrameParser()
    first = parser.parse("H264", start + sps + start + pps + start + idr, 0)
    assert first.keyframe and h264_nal_types(first.data) == [7, 8, 5]
    # a later IDR without parameter sets gets the remembered SPS/PPS in front
    later = parser.parse("H264", start + idr, 3000)
    assert later.keyframe and h264_nal_types(later.data) == [7, 8, 5]
    delta = parser.parse("H264", start + b"\x41\x9a" + b"\x01" * 10, 6000)
    assert not delta.keyframe
    payloads = later.payloads
    assert len(payloads) >= 3 and all(len(p) <= 1300 for p in payloads)
    assert payloads[0][0] & 0x1F == 24  # SPS+PPS aggregated in a STAP-A
    assert vp8_is_keyframe(b"\x10\x02\x00\x9d\x01\x2a") and not vp8_is_keyframe(b"\x11\x02\x00")
    assert seams.packetize("opus", b"abc", 0) == [b"abc"]


def _with_transport_cc(sdp: str) -> str:
    """A client offer as Chromium writes it: transport-cc extension and feedback on every codec."""
    out = []
    for line in sdp.split("\r\n"):
        out.append(line)
        if line.startswith("a=mid:"):
            out.append(f"a=extmap:5 {seams.TRANSPORT_CC_URI}")
        if line.startswith("a=rtpmap:") and "rtx" not in line:
            pt = line.split(":", 1)[1].split()[0]
            out.append(f"a=rtcp-fb:{pt} transport-cc")
    return "\r\n".join(out)


async def test_transport_cc_is_answered_to_a_publisher_that_offers_it() -> None:
    from media.uplink import UplinkFeedback

    client, sfu = RTCPeerConnection(), RTCPeerConnection()
    try:
        client.addTransceiver("video", direction="sendonly")
        client.addTransceiver("audio", direction="sendonly")
        await client.setLocalDescription(await client.createOffer())
        offer = _with_transport_cc(client.localDescription.sdp)
        await sfu.setRemoteDescription(aiortc.RTCSessionDescription(sdp=offer, type="offer"))
        uplink = UplinkFeedback(sfu)
        uplink.negotiate(offer)
        assert uplink.transport_cc
        await sfu.setLocalDescription(await sfu.createAnswer())
        answer = sfu.localDescription.sdp
        assert answer.count(f"a=extmap:5 {seams.TRANSPORT_CC_URI}") == 2
        assert "transport-cc" in answer and "goog-remb" not in answer
        uplink.close()
        # A client that does not offer it gets aiortc's answer unchanged.
        plain = RTCPeerConnection()
        await plain.setRemoteDescription(client.localDescription)
        other = UplinkFeedback(plain)
        other.negotiate(client.localDescription.sdp)
        assert not other.transport_cc
        await plain.setLocalDescription(await plain.createAnswer())
        assert "transport-cc" not in plain.localDescription.sdp
        await plain.close()
    finally:
        await client.close()
        await sfu.close()


def test_check_fails_loudly_when_an_ice_seam_moves(monkeypatch: pytest.MonkeyPatch) -> None:
    real = inspect.getsource

    def moved(obj: object) -> str:
        text = real(obj)  # type: ignore[arg-type]
        return text.replace("self.receiver.request_received(message, addr, self)", "pass")

    monkeypatch.setattr(inspect, "getsource", moved)
    with pytest.raises(seams.SeamError, match="request_received"):
        seams.check_seams()
