"""The consumer send path without aiortc's per-packet layers (aiortc 1.16.0, aioice 0.13.0).

aiortc's ``RTCRtpSender._run_rtp`` awaits its track once per frame and, per packet, builds
an ``RtpPacket``, reads the NTP clock twice through ``datetime``, serializes it with the
generic header-extension code and awaits ``RTCDtlsTransport._send_rtp`` → aioice
``Connection.send`` → ``sendto`` → ``StunProtocol.send_data`` before ``sendto`` on the UDP
transport. At 32 subscribers that layering cost more than the send itself.

:class:`FastSender` takes over a consumer sender's RTP loop (``_run_rtp``) and its
retransmissions (``_retransmit``): when its source queues a frame it sends the frame's
packets at once, in one synchronous loop, from a header prebuilt per sender (aiortc's own
serializer builds it once: the same bytes, extension ids and order), with the clock read
once per batch. :class:`Wire` sends a packet on a DTLS transport without awaiting: SRTP
protection, then ``sendto`` on the nominated candidate pair's UDP transport, counted as
``RTCDtlsTransport`` counts them. aioice keeps everything else (consent checks and
keepalives run on the same pair), a pair that is not a plain UDP one (TURN) is sent to
through aiortc's own path. What aiortc keeps reading stays its own: the packet and octet
counts and the NTP/RTP timestamps of the last packet (RTCP sender reports, ``getStats``)
and the RTX sequence number (padding probes).

A transport's :class:`SendHooks` (transport-wide sequence numbers, pacing:
:mod:`media.downlink`) see every packet either path sends: the fast path calls them
itself, and aiortc's ``_send_rtp`` (RTCP, padding, retransmissions) goes through them as
before. ``check_seams()`` (:func:`seam_problems` here) verifies every internal used.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import struct
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import aioice
from aiortc import RTCRtpSender
from aiortc import rtcdtlstransport as _rtcdtlstransport
from aiortc import rtcicetransport as _rtcicetransport
from aiortc import rtcrtpsender as _rtcrtpsender
from aiortc import rtp as _rtp
from aiortc.mediastreams import MediaStreamError
from aiortc.rtcdtlstransport import RTCDtlsTransport, State
from aiortc.rtp import RTP_HISTORY_SIZE, RtpPacket
from aiortc.utils import random32

log = logging.getLogger(__name__)

_S = "_RTCRtpSender__"
_TX_BYTES, _TX_PACKETS = "_RTCDtlsTransport__tx_bytes", "_RTCDtlsTransport__tx_packets"
_PACKET_COUNT, _OCTET_COUNT = _S + "packet_count", _S + "octet_count"
_NTP_TIMESTAMP, _RTP_TIMESTAMP = _S + "ntp_timestamp", _S + "rtp_timestamp"
_NTP_EPOCH_OFFSET_US = 2_208_988_800 * 1_000_000  # 1900-01-01 to 1970-01-01
_HEAD = struct.Struct("!BBHI")  # first byte, marker + payload type, sequence, timestamp
_SEQ = struct.Struct("!H")
_U32 = struct.Struct("!I")


def ntp_now() -> int:
    """aiortc's ``clock.current_ntp_time()`` (64-bit NTP, µs resolution) without ``datetime``."""
    us = time.time_ns() // 1000 + _NTP_EPOCH_OFFSET_US
    return ((us // 1_000_000) << 32) | (((us % 1_000_000) << 32) // 1_000_000)


class OutFrame(NamedTuple):
    """What a consumer track hands its sender: payloads already packetized, a timestamp."""

    payloads: list[bytes]
    timestamp: int


class FrameSource(Protocol):
    """What a :class:`FastSender` sends from (the consumer's track)."""

    on_ready: Callable[[], None] | None  # set by the sender: call it when a frame is queued

    def poll(self) -> OutFrame | None:
        """The next frame to send, None when none is queued; raises ``MediaStreamError``
        once the source has ended."""


class SendHooks(Protocol):
    """What a transport's downlink control does to every packet it sends (RTP or RTCP)."""

    def delay(self, data: bytes) -> float:
        """Seconds the packet must wait for the pacer (its budget is taken now); 0 to go."""

    def stamp(self, data: bytes) -> bytes:
        """The packet as it goes out (an RTP packet with its transport-wide sequence number)."""


# --- the transport: protect and send without awaiting -----------------------------


class Wire:
    """One DTLS transport's synchronous send path (one per transport, :func:`wire_of`)."""

    def __init__(self, dtls: RTCDtlsTransport) -> None:
        self.dtls = dtls
        self.hooks: SendHooks | None = None
        # aioice keeps one dict of nominated pairs per connection (entries come and go)
        self._nominated: dict[int, Any] = dtls.transport._connection._nominated
        self._pair: Any = None
        self._udp: asyncio.DatagramTransport | None = None
        self._addr: tuple[str, int] = ("", 0)
        self._bytes = self._packets = 0  # not yet added to the transport's counters

    def send(self, data: bytes) -> bool:
        """Protect and send an RTP packet now (hooks already applied). False when the
        nominated pair is not a plain UDP one: send it with :meth:`send_async` instead.
        Raises ``ConnectionError`` as ``RTCDtlsTransport._send_rtp`` does."""
        dtls = self.dtls
        if dtls._state != State.CONNECTED:
            raise ConnectionError("Cannot send encrypted RTP, not connected")
        pair = self._nominated.get(1)
        if pair is not self._pair:
            if pair is None:
                raise ConnectionError("Cannot send data, not connected")
            self._pair = pair
            protocol = pair.protocol
            plain = type(protocol) is aioice.ice.StunProtocol
            self._udp = protocol.transport if plain else None
            self._addr = pair.remote_addr
        udp = self._udp
        if udp is None:
            return False
        data = dtls._tx_srtp.protect(data)
        udp.sendto(data, self._addr)
        self._bytes += len(data)
        self._packets += 1
        return True

    def flush(self) -> None:
        """Add what was sent to the transport's counters (its ``getStats``)."""
        if self._packets:
            dtls = self.dtls
            setattr(dtls, _TX_BYTES, getattr(dtls, _TX_BYTES) + self._bytes)
            setattr(dtls, _TX_PACKETS, getattr(dtls, _TX_PACKETS) + self._packets)
            self._bytes = self._packets = 0

    async def send_async(self, data: bytes) -> None:
        """aiortc's own send (protect, aioice), without the hooks: ``data`` went through them."""
        await RTCDtlsTransport._send_rtp(self.dtls, data)


def wire_of(dtls: RTCDtlsTransport) -> Wire:
    wire: Wire | None = getattr(dtls, "_sanke_wire", None)
    if wire is None:
        wire = Wire(dtls)
        dtls._sanke_wire = wire  # type: ignore[attr-defined]
    return wire


def hook_transport_send(dtls: RTCDtlsTransport, hooks: SendHooks) -> bool:
    """Every packet the transport sends goes through ``hooks``: the fast path's and, by a
    wrapped ``_send_rtp``, aiortc's own (installed once; False if it already was)."""
    wire = wire_of(dtls)
    if wire.hooks is not None:
        return False
    wire.hooks = hooks
    send = dtls._send_rtp

    async def send_rtp(data: bytes) -> None:
        wait = hooks.delay(data)
        if wait > 0:
            await asyncio.sleep(wait)
        await send(hooks.stamp(data))

    dtls._send_rtp = send_rtp  # type: ignore[method-assign]
    return True


# --- the sender: a frame's packets in one loop ------------------------------------


class _Template:
    """A sender's RTP header as aiortc serializes it (mid and abs-send-time extensions),
    split around the fields that change per packet."""

    def __init__(self, sender: RTCRtpSender, payload_type: int, ssrc: int) -> None:
        extensions = getattr(sender, _S + "rtp_header_extensions_map")
        packet = RtpPacket(payload_type=payload_type, sequence_number=0, timestamp=0, ssrc=ssrc)
        packet.extensions.mid = getattr(sender, _S + "mid")
        packet.extensions.abs_send_time = 0
        low = packet.serialize(extensions)
        packet.extensions.abs_send_time = 0xFFFFFF
        high = packet.serialize(extensions)
        changed = [i for i in range(len(low)) if low[i] != high[i]]
        if changed and (len(changed) != 3 or changed[2] - changed[0] != 2):
            raise RuntimeError("abs-send-time is not three bytes in aiortc's header")
        self.first = low[0]
        self.payload_type = payload_type
        self.size = len(low)
        if changed:  # ssrc .. extension block .. [abs-send-time] .. rest of the block
            self.before, self.after = low[8 : changed[0]], low[changed[0] + 3 :]
        else:
            self.before, self.after = low[8:], b""
        self.has_abs = bool(changed)

    def header(self, marker: int, seq: int, timestamp: int, abs3: bytes) -> bytes:
        head = _HEAD.pack(self.first, marker | self.payload_type, seq, timestamp)
        if self.has_abs:
            return b"".join((head, self.before, abs3, self.after))
        return head + self.before


class FastSender:
    """Sends a consumer's frames for an aiortc ``RTCRtpSender`` (see the module docstring).

    Installed before the sender starts (:func:`install_fast_sender`). Sending happens in
    :meth:`pump`, called when the source queues a frame; it returns when the queue is
    empty, or when the pacer holds a packet back (a timer resumes it) or the pair needs
    aiortc's asynchronous path (a task resumes it). The sender's RTP task only waits for
    the end (the track stops, the transport closes, ``sender.stop()``).
    """

    def __init__(self, sender: RTCRtpSender, source: FrameSource) -> None:
        self.sender = sender
        self.source = source
        self.packets_sent = 0
        self._tpl: _Template | None = None
        self._rtx_pt: int | None = None
        # the last RTP_HISTORY_SIZE packets by seq % size: (seq, header, payload)
        self._history: dict[int, tuple[int, bytes, bytes]] = {}
        self._seq = 0
        self._sent_any = False
        self._origin = 0
        self._frame: list[bytes] = []
        self._frame_ts = 0
        self._index = 0
        self._held: bytes | None = None  # the packet the pacer held back (built, not stamped)
        self._busy = False
        self._waiting: asyncio.TimerHandle | asyncio.Task[None] | None = None
        self._end: asyncio.Future[None] | None = None
        self._stats = [0, 0, 0, 0]  # packets, octets, NTP and RTP timestamp of the last packet
        self._wire: Wire | None = None

    # -- aiortc's entry points --------------------------------------------------------

    async def run_rtp(self, codec: Any) -> None:
        """Stands in for ``RTCRtpSender._run_rtp`` (its exit is aiortc's as well)."""
        s = self.sender
        getattr(s, _S + "rtp_started").set()
        try:
            self._tpl = _Template(s, int(codec.payloadType), int(s._ssrc))
            rtx_pt = getattr(s, _S + "rtx_payload_type")
            self._rtx_pt = int(rtx_pt) if rtx_pt is not None else None
            self._seq = _rtcrtpsender.random_sequence_number()
            self._origin = random32()
            self._stats = [
                getattr(s, _PACKET_COUNT),
                getattr(s, _OCTET_COUNT),
                getattr(s, _NTP_TIMESTAMP),
                getattr(s, _RTP_TIMESTAMP),
            ]
            self._wire = wire_of(s.transport)  # the sender's transport is settled once it runs
            self._end = asyncio.get_running_loop().create_future()
            self.source.on_ready = self.pump
            self.pump()
            await self._end
        except (asyncio.CancelledError, ConnectionError, MediaStreamError):
            pass
        except Exception:
            log.warning("consumer sender failed", exc_info=True)
        finally:
            self.source.on_ready = None
            self._end = None
            waiting, self._waiting = self._waiting, None
            if waiting is not None:
                waiting.cancel()
        track = getattr(s, _S + "track")
        if track:
            track.stop()
            setattr(s, _S + "track", None)
        setattr(s, _S + "encoder", None)
        getattr(s, _S + "rtp_exited").set()

    async def retransmit(self, sequence_number: int) -> None:
        """Stands in for ``RTCRtpSender._retransmit``: the packet again, on the RTX stream
        when one is negotiated (the bytes aiortc's ``wrap_rtx`` + ``serialize`` make)."""
        entry = self._sent(sequence_number)
        if entry is None:
            return
        header, payload = entry
        rtx_pt = self._rtx_pt
        if rtx_pt is None:
            data = header + payload
        else:
            s = self.sender
            rtx_seq = getattr(s, _S + "rtx_sequence_number")
            setattr(s, _S + "rtx_sequence_number", (rtx_seq + 1) & 0xFFFF)
            timestamp = _U32.unpack_from(header, 4)[0]
            data = b"".join(
                (
                    _HEAD.pack(header[0], (header[1] & 0x80) | rtx_pt, rtx_seq, timestamp),
                    _U32.pack(int(s._rtx_ssrc)),
                    header[12:],  # the same extensions (mid, abs-send-time)
                    header[2:4],  # the original sequence number
                    payload,
                )
            )
        await self.sender.transport._send_rtp(data)

    def next_sequence(self) -> int | None:
        """The sequence number the next packet gets (None before the first)."""
        return self._seq if self._sent_any else None

    def sent_payload(self, sequence_number: int) -> bytes | None:
        """The payload of a packet still in the retransmission history (None if gone)."""
        entry = self._sent(sequence_number)
        return entry[1] if entry is not None else None

    def _sent(self, sequence_number: int) -> tuple[bytes, bytes] | None:
        """(header, payload) of a packet still in the history (None once overwritten)."""
        entry = self._history.get(sequence_number % RTP_HISTORY_SIZE)
        if entry is None or entry[0] != sequence_number:
            return None
        return entry[1], entry[2]

    # -- sending ------------------------------------------------------------------------

    def pump(self) -> None:
        """Send every queued frame now, until the pacer or the async path takes over."""
        if self._busy or self._waiting is not None or self._end is None or self._end.done():
            return
        self._busy = True
        try:
            self._send_queued()
        except Exception as exc:  # the task ends as aiortc's loop would
            if not self._end.done():
                self._end.set_exception(exc)
        finally:
            self._busy = False
            s, stats = self.sender, self._stats
            setattr(s, _PACKET_COUNT, stats[0])
            setattr(s, _OCTET_COUNT, stats[1])
            setattr(s, _NTP_TIMESTAMP, stats[2])
            setattr(s, _RTP_TIMESTAMP, stats[3])
            if self._wire is not None:
                self._wire.flush()

    def _send_queued(self) -> None:
        tpl, wire = self._tpl, self._wire
        assert tpl is not None and wire is not None
        hooks = wire.hooks
        stats, history = self._stats, self._history
        ntp = ntp_now()
        abs3 = _U32.pack((ntp >> 14) & 0xFFFFFF)[1:]
        while True:
            if self._index >= len(self._frame):
                frame = self.source.poll()
                if frame is None:
                    return
                if not self.sender._enabled:
                    continue
                self._frame, self._index = frame.payloads, 0
                self._frame_ts = (self._origin + frame.timestamp) & 0xFFFFFFFF
            payloads, timestamp = self._frame, self._frame_ts
            last = len(payloads) - 1
            while self._index <= last:
                i = self._index
                payload = payloads[i]
                data = self._held
                if data is None:
                    seq = self._seq
                    header = tpl.header(0x80 if i == last else 0, seq, timestamp, abs3)
                    history[seq % RTP_HISTORY_SIZE] = (seq, header, payload)
                    self._seq = (seq + 1) & 0xFFFF
                    self._sent_any = True
                    data = header + payload
                    if hooks is not None:
                        wait = hooks.delay(data)
                        if wait > 0:
                            self._held = data
                            self._waiting = asyncio.get_running_loop().call_later(
                                wait, self._resume
                            )
                            return
                self._held = None
                if hooks is not None:
                    data = hooks.stamp(data)
                self._index = i + 1
                stats[0] += 1
                stats[1] += len(payload)
                stats[2] = ntp
                stats[3] = timestamp
                self.packets_sent += 1
                if not wire.send(data):
                    self._waiting = asyncio.get_running_loop().create_task(
                        self._send_then_resume(wire, data)
                    )
                    return

    def _resume(self) -> None:
        self._waiting = None
        self.pump()

    async def _send_then_resume(self, wire: Wire, data: bytes) -> None:
        try:
            await wire.send_async(data)
        except Exception as exc:
            if self._end is not None and not self._end.done():
                self._end.set_exception(exc)
            return
        self._waiting = None
        self.pump()


def install_fast_sender(sender: RTCRtpSender, source: FrameSource) -> FastSender:
    """Before the sender starts: its RTP loop and retransmissions become a :class:`FastSender`'s."""
    fast = FastSender(sender, source)
    sender._run_rtp = fast.run_rtp  # type: ignore[method-assign]
    sender._retransmit = fast.retransmit  # type: ignore[method-assign]
    sender._sanke_fast = fast  # type: ignore[attr-defined]
    return fast


def fast_sender(sender: RTCRtpSender) -> FastSender | None:
    fast: FastSender | None = getattr(sender, "_sanke_fast", None)
    return fast


# --- the check ----------------------------------------------------------------------


def seam_problems() -> list[str]:
    """What moved in aiortc/aioice of what this module relies on (for ``check_seams``)."""
    problems: list[str] = []
    sender_src = inspect.getsource(_rtcrtpsender.RTCRtpSender)
    for needle in (
        "self.__rtp_task = asyncio.ensure_future(self._run_rtp(parameters.codecs[0]))",
        "self.__rtp_header_extensions_map.configure(parameters)",
        "self.__rtx_payload_type = codec.payloadType",
        "await self._retransmit(seq)",
        "self.__rtp_started.set()",
        "self.__rtp_exited.set()",
        "await asyncio.gather(self.__rtp_exited.wait(), self.__rtcp_exited.wait())",
        "timestamp = uint32_add(timestamp_origin, enc_frame.timestamp)",
        "packet.marker = (i == len(enc_frame.payloads) - 1) and 1 or 0",
        "clock.current_ntp_time() >> 14",
        "packet.extensions.mid = self.__mid",
        "if enc_frame.audio_level is not None:",
        "self.__ntp_timestamp = clock.current_ntp_time()",
        "self.__rtp_timestamp = packet.timestamp",
        "self.__octet_count += len(payload)",
        "self.__packet_count += 1",
        "ntp_timestamp=self.__ntp_timestamp,",
        "rtp_timestamp=self.__rtp_timestamp,",
        "packet_count=self.__packet_count & 0xFFFFFFFF,",
        "octet_count=self.__octet_count & 0xFFFFFFFF,",
        "packetsSent=self.__packet_count,",
        "bytesSent=self.__octet_count,",
        "packet = wrap_rtx(",
        "self.__rtx_sequence_number = uint16_add(self.__rtx_sequence_number, 1)",
        "if not self._enabled:",
        "self.__track.stop()",
        "self.__track = None",
        "self.__encoder = None",
    ):
        if needle not in sender_src:
            problems.append(f"RTCRtpSender lost: {needle}")
    if "rtx.extensions = packet.extensions" not in inspect.getsource(_rtp.wrap_rtx):
        problems.append("wrap_rtx no longer keeps the packet's extensions")
    dtls_send = inspect.getsource(_rtcdtlstransport.RTCDtlsTransport._send_rtp)
    for needle in (
        "if self._state != State.CONNECTED:",
        "data = self._tx_srtp.protect(data)",
        "await self.transport._send(data)",
        "self.__tx_bytes += len(data)",
        "self.__tx_packets += 1",
    ):
        if needle not in dtls_send:
            problems.append(f"RTCDtlsTransport._send_rtp lost: {needle}")
    if "self._send = self._connection.send" not in inspect.getsource(
        _rtcicetransport.RTCIceTransport
    ):
        problems.append("RTCIceTransport no longer sends through its aioice Connection")
    ice_send = inspect.getsource(aioice.Connection.send) + inspect.getsource(
        aioice.Connection.sendto
    )
    for needle in (
        "await self.sendto(data, 1)",
        "active_pair = self._nominated.get(component)",
        "await active_pair.protocol.send_data(data, active_pair.remote_addr)",
    ):
        if needle not in ice_send:
            problems.append(f"aioice Connection.send lost: {needle}")
    body = inspect.getsource(aioice.ice.StunProtocol.send_data).strip().splitlines()
    if [line.strip() for line in body[1:]] != ["self.transport.sendto(data, addr)"]:
        problems.append("aioice StunProtocol.send_data does more than transport.sendto")
    return problems
