"""Every reliance on aiortc internals, in one module (aiortc is pinned to 1.16.0).

aiortc has no public API for forwarding encoded media. Its internals allow it:

- ``RTCRtpReceiver._handle_rtp_packet`` reassembles complete *encoded* frames in its
  jitter buffer and puts ``(codec, JitterFrame)`` on ``__decoder_queue`` (an unbounded
  ``queue.Queue``) for a decoder thread. :func:`tap_receiver` replaces that queue with a
  tap that hands each frame to the SFU and answers the decoder thread's first ``get()``
  with ``None``, so the thread exits at once and never creates a decoder.
- ``RTCRtpSender._next_encoded_frame`` calls ``__encoder.pack(data)`` for anything its
  track returns that is not an ``av.Frame``. :func:`install_packer` puts a pack-only
  object in ``__encoder`` before the sender starts, so ``get_encoder`` (which would open a
  libopus encoder) is never called; RTP sequence numbers, the RTX history (NACK
  retransmission) and SR/RTCP stay aiortc's.
- On that path the sender ignores PLI/FIR and REMB (they only touch an encoder).
  :func:`observe_sender_rtcp` wraps the sender's ``_handle_rtcp_packet`` so the SFU sees
  every RTCP packet routed to a consumer (RR, NACK, PLI, FIR, REMB) before aiortc does.
- Upstream keyframe requests use the receiver's private ``_send_rtcp_pli``.

``check_seams()`` verifies all of this against the installed aiortc and is called when a
``Worker`` starts and by ``tests/media/test_seams.py``: an aiortc upgrade that moves any of
it fails loudly instead of silently decoding or dropping media.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import aiortc
from aiortc import RTCRtpReceiver, RTCRtpSender, RTCRtpTransceiver
from aiortc import rtcrtpreceiver as _rtcrtpreceiver
from aiortc import rtcrtpsender as _rtcrtpsender
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.jitterbuffer import JitterBuffer
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

AIORTC_VERSION = "1.16.0"

_R = "_RTCRtpReceiver__"
_S = "_RTCRtpSender__"
_RECV_QUEUE = _R + "decoder_queue"
_RECV_THREAD = _R + "decoder_thread"
_RECV_JITTER = _R + "jitter_buffer"
_RECV_STREAMS = _R + "remote_streams"
_RECV_RTX = _R + "rtx_ssrc"
_RECV_REMB = _R + "remote_bitrate_estimator"
_RECV_KIND = _R + "kind"
_SEND_ENCODER = _S + "encoder"

FrameSink = Callable[[str, bytes, int], None]
"""``(codec name, encoded frame bytes, RTP timestamp from 0)`` for one reassembled frame."""


class SeamError(RuntimeError):
    """The installed aiortc does not have the internals Sanke forwards media through."""


# --- receiving: tap encoded frames out of the jitter buffer -----------------------


class _FrameTap:
    """Stands in for ``RTCRtpReceiver.__decoder_queue``: nothing is ever queued."""

    def __init__(self, sink: FrameSink) -> None:
        self._sink: FrameSink | None = sink

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if item is None:  # the receiver stopping its (already finished) decoder thread
            self._sink = None
            return
        codec, frame = item
        if self._sink is not None:
            self._sink(codec.name, frame.data, frame.timestamp)

    def get(self, block: bool = True, timeout: float | None = None) -> None:
        # The decoder thread's first get(): tell it to stop before it creates a decoder.
        return None


def tap_receiver(receiver: RTCRtpReceiver, sink: FrameSink, *, low_latency: bool) -> None:
    """Route the receiver's reassembled encoded frames to ``sink`` instead of a decoder.

    Must run before ``receive()`` (i.e. after ``setRemoteDescription``, before the DTLS
    transport connects). ``low_latency`` drops the 4-frame audio prefetch (80 ms).
    """
    if getattr(receiver, _RECV_THREAD, "missing") is not None:
        raise SeamError("receiver already started (or aiortc moved its decoder thread)")
    if not hasattr(receiver, _RECV_QUEUE):
        raise SeamError("aiortc RTCRtpReceiver has no decoder queue to tap")
    setattr(receiver, _RECV_QUEUE, _FrameTap(sink))
    if low_latency:
        buffer: JitterBuffer = getattr(receiver, _RECV_JITTER)
        setattr(receiver, _RECV_JITTER, JitterBuffer(capacity=buffer.capacity, prefetch=0))


def is_tapped(receiver: RTCRtpReceiver) -> bool:
    return isinstance(getattr(receiver, _RECV_QUEUE, None), _FrameTap)


def decoder_thread_alive(receiver: RTCRtpReceiver) -> bool:
    thread = getattr(receiver, _RECV_THREAD, None)
    return bool(thread is not None and thread.is_alive())


def media_ssrcs(receiver: RTCRtpReceiver) -> list[int]:
    """SSRCs the receiver has seen media on, without RTX (retransmission) streams."""
    rtx: dict[int, int] = getattr(receiver, _RECV_RTX)
    streams: dict[int, Any] = getattr(receiver, _RECV_STREAMS)
    return [ssrc for ssrc in streams if ssrc not in rtx]


async def send_pli(receiver: RTCRtpReceiver) -> bool:
    """Ask the publisher for a keyframe (RTCP PLI). False if no media seen yet."""
    ssrcs = media_ssrcs(receiver)
    for ssrc in ssrcs:
        await receiver._send_rtcp_pli(ssrc)
    return bool(ssrcs)


# --- sending: packetize pre-encoded frames -----------------------------------------


class OutFrame(NamedTuple):
    """What a consumer track hands its sender: payloads already packetized, a timestamp."""

    payloads: list[bytes]
    timestamp: int


class _Packer:
    """Stands in for ``RTCRtpSender.__encoder``: packs, never encodes."""

    def pack(self, data: OutFrame) -> tuple[list[bytes], int]:
        return data.payloads, data.timestamp

    def encode(self, frame: Any, force_keyframe: bool = False) -> tuple[list[bytes], int]:
        raise SeamError("Sanke never encodes on the relay path")


def install_packer(sender: RTCRtpSender) -> None:
    if not hasattr(sender, _SEND_ENCODER):
        raise SeamError("aiortc RTCRtpSender has no encoder slot")
    setattr(sender, _SEND_ENCODER, _Packer())


def has_packer(sender: RTCRtpSender) -> bool:
    return isinstance(getattr(sender, _SEND_ENCODER, None), _Packer)


def packetize(codec: str, data: bytes, picture_id: int) -> list[bytes]:
    """RTP payloads for one encoded frame, with aiortc's own packetizers."""
    if codec == "H264":
        return list(H264Encoder._packetize(H264Encoder._split_bitstream(data)))
    if codec == "VP8":
        return list(Vp8Encoder._packetize(data, picture_id))
    return [data]  # opus and the other audio codecs: one frame, one packet


def set_stream_id(sender: RTCRtpSender, stream_id: str) -> None:
    """The SDP msid stream of a consumer (aiortc uses one stream per peer connection)."""
    sender._stream_id = stream_id


def sender_ssrc(sender: RTCRtpSender) -> int:
    return int(sender._ssrc)


def prefer_codecs(transceiver: RTCRtpTransceiver, mime_types: list[str]) -> None:
    """Reorder a receiving transceiver's negotiated codecs before ``createAnswer``."""
    order = {m.lower(): i for i, m in enumerate(mime_types)}
    codecs = list(transceiver._codecs)
    transceiver._codecs = sorted(codecs, key=lambda c: order.get(c.mimeType.lower(), len(order)))


def negotiated_codecs(transceiver: RTCRtpTransceiver) -> list[Any]:
    return list(transceiver._codecs)


# --- RTCP the sender would ignore ---------------------------------------------------


class RtcpEvent(NamedTuple):
    kind: str  # "pli" | "fir" | "nack" | "remb" | "rr"
    remb_bps: int = 0
    fraction_lost: int = 0  # of 256
    jitter: int = 0
    nacks: int = 0
    ssrcs: tuple[int, ...] = ()  # the streams a REMB covers


RtcpObserver = Callable[[RtcpEvent], None]


class _RtcpHandler(Protocol):
    def __call__(self, packet: Any) -> Awaitable[None]: ...


def observe_sender_rtcp(sender: RTCRtpSender, observer: RtcpObserver) -> None:
    original: _RtcpHandler = sender._handle_rtcp_packet
    ssrc = sender_ssrc(sender)

    async def handle(packet: Any) -> None:
        for event in _rtcp_events(packet, ssrc):
            observer(event)
        await original(packet)  # RTT, remote-inbound stats, NACK retransmission

    sender._handle_rtcp_packet = handle  # type: ignore[method-assign]


def _rtcp_events(packet: Any, ssrc: int) -> list[RtcpEvent]:
    if isinstance(packet, RtcpRrPacket | RtcpSrPacket):
        return [
            RtcpEvent("rr", fraction_lost=r.fraction_lost, jitter=r.jitter)
            for r in packet.reports
            if r.ssrc == ssrc
        ]
    if isinstance(packet, RtcpRtpfbPacket) and packet.fmt == RTCP_RTPFB_NACK:
        return [RtcpEvent("nack", nacks=len(packet.lost))]
    if isinstance(packet, RtcpPsfbPacket):
        if packet.fmt == RTCP_PSFB_PLI:
            return [RtcpEvent("pli")]
        if packet.fmt == RTCP_PSFB_FIR:
            return [RtcpEvent("fir")]
        if packet.fmt == RTCP_PSFB_APP:
            try:
                bitrate, ssrcs = unpack_remb_fci(packet.fci)
            except ValueError:
                return []
            if ssrc in ssrcs:
                return [RtcpEvent("remb", remb_bps=bitrate, ssrcs=tuple(ssrcs))]
    return []


# --- test-side helpers (a subscriber that reports a capped bandwidth) --------------


def disable_remb(receiver: RTCRtpReceiver) -> None:
    setattr(receiver, _RECV_REMB, None)


async def send_remb(receiver: RTCRtpReceiver, bitrate: int, ssrcs: list[int]) -> None:
    rtcp_ssrc = getattr(receiver, _R + "rtcp_ssrc")
    packet = RtcpPsfbPacket(
        fmt=RTCP_PSFB_APP, ssrc=rtcp_ssrc, media_ssrc=0, fci=pack_remb_fci(bitrate, ssrcs)
    )
    await receiver._send_rtcp(packet)


# --- the check ----------------------------------------------------------------------


def check_seams() -> None:
    """Raise ``SeamError`` if the installed aiortc moved any internal Sanke relies on."""
    problems: list[str] = []
    if aiortc.__version__ != AIORTC_VERSION:
        problems.append(
            f"aiortc {aiortc.__version__} installed, seams verified on {AIORTC_VERSION}"
        )
    recv_src = inspect.getsource(_rtcrtpreceiver.RTCRtpReceiver)
    for needle in (
        "self.__decoder_queue: queue.Queue = queue.Queue()",
        "self.__decoder_queue.put((codec, encoded_frame))",
        "if encoded_frame is not None and self.__decoder_thread:",
        "self.__remote_bitrate_estimator = RemoteBitrateEstimator()",
        "self.__jitter_buffer = JitterBuffer(capacity=16, prefetch=4)",
        "def _send_rtcp_pli(self, media_ssrc: int)",
        "async def _send_rtcp(self, packet: AnyRtcpPacket)",
        "self.__remote_streams[packet.ssrc]",
        "self.__rtx_ssrc[encoding.rtx.ssrc] = encoding.ssrc",
    ):
        if needle not in recv_src:
            problems.append(f"RTCRtpReceiver lost: {needle}")
    worker_src = inspect.getsource(_rtcrtpreceiver.decoder_worker)
    if "task = input_q.get()" not in worker_src or "if task is None:" not in worker_src:
        problems.append("decoder_worker no longer stops on a None task before decoding")
    send_src = inspect.getsource(_rtcrtpsender.RTCRtpSender)
    for needle in (
        "if self.__encoder is None:",
        "if isinstance(data, Frame):",
        "payloads, timestamp = self.__encoder.pack(data)",
        "self.__rtp_history[packet.sequence_number % RTP_HISTORY_SIZE]",
        "async def _handle_rtcp_packet(self, packet: AnyRtcpPacket)",
        "self._stream_id = str(uuid.uuid4())",
    ):
        if needle not in send_src:
            problems.append(f"RTCRtpSender lost: {needle}")
    for cls, name in (
        (H264Encoder, "_packetize"),
        (H264Encoder, "_split_bitstream"),
        (Vp8Encoder, "_packetize"),
        (RTCRtpTransceiver, "_codecs"),
    ):
        if not hasattr(cls, name) and name not in inspect.getsource(cls):
            problems.append(f"{cls.__name__}.{name} is gone")
    if problems:
        raise SeamError("aiortc internals moved: " + "; ".join(problems))
