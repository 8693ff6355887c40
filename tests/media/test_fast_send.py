"""The consumer fast sender: the bytes aiortc would send, counted as aiortc counts them."""

from __future__ import annotations

import asyncio
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpCodecParameters, RTCRtpParameters
from aiortc.clock import current_ntp_time
from aiortc.codecs import HEADER_EXTENSIONS
from aiortc.mediastreams import MediaStreamError
from aiortc.rtp import RtpPacket, wrap_rtx

from media import aiortc_seams as seams
from media.aiortc_seams_send import wire_of

_S = "_RTCRtpSender__"
H264 = RTCRtpCodecParameters(mimeType="video/H264", clockRate=90000, payloadType=102)
RTX_PT = 103


class Source:
    """A frame source as a consumer track is one: frames queued, then ended."""

    def __init__(self) -> None:
        self.on_ready: Any = None
        self.frames: list[seams.OutFrame] = []
        self.ended = False

    def queue(self, frame: seams.OutFrame) -> None:
        self.frames.append(frame)
        if self.on_ready is not None:
            self.on_ready()

    def poll(self) -> seams.OutFrame | None:
        if self.ended:
            raise MediaStreamError
        return self.frames.pop(0) if self.frames else None

    def stop(self) -> None:
        self.ended = True


class Hooks:
    """Send hooks that hold every packet listed in ``hold`` back once, and mark each."""

    def __init__(self, hold: set[int]) -> None:
        self.hold = hold
        self.stamped: list[bytes] = []

    def delay(self, data: bytes) -> float:
        seq = int.from_bytes(data[2:4], "big")
        if seq in self.hold:
            self.hold.discard(seq)
            return 0.03
        return 0.0

    def stamp(self, data: bytes) -> bytes:
        self.stamped.append(data)
        return data


async def _sender(pc: RTCPeerConnection) -> tuple[Any, list[bytes], Source, seams.FastSender]:
    """A video sender set up as ``RTCRtpSender.send`` sets it up, sending into a list."""
    t = pc.addTransceiver("video", direction="sendonly")
    sender = t.sender
    getattr(sender, _S + "rtp_header_extensions_map").configure(
        RTCRtpParameters(headerExtensions=HEADER_EXTENSIONS["video"])
    )
    setattr(sender, _S + "mid", "1")
    setattr(sender, _S + "rtx_payload_type", RTX_PT)
    sent: list[bytes] = []
    wire = wire_of(sender.transport)

    def send(data: bytes) -> bool:
        sent.append(data)
        return True

    wire.send = send  # type: ignore[method-assign]
    source = Source()
    fast = seams.install_fast_sender(sender, source)
    sender.replaceTrack(None)
    return sender, sent, source, fast


def _as_aiortc_would(sender: Any, data: bytes) -> bytes:
    """Serialize the packet's fields again with aiortc's own code."""
    extensions = getattr(sender, _S + "rtp_header_extensions_map")
    parsed = RtpPacket.parse(data, extensions)
    packet = RtpPacket(
        payload_type=parsed.payload_type,
        marker=parsed.marker,
        sequence_number=parsed.sequence_number,
        timestamp=parsed.timestamp,
        ssrc=sender._ssrc,
        payload=parsed.payload,
    )
    packet.extensions.mid = "1"
    packet.extensions.abs_send_time = parsed.extensions.abs_send_time
    return bytes(packet.serialize(extensions))


async def test_the_bytes_and_counts_are_aiortcs() -> None:
    pc = RTCPeerConnection()
    try:
        sender, sent, source, fast = await _sender(pc)
        assert fast.next_sequence() is None
        source.queue(seams.OutFrame([b"a" * 1000, b"b" * 500], 3000))  # before the start
        task = asyncio.ensure_future(sender._run_rtp(H264))
        await asyncio.sleep(0)
        assert len(sent) == 2  # the queued frame goes out as soon as the loop starts
        source.queue(seams.OutFrame([b"c" * 300], 6000))
        assert len(sent) == 3  # and later frames the moment they are queued
        first, second, third = (RtpPacket.parse(d) for d in sent)
        assert [p.marker for p in (first, second, third)] == [0, 1, 1]
        assert second.sequence_number == (first.sequence_number + 1) & 0xFFFF
        assert third.timestamp - first.timestamp == 3000
        assert first.ssrc == sender._ssrc and first.payload_type == 102
        for data in sent:
            assert data == _as_aiortc_would(sender, data)
        parsed = RtpPacket.parse(sent[0], getattr(sender, _S + "rtp_header_extensions_map"))
        now_abs = (current_ntp_time() >> 14) & 0xFFFFFF
        assert (now_abs - parsed.extensions.abs_send_time) % (1 << 24) < (1 << 18)  # < 1 s
        # what RTCP sender reports and getStats read
        assert getattr(sender, _S + "packet_count") == 3
        assert getattr(sender, _S + "octet_count") == 1800
        assert getattr(sender, _S + "rtp_timestamp") == third.timestamp
        assert abs(getattr(sender, _S + "ntp_timestamp") - current_ntp_time()) < 1 << 32
        assert seams.sender_next_sequence(sender) == (third.sequence_number + 1) & 0xFFFF

        # a NACKed packet comes back on the RTX stream, as aiortc's wrap_rtx writes it
        resent: list[bytes] = []

        async def send_rtp(data: bytes) -> None:
            resent.append(data)

        sender.transport._send_rtp = send_rtp
        rtx_seq = getattr(sender, _S + "rtx_sequence_number")
        await seams.retransmit(sender, second.sequence_number)
        await seams.retransmit(sender, (second.sequence_number + 1000) & 0xFFFF)  # not kept
        extensions = getattr(sender, _S + "rtp_header_extensions_map")
        original = RtpPacket.parse(sent[1], extensions)
        expected = wrap_rtx(
            original, payload_type=RTX_PT, sequence_number=rtx_seq, ssrc=sender._rtx_ssrc
        ).serialize(extensions)
        assert resent == [expected]
        assert getattr(sender, _S + "rtx_sequence_number") == (rtx_seq + 1) & 0xFFFF

        source.stop()  # the track ends: the loop ends as aiortc's does
        source.queue(seams.OutFrame([b"d"], 9000))
        await asyncio.wait_for(task, 1)
        assert getattr(sender, _S + "rtp_exited").is_set()
        assert len(sent) == 3
    finally:
        await pc.close()


async def test_the_pacer_holds_a_packet_and_the_rest_waits_behind_it() -> None:
    pc = RTCPeerConnection()
    try:
        sender, sent, source, _ = await _sender(pc)
        hooks = Hooks(set())
        wire_of(sender.transport).hooks = hooks
        task = asyncio.ensure_future(sender._run_rtp(H264))
        await asyncio.sleep(0)
        source.queue(seams.OutFrame([b"a" * 100], 3000))
        first = RtpPacket.parse(sent[0]).sequence_number
        hooks.hold = {(first + 2) & 0xFFFF}
        source.queue(seams.OutFrame([b"b" * 100, b"c" * 100, b"d" * 100], 6000))
        source.queue(seams.OutFrame([b"e" * 100], 9000))
        assert len(sent) == 2  # the third packet is held, and what follows waits
        await asyncio.sleep(0.06)
        assert len(sent) == 5
        assert [RtpPacket.parse(d).sequence_number for d in sent] == [
            (first + k) & 0xFFFF for k in range(5)
        ]
        assert hooks.stamped == sent  # every packet went through the hooks, once
        source.stop()
        source.queue(seams.OutFrame([b"f"], 12000))
        await asyncio.wait_for(task, 1)
    finally:
        await pc.close()


async def test_a_sender_that_is_stopped_ends_like_aiortcs() -> None:
    pc = RTCPeerConnection()
    try:
        sender, _, source, _ = await _sender(pc)
        task = asyncio.ensure_future(sender._run_rtp(H264))
        await asyncio.sleep(0)
        task.cancel()  # what RTCRtpSender.stop() does
        await asyncio.wait_for(task, 1)
        assert getattr(sender, _S + "rtp_exited").is_set()
        assert source.on_ready is None
    finally:
        await pc.close()


def test_the_ntp_clock_is_aiortcs() -> None:
    assert abs(seams.ntp_now() - current_ntp_time()) < (1 << 32) // 100  # 10 ms
