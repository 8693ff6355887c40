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
  libopus encoder) is never called, should aiortc's own loop ever run.
- A consumer's sender does not run that loop: :func:`install_fast_sender` replaces its
  ``_run_rtp`` and ``_retransmit`` (:mod:`media.aiortc_seams_send`: a frame's packets in
  one synchronous loop, straight to the nominated pair's UDP transport). The counters RTCP
  sender reports and ``getStats`` read stay aiortc's.
- On that path the sender ignores PLI/FIR and REMB (they only touch an encoder).
  :func:`observe_sender_rtcp` wraps the sender's ``_handle_rtcp_packet`` so the SFU sees
  every RTCP packet routed to a consumer (RR, NACK, PLI, FIR, REMB) before aiortc does.
- Upstream keyframe requests use the receiver's private ``_send_rtcp_pli``.
- ``RTCPeerConnection.createOffer`` resets every transceiver's ``_codecs`` and
  ``_headerExtensions`` to aiortc's defaults (its payload types, VP8 first, extension ids
  1/2/3) and the SDP, ``__localRtp`` (what a sender registers) and the DTLS transport's one
  header-extension map all follow them. :func:`create_offer` puts back what each
  negotiated m-line already uses and numbers new m-lines from the connection's
  :class:`BundleNumbers` (never colliding with the client's payload types and ids).

- Transport-wide congestion control (transport-cc) is neither negotiated nor answered by
  aiortc. :func:`answer_transport_cc` adds the extension and the ``transport-cc`` feedback
  to a publishing m-line's negotiated parameters (the answer and the DTLS transport's
  extension map follow them); :func:`tap_transport_rtp` stamps every datagram when it
  arrives (in aioice's ``data_received``, before any queue) and hands every parsed RTP
  packet of the transport with that time to an observer before aiortc routes it;
  :func:`send_rtcp` sends a raw RTCP packet on the transport.

``check_seams()`` verifies all of this against the installed aiortc and is called when a
``Worker`` starts and by ``tests/media/test_seams.py``: an aiortc upgrade that moves any of
it fails loudly instead of silently decoding or dropping media.
"""

from __future__ import annotations

import asyncio
import copy
import inspect
import socket
import struct
import time
from asyncio import selector_events as _selector_events
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple, Protocol

import aioice
import aiortc
from aiortc import (
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpSender,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc import rtcdtlstransport as _rtcdtlstransport
from aiortc import rtcicetransport as _rtcicetransport
from aiortc import rtcpeerconnection as _rtcpeerconnection
from aiortc import rtcrtpreceiver as _rtcrtpreceiver
from aiortc import rtcrtpsender as _rtcrtpsender
from aiortc import sdp as _sdp
from aiortc.codecs import CODECS as _CODECS
from aiortc.codecs.h264 import H264Encoder
from aiortc.codecs.vpx import Vp8Encoder
from aiortc.rtcrtpparameters import (
    RTCRtcpFeedback,
    RTCRtpCodecParameters,
    RTCRtpHeaderExtensionParameters,
)
from aiortc.rtp import (
    RTCP_PSFB_APP,
    RTCP_PSFB_FIR,
    RTCP_PSFB_PLI,
    RTCP_RTPFB_NACK,
    RtcpPsfbPacket,
    RtcpRrPacket,
    RtcpRtpfbPacket,
    RtcpSrPacket,
    RtpPacket,
    pack_remb_fci,
    unpack_remb_fci,
)

from media import aiortc_seams_send as _send
from media.aiortc_seams_send import (
    FastSender,
    FrameSource,
    OutFrame,
    SendHooks,
    fast_sender,
    install_fast_sender,
    ntp_now,
)
from media.ice_policy import IcePolicy
from media.reassembly import FrameAssembler

__all__ = [
    "FastSender",
    "FrameSource",
    "OutFrame",
    "SendHooks",
    "fast_sender",
    "install_fast_sender",
    "ntp_now",
]

AIORTC_VERSION = "1.16.0"
AIOICE_VERSION = "0.13.0"

_R = "_RTCRtpReceiver__"
_DTLS = "_RTCDtlsTransport__"
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


def tap_receiver(
    receiver: RTCRtpReceiver,
    sink: FrameSink,
    *,
    on_gap: Callable[[], None] = lambda: None,
    on_cut: Callable[[], None] = lambda: None,
) -> FrameAssembler:
    """Route the receiver's encoded frames to ``sink`` instead of a decoder, reassembled by
    a :class:`~media.reassembly.FrameAssembler` in place of aiortc's jitter buffer
    (``on_gap``: a lost packet was given up; the publisher must send a keyframe;
    ``on_cut``: the publisher cut a frame short, which was dropped).

    Must run before ``receive()`` (i.e. after ``setRemoteDescription``, before the DTLS
    transport connects).
    """
    if getattr(receiver, _RECV_THREAD, "missing") is not None:
        raise SeamError("receiver already started (or aiortc moved its decoder thread)")
    if not hasattr(receiver, _RECV_QUEUE) or not hasattr(receiver, _RECV_JITTER):
        raise SeamError("aiortc RTCRtpReceiver has no decoder queue or jitter buffer to tap")
    tap = _FrameTap(sink)
    setattr(receiver, _RECV_QUEUE, tap)
    codecs: dict[int, RTCRtpCodecParameters] = getattr(receiver, _R + "codecs")
    nacks: set[asyncio.Task[None]] = set()

    def deliver(payload_type: int, data: bytes, timestamp: int) -> None:
        codec = codecs.get(payload_type)
        if codec is not None and tap._sink is not None:
            tap._sink(codec.name, data, timestamp)

    def nack(ssrc: int, lost: list[int]) -> None:
        task = asyncio.get_running_loop().create_task(receiver._send_rtcp_nack(ssrc, lost))
        nacks.add(task)
        task.add_done_callback(nacks.discard)

    kind: str = getattr(receiver, _RECV_KIND)
    assembler = FrameAssembler(kind, deliver, on_gap, nack, on_cut)
    setattr(receiver, _RECV_JITTER, assembler)
    return assembler


def forget_missing(receiver: RTCRtpReceiver) -> None:
    """Stop asking for packets that were given up: aiortc's NACK generator asks again for
    everything still missing whenever a new gap appears."""
    generator = getattr(receiver, _R + "nack_generator", None)
    if generator is not None:
        generator.missing.clear()


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


def sender_next_sequence(sender: RTCRtpSender) -> int | None:
    """The RTP sequence number the sender's next packet gets (None before it sent any):
    one past the newest packet in its retransmission history."""
    fast = fast_sender(sender)
    if fast is not None:
        return fast.next_sequence()
    history: dict[int, Any] = getattr(sender, _S + "rtp_history", {})
    if not history:
        return None
    seqs = [int(p.sequence_number) for p in history.values()]
    newest = seqs[0]
    for seq in seqs[1:]:
        if (seq - newest) & 0xFFFF < 0x8000:
            newest = seq
    return (newest + 1) & 0xFFFF


def sender_sent_payload(sender: RTCRtpSender, sequence_number: int) -> bytes | None:
    """The payload of a packet the sender's fast sender sent and still keeps for
    retransmission (None for an aiortc sender or a packet gone from the history)."""
    fast = fast_sender(sender)
    return fast.sent_payload(sequence_number) if fast is not None else None


def sender_rtt(sender: RTCRtpSender) -> float | None:
    """The round-trip time aiortc measured from the subscriber's receiver reports."""
    rtt = getattr(sender, _S + "rtt", None)
    return float(rtt) if rtt is not None else None


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


def keep_first_payload_type(transceiver: RTCRtpTransceiver, payload_type: int) -> bool:
    """Put ``payload_type`` (and its RTX) first in a transceiver's codecs, before an answer.

    A browser that offers again lists its codecs in its own order; the answer's first codec is
    the one it then sends, so the codec a producer already receives must stay first.
    """
    codecs = list(transceiver._codecs)
    first = [c for c in codecs if c.payloadType == payload_type]
    if not first:
        return False
    rtx = [c for c in codecs if _is_rtx(c) and c.parameters.get("apt") == payload_type]
    transceiver._codecs = first + rtx + [c for c in codecs if c not in first and c not in rtx]
    return True


# --- negotiation: the SFU's re-offers keep what is negotiated ----------------------

MIN_EXTENSION_ID, MAX_EXTENSION_ID = 1, 14  # one-byte header extensions
DYNAMIC_PAYLOAD_TYPES: list[int] = [*range(96, 128), *range(35, 64)]


def _is_rtx(codec: RTCRtpCodecParameters) -> bool:
    return codec.mimeType.lower().endswith("/rtx")


def _same_codec(a: RTCRtpCodecParameters, b: RTCRtpCodecParameters) -> bool:
    if _is_rtx(a) or _is_rtx(b):
        return False
    if (a.channels or 1) != (b.channels or 1):
        return False
    return bool(_rtcpeerconnection.is_codec_compatible(a, b))


def receivable_codecs(kind: str, codecs: list[Any]) -> bool:
    """Whether aiortc's negotiation (``find_common_codecs``, which a remote description runs
    only after creating its transceivers) keeps any media codec of ``codecs``."""
    local = _CODECS.get(kind)
    if not local:
        return False
    common = _rtcpeerconnection.find_common_codecs(local, codecs)
    return any(not _is_rtx(c) for c in common)


def codec_names(kind: str) -> list[str]:
    """The codecs aiortc negotiates for ``kind`` (``opus``, ``H264``, ...), for messages."""
    names = (c.mimeType.split("/", 1)[1] for c in _CODECS.get(kind, []) if not _is_rtx(c))
    return list(dict.fromkeys(names))


class BundleNumbers:
    """Payload types and header-extension ids in use on one connection (one BUNDLE group).

    Learned from every SDP the client sends (all its codecs, also those the SFU refused) and
    from every m-line the SFU adds. Browsers require a payload type to mean the same codec
    and an extension id the same URI on every m-line of a BUNDLE group; aiortc also keeps
    one extension map per DTLS transport, so a clash would misparse received packets.
    """

    def __init__(self) -> None:
        self.payload_types: dict[int, RTCRtpCodecParameters] = {}
        self.extension_ids: dict[str, int] = {}

    def learn(self, sdp: str) -> None:
        for media in _sdp.SessionDescription.parse(sdp).media:
            if media.kind not in ("audio", "video"):
                continue
            for codec in media.rtp.codecs:
                if codec.payloadType is not None:
                    self.payload_types.setdefault(codec.payloadType, copy.deepcopy(codec))
            for ext in media.rtp.headerExtensions:
                if ext.uri not in self.extension_ids and ext.id not in self._ids_taken():
                    self.extension_ids[ext.uri] = ext.id

    def _ids_taken(self) -> set[int]:
        return set(self.extension_ids.values())

    def _free_payload_type(self, wanted: int | None) -> int:
        if wanted is not None and wanted not in self.payload_types:
            return wanted
        for pt in DYNAMIC_PAYLOAD_TYPES:
            if pt not in self.payload_types:
                return pt
        raise SeamError("no free RTP payload type left on this connection")

    def place_codecs(self, codecs: list[RTCRtpCodecParameters]) -> list[RTCRtpCodecParameters]:
        """Number a new m-line's codecs: the client's number for the same codec, else a free one."""
        out: list[RTCRtpCodecParameters] = []
        renumbered: dict[int, int] = {}
        for codec in codecs:
            if _is_rtx(codec):
                continue
            mine = copy.deepcopy(codec)
            known = next(
                (pt for pt, c in sorted(self.payload_types.items()) if _same_codec(c, codec)),
                None,
            )
            if known is not None:
                # the same number; aiortc's parameters, as in its answers for that number
                mine.payloadType = known
            else:
                pt = codec.payloadType if codec.payloadType is not None else None
                if pt is not None and pt < 96 and pt not in self.payload_types:
                    mine.payloadType = pt  # static (PCMU 0, PCMA 8, G722 9)
                else:
                    mine.payloadType = self._free_payload_type(pt if pt and pt >= 96 else None)
                self.payload_types[mine.payloadType] = copy.deepcopy(mine)
            if codec.payloadType is not None:
                renumbered[codec.payloadType] = int(mine.payloadType or 0)
            out.append(mine)
        for codec in codecs:  # RTX after its codec, numbered the client's way if it has one
            old_apt = codec.parameters.get("apt")
            if not _is_rtx(codec) or not isinstance(old_apt, int) or old_apt not in renumbered:
                continue
            apt = renumbered[old_apt]
            rtx = copy.deepcopy(codec)
            rtx.parameters = {**codec.parameters, "apt": apt}
            known_rtx = next(
                (
                    pt
                    for pt, c in sorted(self.payload_types.items())
                    if _is_rtx(c) and c.parameters.get("apt") == apt
                ),
                None,
            )
            if known_rtx is not None:
                rtx.payloadType = known_rtx
            else:
                rtx.payloadType = self._free_payload_type(codec.payloadType)
                self.payload_types[rtx.payloadType] = copy.deepcopy(rtx)
            base = next(i for i, c in enumerate(out) if c.payloadType == apt)
            out.insert(base + 1, rtx)
        return out

    def place_extensions(
        self, extensions: list[RTCRtpHeaderExtensionParameters]
    ) -> list[RTCRtpHeaderExtensionParameters]:
        """A new m-line's extensions with the ids the connection already uses for their URIs."""
        out = []
        for ext in extensions:
            ext_id = self.extension_ids.get(ext.uri)
            if ext_id is None:
                taken = self._ids_taken()
                ext_id = (
                    ext.id
                    if ext.id not in taken
                    else next(
                        (
                            i
                            for i in range(MIN_EXTENSION_ID, MAX_EXTENSION_ID + 1)
                            if i not in taken
                        ),
                        None,
                    )
                )
                if ext_id is None:
                    continue  # no id left: do without this extension
                self.extension_ids[ext.uri] = ext_id
            out.append(RTCRtpHeaderExtensionParameters(id=ext_id, uri=ext.uri))
        return out


async def create_offer(
    pc: RTCPeerConnection, numbers: BundleNumbers, *, transport_cc: bool = False
) -> RTCSessionDescription:
    """``pc.createOffer()`` that keeps every negotiated m-line as negotiated.

    m-lines already negotiated keep their codecs (payload types, order: the first is what a
    browser answerer sends) and header-extension ids; new m-lines are numbered by ``numbers``
    and, with ``transport_cc``, offer transport-wide congestion control as well.
    """
    kept = {
        id(t): (list(t._codecs), list(t._headerExtensions))
        for t in pc.getTransceivers()
        if t.mid is not None and t._codecs
    }
    offer = await pc.createOffer()  # resets every transceiver to aiortc's defaults
    by_index = {t._get_mline_index(): t for t in pc.getTransceivers()}
    description = _sdp.SessionDescription.parse(offer.sdp)
    for i, media in enumerate(description.media):
        if media.kind not in ("audio", "video"):
            continue
        t = by_index.get(i)
        if t is None:
            raise SeamError(f"no transceiver for m-line {i} of aiortc's offer")
        if id(t) in kept:
            t._codecs, t._headerExtensions = kept[id(t)]
        else:
            raise_h264_level(t)
            codecs, extensions = list(t._codecs), list(t._headerExtensions)
            if transport_cc:
                codecs = [_with_transport_cc(c) for c in codecs]
                extensions.append(RTCRtpHeaderExtensionParameters(id=5, uri=TRANSPORT_CC_URI))
            t._codecs = numbers.place_codecs(codecs)
            t._headerExtensions = numbers.place_extensions(extensions)
        media.fmt = [c.payloadType for c in t._codecs]
        media.rtp.codecs = list(t._codecs)
        media.rtp.headerExtensions = list(t._headerExtensions)
        _match_rtx_ssrc(media, t)
    return RTCSessionDescription(sdp=str(description), type="offer")


def _match_rtx_ssrc(media: Any, t: RTCRtpTransceiver) -> None:
    """aiortc lists the RTX SSRC (and its FID group) only with an RTX codec."""
    has_rtx = any(_is_rtx(c) for c in media.rtp.codecs)
    if not media.ssrc:
        return
    if has_rtx and len(media.ssrc) == 1:
        ssrc, rtx_ssrc = t.sender._ssrc, t.sender._rtx_ssrc
        media.ssrc.append(_sdp.SsrcDescription(ssrc=rtx_ssrc, cname=media.ssrc[0].cname))
        media.ssrc_group = [_sdp.GroupDescription(semantic="FID", items=[ssrc, rtx_ssrc])]
    elif not has_rtx and len(media.ssrc) > 1:
        del media.ssrc[1:]
        media.ssrc_group = []


# --- transport-wide congestion control (publishers) ---------------------------------

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"
_TRANSPORT_CC = RTCRtcpFeedback(type="transport-cc")
_GOOG_REMB = RTCRtcpFeedback(type="goog-remb")


def _with_transport_cc(codec: RTCRtpCodecParameters) -> RTCRtpCodecParameters:
    if _is_rtx(codec) or _TRANSPORT_CC in codec.rtcpFeedback:
        return codec
    codec = copy.deepcopy(codec)
    codec.rtcpFeedback = [*codec.rtcpFeedback, _TRANSPORT_CC]
    return codec


def negotiated_transport_cc(transceiver: RTCRtpTransceiver) -> int | None:
    """The transport-cc extension id a transceiver negotiated, if it did."""
    return next((e.id for e in transceiver._headerExtensions if e.uri == TRANSPORT_CC_URI), None)


def answer_transport_cc(transceiver: RTCRtpTransceiver, remote_media: Any) -> bool:
    """Answer transport-cc on a receiving m-line whose offer (``remote_media``, a parsed
    m-line) has it: the extension with the client's id, ``transport-cc`` instead of
    ``goog-remb`` on every codec the client lists it for. Whether it is answered."""
    ext = next((e for e in remote_media.rtp.headerExtensions if e.uri == TRANSPORT_CC_URI), None)
    offered = {
        c.payloadType
        for c in remote_media.rtp.codecs
        if any(fb.type == "transport-cc" for fb in c.rtcpFeedback)
    }
    if ext is None or not offered:
        return False
    if all(e.uri != TRANSPORT_CC_URI for e in transceiver._headerExtensions):
        transceiver._headerExtensions = [
            *transceiver._headerExtensions,
            RTCRtpHeaderExtensionParameters(id=ext.id, uri=TRANSPORT_CC_URI),
        ]
    codecs = []
    for codec in transceiver._codecs:
        if codec.payloadType in offered and not _is_rtx(codec):
            codec = copy.deepcopy(codec)
            feedback = [fb for fb in codec.rtcpFeedback if fb != _GOOG_REMB]
            if _TRANSPORT_CC not in feedback:
                feedback.append(_TRANSPORT_CC)
            codec.rtcpFeedback = feedback
        codecs.append(codec)
    transceiver._codecs = codecs
    return True


TransportPacketObserver = Callable[[RtpPacket, int], None]
"""``(parsed RTP packet, arrival time in µs on CLOCK_REALTIME)``."""


# Linux's SO_TIMESTAMPNS (and its control message type): the kernel stamps each datagram
# when it reaches the socket, so a busy event loop does not read as queueing delay.
_SO_TIMESTAMPNS = 35
_DATAGRAM_TRANSPORT: Any = vars(_selector_events).get("_SelectorDatagramTransport")


# A socket gives at most this many datagrams per event-loop turn (others get their turn).
MAX_DATAGRAMS_PER_WAKEUP = 64


class _SocketReader:
    """Reads one UDP socket of an ICE connection in place of asyncio's reader.

    asyncio reads one datagram per wakeup: when the loop is busy (each turn takes ~10 ms of
    other rooms' work) a publisher's 200 packets/s pile up in the socket for seconds, ICE
    consent checks wait behind them and the connection fails (measured: a teacher's ICE
    failed 10 s into a lesson on an SFU loop half busy). This one drains what is there, up
    to ``MAX_DATAGRAMS_PER_WAKEUP`` per turn, and can hand on the kernel's arrival time."""

    def __init__(self, protocol: Any, transport: Any) -> None:
        self.protocol = protocol
        self.transport = transport
        self.sock = transport._sock
        self.stamps: _ArrivalStamps | None = None
        self._ancillary = 0
        reader = transport._loop._selector.get_key(transport._sock_fd).data[0]
        if reader is None or reader._callback != transport._read_ready:
            raise ValueError("the socket's reader is not the transport's")
        reader._callback = self.read_ready
        transport._sanke_reader = self

    def timestamp_into(self, stamps: _ArrivalStamps) -> None:
        self.sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        self._ancillary = socket.CMSG_SPACE(16)
        self.stamps = stamps

    def read_ready(self) -> None:
        transport, protocol, stamps = self.transport, self.protocol, self.stamps
        for _ in range(MAX_DATAGRAMS_PER_WAKEUP):
            if transport._conn_lost:
                return
            try:
                data, anc, _, addr = self.sock.recvmsg(transport.max_size, self._ancillary)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                protocol.error_received(exc)
                return
            if stamps is None:
                protocol.datagram_received(data, addr)
                continue
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    seconds, nanos = struct.unpack_from("@qq", value)
                    stamps.kernel_ts = seconds * 1_000_000 + nanos // 1000
            try:
                protocol.datagram_received(data, addr)
            finally:
                stamps.kernel_ts = None


def _socket_readers(connection: aioice.Connection) -> list[_SocketReader]:
    """The connection's UDP sockets, each read by a ``_SocketReader`` (installed once)."""
    readers = []
    for protocol in list(connection._protocols):
        transport = getattr(protocol, "transport", None)
        if _DATAGRAM_TRANSPORT is None or not isinstance(transport, _DATAGRAM_TRANSPORT):
            continue
        reader = getattr(transport, "_sanke_reader", None)
        if reader is None:
            try:
                reader = _SocketReader(protocol, transport)
            except (OSError, AttributeError, KeyError, ValueError):
                continue  # asyncio's own reader it stays, for this socket
        readers.append(reader)
    return readers


def drain_sockets(dtls: Any) -> bool:
    """Read the connection's sockets with ``_SocketReader`` (once its sockets exist: when
    data first flows). Installed once per transport (False if it already was)."""
    if getattr(dtls, "_sanke_draining", False):
        return False
    ice = dtls.transport
    connection = ice._connection
    receive = ice._recv
    known = [-1]

    async def recv() -> bytes:
        data: bytes = await receive()
        if len(connection._protocols) != known[0]:
            known[0] = len(connection._protocols)
            _socket_readers(connection)
        return data

    ice._recv = recv
    dtls._sanke_draining = True
    return True


class _Arrived(bytes):
    """A datagram with the time it arrived (µs, CLOCK_REALTIME)."""

    arrival_us: int


class _ArrivalStamps:
    """Stamps every datagram aioice queues for the DTLS transport with its arrival time:
    the kernel's where the socket supports it, else when the event loop reads it."""

    def __init__(self, connection: aioice.Connection) -> None:
        self.connection = connection
        self.kernel_ts: int | None = None  # set just before a stamped datagram is handled
        self.kernel_sockets = 0
        self._seen: set[int] = set()
        self._known = 0  # sockets the connection had when last looked at
        queue = connection._queue

        def data_received(data: bytes, component: int) -> None:
            stamped = _Arrived(data)
            ts = self.kernel_ts
            stamped.arrival_us = ts if ts is not None else time.time_ns() // 1000
            queue.put_nowait((stamped, component))

        connection.data_received = data_received  # type: ignore[method-assign]

    def use_kernel_timestamps(self) -> None:
        """Switch the connection's UDP sockets to kernel timestamps (once each). Called per
        packet: it looks again only when the connection has another socket."""
        if len(self.connection._protocols) == self._known:
            return
        self._known = len(self.connection._protocols)
        for reader in _socket_readers(self.connection):
            if id(reader) in self._seen:
                continue
            self._seen.add(id(reader))
            try:
                reader.timestamp_into(self)
                self.kernel_sockets += 1
            except OSError:
                pass  # the event loop's time it is, for this socket


def tap_transport_rtp(dtls: Any, observer: TransportPacketObserver) -> bool:
    """Hand every RTP packet the DTLS transport receives (media, RTX, padding) to
    ``observer`` with the time its datagram arrived (µs, CLOCK_REALTIME), before aiortc
    routes it. Installed once per transport (False if it already was)."""
    if getattr(dtls, "_sanke_tapped", False):
        return False
    ice = dtls.transport
    stamps = _ArrivalStamps(ice._connection)
    receive = ice._recv
    last = [0]

    async def recv() -> bytes:
        data: bytes = await receive()
        stamps.use_kernel_timestamps()  # the sockets exist once data flows
        last[0] = getattr(data, "arrival_us", 0) or time.time_ns() // 1000
        return data

    ice._recv = recv
    router = dtls._rtp_router
    route = router.route_rtp

    def route_rtp(packet: RtpPacket) -> Any:
        observer(packet, last[0])
        return route(packet)

    router.route_rtp = route_rtp
    dtls._sanke_tapped = True
    dtls._sanke_stamps = stamps
    return True


def selected_pair_hosts(dtls: Any) -> tuple[str, str] | None:
    """(local, remote) IP address of the candidate pair media flows on (RTP component),
    None before ICE has nominated one."""
    connection = dtls.transport._connection
    pair = connection._nominated.get(1)
    if pair is None:
        return None
    return str(pair.local_candidate.host), str(pair.remote_candidate.host)


def transport_bytes(dtls: Any) -> tuple[int, int]:
    """(sent, received) bytes of the DTLS transport (media, RTCP and DTLS), as its stats say."""
    return int(getattr(dtls, _DTLS + "tx_bytes", 0)), int(getattr(dtls, _DTLS + "rx_bytes", 0))


def kernel_timestamped_sockets(dtls: Any) -> int:
    """How many of the transport's UDP sockets deliver kernel arrival times."""
    stamps = getattr(dtls, "_sanke_stamps", None)
    return int(stamps.kernel_sockets) if stamps is not None else 0


def route_rtx_and_mid(dtls: Any) -> bool:
    """Route RTP that aiortc would drop. aiortc routes a packet by its SSRC, else by its
    payload type when exactly one receiver has it; it never registers RTX SSRCs and never
    reads the MID. With two video m-lines on one transport (the camera's two layers, a
    screen share) they share the RTX payload type, so every retransmission a publisher
    sends was dropped and no lost packet was ever recovered. A packet aiortc cannot place
    goes to the receiver whose RTX SSRC it is, or whose MID it carries (installed once)."""
    if getattr(dtls, "_sanke_routing", False):
        return False
    router = dtls._rtp_router
    route = router.route_rtp

    def route_rtp(packet: RtpPacket) -> Any:
        receiver = route(packet)
        if receiver is not None:
            return receiver
        for candidate in router.receivers:
            if packet.ssrc in getattr(candidate, _RECV_RTX, {}):
                router.ssrc_table[packet.ssrc] = candidate
                return candidate
        mid = packet.extensions.mid
        candidate = router.mid_table.get(mid) if mid is not None else None
        if candidate is not None:
            router.ssrc_table[packet.ssrc] = candidate
        return candidate

    router.route_rtp = route_rtp
    dtls._sanke_routing = True
    return True


def transport_of(transceiver: RTCRtpTransceiver) -> Any:
    """The DTLS transport a transceiver's media runs on (one per connection with BUNDLE)."""
    return transceiver.receiver.transport


async def send_rtcp(dtls: Any, data: bytes) -> None:
    """Send one raw RTCP packet (SRTCP-protected) on a connected DTLS transport."""
    await dtls._send_rtp(data)


# --- ICE: where the SFU sends connectivity checks -----------------------------------


class _IceGuard:
    """Sits in one aioice ``Connection`` (instance attributes over its methods).

    A signalled remote candidate (offer or trickle) outside the policy is held back: never
    paired, never checked, an mDNS name never resolved. A check arriving from a refused
    address is dropped unanswered. No check is ever started towards a pair whose remote
    address the policy did not allow and the client did not prove (peer-reflexive). While
    candidates are held back, the client's end-of-candidates waits ``prflx_wait_seconds``
    for its checks: aioice would otherwise fail a check list that is still empty."""

    def __init__(self, connection: aioice.Connection, policy: IcePolicy) -> None:
        self.connection = connection
        self.policy = policy
        self.signalled = 0
        self.held = 0
        self._add = connection.add_remote_candidate
        self._request = connection.request_received
        self._check = connection.check_start
        self._end: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # instance attributes: aioice calls these through self
        setattr(connection, "add_remote_candidate", self.add_remote_candidate)  # noqa: B010
        setattr(connection, "request_received", self.request_received)  # noqa: B010
        setattr(connection, "check_start", self.check_start)  # noqa: B010

    async def add_remote_candidate(self, candidate: Any) -> None:
        if candidate is None:
            if self.held and not self.connection._nominated:
                if self._end is None:
                    loop = asyncio.get_running_loop()
                    self._end = loop.call_later(self.policy.prflx_wait_seconds, self._end_now)
                return
            await self._add(None)
            return
        self.signalled += 1
        if self.signalled > self.policy.max_remote_candidates or not self.policy.may_check(
            candidate.host, candidate.port
        ):
            self.held += 1
            return
        await self._add(candidate)

    def _end_now(self) -> None:
        task = asyncio.ensure_future(self._add(None))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def request_received(self, message: Any, addr: tuple[str, int], protocol: Any) -> None:
        if self.policy.refuses(addr[0]):
            return
        known = any(
            c._network_host == addr[0] and c.port == addr[1]
            for c in self.connection._remote_candidates
        )
        if not known and len(self.connection._remote_candidates) >= (
            self.policy.max_remote_candidates
        ):
            return  # no more peer-reflexive addresses to answer and check back
        self._request(message, addr, protocol)

    async def check_start(self, pair: Any) -> None:
        host, port = pair.remote_addr
        proven = pair.remote_candidate.type == "prflx"
        if self.policy.refuses(host) or not (proven or self.policy.may_check(host, port)):
            self.connection.check_state(pair, aioice.ice.CandidatePair.State.FAILED)
            self.connection.check_complete(pair)
            return
        await self._check(pair)


def guard_ice(pc: RTCPeerConnection, policy: IcePolicy) -> None:
    """Put an ``_IceGuard`` in every ICE connection ``pc`` creates (before any remote
    description adds candidates: aiortc creates a transceiver's transports, then adds the
    description's candidates to them)."""
    create = pc._RTCPeerConnection__createDtlsTransport  # type: ignore[attr-defined]

    def create_guarded() -> Any:
        dtls = create()
        _IceGuard(dtls.transport._connection, policy)
        return dtls

    pc._RTCPeerConnection__createDtlsTransport = create_guarded  # type: ignore[attr-defined]


# --- transport-wide congestion control (subscribers) --------------------------------


def hook_transport_send(dtls: Any, hooks: SendHooks) -> bool:
    """Route every packet the transport sends, by aiortc or by a :class:`FastSender`,
    through ``hooks`` (pacing, transport-wide sequence numbers; installed once)."""
    return _send.hook_transport_send(dtls, hooks)


def observe_transport_rtcp(dtls: Any, observer: Callable[[bytes], None]) -> bool:
    """Hand every RTCP compound the transport receives (decrypted) to ``observer`` first:
    aiortc parses a transport-cc feedback as if it were a NACK and drops its content."""
    if getattr(dtls, "_sanke_rtcp_observer", False):
        return False
    handle = dtls._handle_rtcp_data

    async def handle_rtcp_data(data: bytes) -> None:
        observer(data)
        await handle(data)

    dtls._handle_rtcp_data = handle_rtcp_data
    dtls._sanke_rtcp_observer = True
    return True


async def retransmit(sender: RTCRtpSender, sequence_number: int) -> None:
    """Send a packet from the sender's history again (on its RTX stream when negotiated)."""
    await sender._retransmit(sequence_number)


async def send_padding(sender: RTCRtpSender, size: int, timestamp: int) -> bool:
    """A padding-only packet of ``size`` bytes (≤ 255) on the sender's RTX stream; False
    when the sender has no RTX stream or is not running."""
    rtx_pt = getattr(sender, _S + "rtx_payload_type", None)
    transport = sender.transport
    if rtx_pt is None or transport is None or transport.state != "connected":
        return False
    packet = RtpPacket(
        payload_type=rtx_pt,
        sequence_number=getattr(sender, _S + "rtx_sequence_number"),
        timestamp=timestamp,
        ssrc=sender._rtx_ssrc,
    )
    setattr(sender, _S + "rtx_sequence_number", (packet.sequence_number + 1) & 0xFFFF)
    packet.extensions.mid = getattr(sender, _S + "mid")
    packet.padding_size = max(1, min(255, size))
    await transport._send_rtp(packet.serialize(getattr(sender, _S + "rtp_header_extensions_map")))
    return True


# --- video: H264 levels -------------------------------------------------------------

H264_LEVEL_4_2 = 0x2A  # 1080p at 60 fps (level 3.1, aiortc's only one, stops at 720p30)


def _is_h264_below(codec: RTCRtpCodecParameters, plid: object, level: int) -> bool:
    return (
        codec.mimeType.lower() == "video/h264"
        and isinstance(plid, str)
        and len(plid) == 6
        and int(plid[4:], 16) < level
    )


def answer_start_bitrate(transceiver: RTCRtpTransceiver, kbps: int) -> None:
    """Tell a Chromium publisher where its bandwidth estimate starts (libwebrtc reads
    ``x-google-start-bitrate`` from the answer's fmtp; its own default is 300 kbps)."""
    codecs = []
    for codec in transceiver._codecs:
        if codec.mimeType.lower() in ("video/h264", "video/vp8"):
            codec = copy.deepcopy(codec)
            codec.parameters = {**codec.parameters, "x-google-start-bitrate": kbps}
        codecs.append(codec)
    transceiver._codecs = codecs


def raise_h264_level(transceiver: RTCRtpTransceiver, level: int = H264_LEVEL_4_2) -> None:
    """Declare H264 at ``level`` (same profile) on a transceiver's codecs: the SFU forwards
    what it gets without decoding, so it receives and sends any level its peers do (and
    with ``level-asymmetry-allowed`` each side's level is what it may be sent)."""
    codecs = []
    for codec in transceiver._codecs:
        plid = codec.parameters.get("profile-level-id")
        if _is_h264_below(codec, plid, level):
            codec = copy.deepcopy(codec)
            codec.parameters = {
                **codec.parameters,
                "profile-level-id": f"{plid}"[:4] + f"{level:02x}",
            }
        codecs.append(codec)
    transceiver._codecs = codecs


# --- audio: Opus in-band FEC and DTX ----------------------------------------------

OPUS_FEC_DTX = {"useinbandfec": 1, "usedtx": 1}


def answer_opus_fec_dtx(transceiver: RTCRtpTransceiver) -> bool:
    """Ask the publisher for Opus in-band FEC and DTX (Chromium enables both only when the
    answer's fmtp says the receiver wants them). Whether an Opus codec was there."""
    codecs, found = [], False
    for codec in transceiver._codecs:
        if codec.mimeType.lower() == "audio/opus":
            codec = copy.deepcopy(codec)
            codec.parameters = {**codec.parameters, **OPUS_FEC_DTX}
            found = True
        codecs.append(codec)
    transceiver._codecs = codecs
    return found


def rewrite_reported_loss(receiver: RTCRtpReceiver, fraction_lost: Callable[[int], int]) -> None:
    """The loss (of 256) the receiver's reports tell the publisher: ``fraction_lost`` gets
    aiortc's figure and returns the one to send. aiortc counts a packet recovered by
    retransmission as lost (it arrives on the RTX stream); the publisher's loss-based
    estimate would then cut its rate for losses that cost nothing."""
    send = receiver._send_rtcp

    async def send_rtcp(packet: Any) -> None:
        if isinstance(packet, RtcpRrPacket):
            value = None
            for report in packet.reports:
                if value is None:
                    value = max(0, min(255, fraction_lost(report.fraction_lost)))
                report.fraction_lost = value
        await send(packet)

    receiver._send_rtcp = send_rtcp  # type: ignore[method-assign]


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


NackFilter = Callable[[list[int]], list[int]]
"""The sequence numbers of a NACK the sender should retransmit now."""


def observe_sender_rtcp(
    sender: RTCRtpSender, observer: RtcpObserver, nack_filter: NackFilter | None = None
) -> None:
    """The SFU sees every RTCP packet for the sender before aiortc does; ``nack_filter``
    decides which NACKed packets aiortc retransmits (aiortc resends every one each time it
    is asked: a subscriber that asks again before the first copy can arrive, on a link the
    losses come from congestion, gets a retransmission storm)."""
    original: _RtcpHandler = sender._handle_rtcp_packet
    ssrc = sender_ssrc(sender)

    async def handle(packet: Any) -> None:
        for event in _rtcp_events(packet, ssrc):
            observer(event)
        if (
            nack_filter is not None
            and isinstance(packet, RtcpRtpfbPacket)
            and packet.fmt == RTCP_RTPFB_NACK
        ):
            lost = nack_filter(list(packet.lost))
            if not lost:
                return
            packet = RtcpRtpfbPacket(fmt=packet.fmt, ssrc=packet.ssrc, media_ssrc=packet.media_ssrc)
            packet.lost = lost
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


# --- REMB: aiortc's per-receiver one off, one of our own per transport ------------


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
    if aioice.__version__ != AIOICE_VERSION:
        problems.append(
            f"aioice {aioice.__version__} installed, seams verified on {AIOICE_VERSION}"
        )
    recv_src = inspect.getsource(_rtcrtpreceiver.RTCRtpReceiver)
    for needle in (
        "self.__decoder_queue: queue.Queue = queue.Queue()",
        "self.__decoder_queue.put((codec, encoded_frame))",
        "if encoded_frame is not None and self.__decoder_thread:",
        "self.__remote_bitrate_estimator = RemoteBitrateEstimator()",
        "self.__jitter_buffer = JitterBuffer(capacity=16, prefetch=4)",
        "self.__jitter_buffer = JitterBuffer(capacity=512, is_video=True)",
        "self.__nack_generator = NackGenerator()",
        "pli_flag, encoded_frame = self.__jitter_buffer.add(packet)",
        "packet._data = depayload(codec, packet.payload)",
        "async def _send_rtcp_nack(self, media_ssrc: int, lost: list[int]) -> None:",
        "self.__codecs: dict[int, RTCRtpCodecParameters] = {}",
        "def _send_rtcp_pli(self, media_ssrc: int)",
        "packet = RtcpRrPacket(ssrc=self.__rtcp_ssrc, reports=reports)",
        "await self._send_rtcp(packet)",
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
        "async def _retransmit(self, sequence_number: int) -> None:",
        "for seq in packet.lost:",
        "self.__rtt = RTT_ALPHA * self.__rtt + (1 - RTT_ALPHA) * rtt",
        "self.__rtx_payload_type: Optional[int] = None",
        "self.__rtx_sequence_number = random_sequence_number()",
        "sequence_number=self.__rtx_sequence_number,",
        "packet_bytes = packet.serialize(self.__rtp_header_extensions_map)",
        "await self.transport._send_rtp(packet_bytes)",
        "packet.extensions.mid = self.__mid",
        "if self.__encoder is None:",
        "if isinstance(data, Frame):",
        "payloads, timestamp = self.__encoder.pack(data)",
        "self.__rtp_history[packet.sequence_number % RTP_HISTORY_SIZE]",
        "async def _handle_rtcp_packet(self, packet: AnyRtcpPacket)",
        "self._stream_id = str(uuid.uuid4())",
    ):
        if needle not in send_src:
            problems.append(f"RTCRtpSender lost: {needle}")
    offer_src = inspect.getsource(_rtcpeerconnection.RTCPeerConnection)
    for needle in (
        "transceiver._codecs = filter_preferred_codecs(",
        "transceiver._headerExtensions = HEADER_EXTENSIONS[transceiver.kind][:]",
        "transceiver._set_mline_index(i)",
        "codecs=transceiver._codecs,",
        "headerExtensions=transceiver._headerExtensions,",
        "description = sdp.SessionDescription.parse(sessionDescription.sdp)",
    ):
        if needle not in offer_src:
            problems.append(f"RTCPeerConnection lost: {needle}")
    media_src = inspect.getsource(_rtcpeerconnection.create_media_description_for_transceiver)
    if "fmt=[c.payloadType for c in transceiver._codecs]" not in media_src:
        problems.append("offers no longer list transceiver._codecs")
    dtls_src = inspect.getsource(_rtcdtlstransport.RTCDtlsTransport)
    if "self._rtp_header_extensions_map.configure(parameters)" not in dtls_src:
        problems.append("RTCDtlsTransport no longer keeps one header-extension map")
    router_src = inspect.getsource(_rtcdtlstransport.RtpRouter)
    for needle in (
        "def route_rtp(self, packet: RtpPacket) -> Optional[RtpReceiver]:",
        "self.mid_table[mid] = receiver",
        "self.ssrc_table[ssrc] = receiver",
        "self.receivers.add(receiver)",
    ):
        if needle not in router_src:
            problems.append(f"RtpRouter lost: {needle}")
    for needle in (
        "data = await self.transport._recv()",
        "packet = RtpPacket.parse(data, self._rtp_header_extensions_map)",
        "await self._handle_rtcp_data(data)",
        "receiver = self._rtp_router.route_rtp(packet)",
        "self._rtp_router = RtpRouter()",
        "async def _send_rtp(self, data: bytes) -> None:",
        "self.__tx_bytes += len(data)",
        "self.__rx_bytes += len(data)",
    ):
        if needle not in dtls_src:
            problems.append(f"RTCDtlsTransport lost: {needle}")
    for needle in (
        "def __createDtlsTransport(self) -> RTCDtlsTransport:",
        "dtlsTransport = self.__createDtlsTransport()",
        "iceTransport = RTCIceTransport(iceGatherer)",
    ):
        if needle not in offer_src:
            problems.append(f"RTCPeerConnection lost: {needle}")
    ice_transport_src = inspect.getsource(_rtcicetransport.RTCIceTransport)
    if ice_transport_src.count("await self._connection.add_remote_candidate(") != 2:
        problems.append("RTCIceTransport no longer adds remote candidates to its connection")
    for needle in (
        "pair.task = asyncio.create_task(self.check_start(pair))",
        "self._remote_candidates: list[Candidate] = []",
        "self._nominated: dict[int, CandidatePair] = {}",
        "def check_state(self, pair: CandidatePair, state: CandidatePair.State) -> None:",
        "def check_complete(self, pair: CandidatePair) -> None:",
        "c._network_host == addr[0] and c.port == addr[1]",
    ):
        if needle not in inspect.getsource(aioice.Connection):
            problems.append(f"aioice Connection lost: {needle}")
    if "self.receiver.request_received(message, addr, self)" not in inspect.getsource(
        aioice.ice.StunProtocol
    ):
        problems.append("aioice StunProtocol no longer hands requests to request_received")
    if "self._recv = self._connection.recv" not in inspect.getsource(
        _rtcicetransport.RTCIceTransport
    ):
        problems.append("RTCIceTransport no longer receives through self._recv")
    ice_src = inspect.getsource(aioice.Connection)
    for needle in (
        "def data_received(self, data: bytes, component: int) -> None:\n"
        "        self._queue.put_nowait((data, component))",
        "result = await self._queue.get()",
        "self._nominated: dict[int, CandidatePair] = {}",
    ):
        if needle not in ice_src:
            problems.append(f"aioice Connection lost: {needle.splitlines()[0]}")
    if "self.receiver.data_received(data, self.local_candidate.component)" not in (
        inspect.getsource(aioice.ice.StunProtocol)
    ):
        problems.append("aioice StunProtocol no longer hands data to data_received")
    read_src = inspect.getsource(_DATAGRAM_TRANSPORT._read_ready) if _DATAGRAM_TRANSPORT else ""
    if "self._protocol.datagram_received(data, addr)" not in read_src:
        problems.append("asyncio's datagram transport no longer reads in _read_ready")
    if "self.__ids.transport_sequence_number = ext.id" not in inspect.getsource(
        aiortc.rtp.HeaderExtensionsMap
    ):
        problems.append("aiortc no longer parses the transport-wide sequence number")
    if not callable(getattr(_rtcpeerconnection, "is_codec_compatible", None)):
        problems.append("aiortc.rtcpeerconnection.is_codec_compatible is gone")
    if (
        "common = filter_preferred_codecs(\n                    find_common_codecs(CODECS[media.kind], media.rtp.codecs),"
        not in (offer_src)
        or set(_CODECS) != {"audio", "video"}
    ):
        problems.append("remote descriptions no longer negotiate with find_common_codecs(CODECS)")
    for cls, name in (
        (H264Encoder, "_packetize"),
        (H264Encoder, "_split_bitstream"),
        (Vp8Encoder, "_packetize"),
        (RTCRtpTransceiver, "_codecs"),
        (RTCRtpTransceiver, "_headerExtensions"),
        (RTCRtpTransceiver, "_get_mline_index"),
    ):
        if not hasattr(cls, name) and name not in inspect.getsource(cls):
            problems.append(f"{cls.__name__}.{name} is gone")
    problems += _send.seam_problems()
    if problems:
        raise SeamError("aiortc internals moved: " + "; ".join(problems))
