"""Transport-wide congestion control feedback (draft-holmer-rmcat-transport-wide-cc-extensions-01).

Every RTP packet a sender puts on a transport carries a transport-wide sequence number in a
header extension; the receiver reports, for a run of those numbers, which packets arrived
and when (RTCP RTPFB, FMT 15). The sender's own estimator (Chromium's GCC) turns the
arrival times into a bandwidth estimate that drives its encoder.

:class:`FeedbackRecorder` is the receiving side's state (arrival times by sequence number,
bounded) and builds the feedback packets; :func:`parse_feedback` reads one back (the SFU
reads the feedback its subscribers send, and the tests check what it builds).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

TRANSPORT_CC_URI = "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01"

RTCP_RTPFB = 205
FMT_TRANSPORT_CC = 15
DELTA_TICK_US = 250  # receive deltas count quarter milliseconds
REFERENCE_TICK_US = 64_000  # the reference time counts 64 ms
REFERENCE_WRAP_US = (1 << 24) * REFERENCE_TICK_US
# One feedback packet reports at most this many sequence numbers: it must fit one datagram
# (a run of lone received packets costs 2 bits of status and 1 byte of delta each).
MAX_STATUSES_PER_PACKET = 600
# Arrival times kept before a report (a stalled report timer must not grow memory).
MAX_PENDING = 8192

NOT_RECEIVED, SMALL_DELTA, LARGE_DELTA = 0, 1, 2
_MAX_RUN = 0x1FFF
_LARGE_MIN, _LARGE_MAX = -0x8000, 0x7FFF


@dataclass
class TransportFeedback:
    """One parsed feedback packet: the arrival time (µs, on the receiver's clock modulo the
    reference time's wrap, ``None`` for a packet reported lost) of every sequence number it
    covers, in order."""

    sender_ssrc: int
    media_ssrc: int
    base_sequence: int
    feedback_count: int
    reference_time_us: int
    arrivals: list[tuple[int, int | None]] = field(default_factory=list)


def _status_chunks(symbols: list[int]) -> bytes:
    """Packet status chunks: run-length chunks for long runs (and the tail), else status
    vectors (14 one-bit symbols, or 7 two-bit ones where a large delta is among them)."""
    out = bytearray()
    i, n = 0, len(symbols)
    while i < n:
        run = 1
        while i + run < n and symbols[i + run] == symbols[i] and run < _MAX_RUN:
            run += 1
        window = symbols[i : i + 14]
        one_bit = max(window) < LARGE_DELTA
        if run >= (14 if one_bit else 7) or i + run == n:
            out += struct.pack("!H", (symbols[i] << 13) | run)
            i += run
        elif one_bit:
            chunk = 0x8000
            for k, symbol in enumerate(window):
                chunk |= symbol << (13 - k)
            out += struct.pack("!H", chunk)
            i += 14
        else:
            chunk = 0xC000
            for k, symbol in enumerate(symbols[i : i + 7]):
                chunk |= symbol << (12 - 2 * k)
            out += struct.pack("!H", chunk)
            i += 7
    return bytes(out)


def build_feedback(
    sender_ssrc: int,
    media_ssrc: int,
    base_sequence: int,
    feedback_count: int,
    arrivals: list[int | None],
    reference_us: int = 0,
) -> bytes:
    """One feedback packet for consecutive sequence numbers from ``base_sequence``.

    ``arrivals`` holds each packet's arrival time in µs (``None``: not received);
    consecutive received packets must lie within ±8.19 s of each other (the caller starts
    a new packet otherwise). The reference time is the first received packet's arrival
    (``reference_us`` when none was received).
    """
    first = next((a for a in arrivals if a is not None), reference_us)
    reference = first // REFERENCE_TICK_US
    # Arrival times are sent modulo the reference time's wrap.
    shift = (reference - reference % (1 << 24)) * REFERENCE_TICK_US // DELTA_TICK_US
    reference %= 1 << 24
    previous_ticks = reference * REFERENCE_TICK_US // DELTA_TICK_US
    symbols: list[int] = []
    deltas = bytearray()
    for arrival in arrivals:
        if arrival is None:
            symbols.append(NOT_RECEIVED)
            continue
        ticks = arrival // DELTA_TICK_US - shift
        delta = ticks - previous_ticks
        previous_ticks = ticks
        if 0 <= delta <= 0xFF:
            symbols.append(SMALL_DELTA)
            deltas.append(delta)
        elif _LARGE_MIN <= delta <= _LARGE_MAX:
            symbols.append(LARGE_DELTA)
            deltas += struct.pack("!h", delta)
        else:
            raise ValueError(f"receive delta {delta * DELTA_TICK_US} µs out of range")
    body = (
        struct.pack(
            "!IIHHI",
            sender_ssrc,
            media_ssrc,
            base_sequence & 0xFFFF,
            len(arrivals),
            (reference << 8) | (feedback_count & 0xFF),
        )
        + _status_chunks(symbols)
        + deltas
    )
    padding = -(4 + len(body)) % 4
    if padding:
        body += b"\x00" * (padding - 1) + bytes([padding])
    first_byte = 0x80 | (0x20 if padding else 0) | FMT_TRANSPORT_CC
    header = struct.pack("!BBH", first_byte, RTCP_RTPFB, (4 + len(body)) // 4 - 1)
    return header + body


def parse_feedback(data: bytes) -> TransportFeedback:
    """Read one transport-cc feedback packet (``ValueError`` if it is not a valid one)."""
    if len(data) < 20:
        raise ValueError("transport-cc feedback too short")
    first_byte, packet_type, length = struct.unpack("!BBH", data[:4])
    if first_byte >> 6 != 2 or packet_type != RTCP_RTPFB or first_byte & 0x1F != FMT_TRANSPORT_CC:
        raise ValueError("not a transport-cc feedback packet")
    end = 4 * (length + 1)
    if end > len(data):
        raise ValueError("transport-cc feedback truncated")
    if first_byte & 0x20:
        end -= data[end - 1]
    sender, media, base, count, ref_and_count = struct.unpack("!IIHHI", data[4:20])
    reference = ref_and_count >> 8  # wraps every 2^24 x 64 ms (12.4 days): callers unwrap
    symbols: list[int] = []
    pos = 20
    while len(symbols) < count:
        if pos + 2 > end:
            raise ValueError("transport-cc status chunks truncated")
        (chunk,) = struct.unpack("!H", data[pos : pos + 2])
        pos += 2
        if chunk & 0x8000 == 0:
            symbols += [(chunk >> 13) & 0x3] * (chunk & _MAX_RUN)
        elif chunk & 0x4000 == 0:
            symbols += [(chunk >> (13 - k)) & 0x1 for k in range(14)]
        else:
            symbols += [(chunk >> (12 - 2 * k)) & 0x3 for k in range(7)]
    symbols = symbols[:count]
    ticks = reference * REFERENCE_TICK_US // DELTA_TICK_US
    arrivals: list[tuple[int, int | None]] = []
    for k, symbol in enumerate(symbols):
        seq = (base + k) & 0xFFFF
        if symbol == NOT_RECEIVED:
            arrivals.append((seq, None))
            continue
        if symbol == SMALL_DELTA:
            if pos + 1 > end:
                raise ValueError("transport-cc deltas truncated")
            ticks += data[pos]
            pos += 1
        elif symbol == LARGE_DELTA:
            if pos + 2 > end:
                raise ValueError("transport-cc deltas truncated")
            ticks += struct.unpack("!h", data[pos : pos + 2])[0]
            pos += 2
        else:
            raise ValueError("reserved transport-cc status symbol")
        arrivals.append((seq, ticks * DELTA_TICK_US))
    return TransportFeedback(
        sender_ssrc=sender,
        media_ssrc=media,
        base_sequence=base,
        feedback_count=ref_and_count & 0xFF,
        reference_time_us=reference * REFERENCE_TICK_US,
        arrivals=arrivals,
    )


def unwrap(sequence: int, near: int) -> int:
    """The 64-bit sequence number of a 16-bit one, the one closest to ``near``."""
    diff = (sequence - near) & 0xFFFF
    return near + diff if diff < 0x8000 else near + diff - 0x10000


class FeedbackRecorder:
    """Arrival times of one transport's packets until they are reported.

    Every packet with a transport-wide sequence number is recorded (media, RTX and
    padding alike: the sender's estimator counts them all). :meth:`build` reports every
    number from the first unreported one to the highest received, then forgets them; a
    packet that arrives after its number was reported is not reported again.
    """

    def __init__(self, sender_ssrc: int) -> None:
        self.sender_ssrc = sender_ssrc
        self.media_ssrc = 0
        self._arrivals: dict[int, int] = {}
        self._next: int | None = None  # the first sequence number not yet reported
        self._highest: int | None = None
        self._count = 0
        self._reference_us = 0
        self.packets = 0
        self.reports = 0

    @property
    def pending(self) -> int:
        return len(self._arrivals)

    def record(self, sequence: int, arrival_us: int, media_ssrc: int) -> None:
        self.packets += 1
        self.media_ssrc = media_ssrc
        if self._highest is None or self._next is None:
            self._next = self._highest = sequence
        seq = unwrap(sequence, self._highest)
        if seq < self._next or seq in self._arrivals:
            return  # reported already, or a duplicate
        self._arrivals[seq] = arrival_us
        self._highest = max(self._highest, seq)
        if self._highest - self._next >= MAX_PENDING:
            # Nothing reported for a long while: keep only the newest numbers.
            self._next = self._highest - MAX_PENDING + 1
            for old in [s for s in self._arrivals if s < self._next]:
                del self._arrivals[old]

    def build(self) -> list[bytes]:
        """Feedback packets for every sequence number from the first unreported one to the
        highest received (lost ones included), or none when nothing arrived since."""
        if not self._arrivals or self._next is None or self._highest is None:
            return []
        packets: list[bytes] = []
        seq, end = self._next, self._highest
        while seq <= end:
            base = seq
            arrivals: list[int | None] = []
            last: int | None = None
            while seq <= end and len(arrivals) < MAX_STATUSES_PER_PACKET:
                arrival = self._arrivals.get(seq)
                if arrival is not None:
                    if last is not None:
                        delta = arrival // DELTA_TICK_US - last // DELTA_TICK_US
                        if not _LARGE_MIN <= delta <= _LARGE_MAX:
                            break  # too far from the previous one: a new packet starts here
                    last = arrival
                arrivals.append(arrival)
                seq += 1
            packets.append(
                build_feedback(
                    self.sender_ssrc,
                    self.media_ssrc,
                    base,
                    self._count,
                    arrivals,
                    reference_us=self._reference_us,
                )
            )
            if last is not None:
                self._reference_us = last
            self._count = (self._count + 1) & 0xFF
        self._arrivals.clear()
        self._next = end + 1
        self.reports += len(packets)
        return packets


def stamp_sequence(packet: bytes, ext_id: int, sequence: int) -> bytes:
    """The RTP packet with its transport-wide sequence number added as a header extension
    (RFC 8285: appended to a one- or two-byte extension block, or a new one-byte block).
    A packet with another extension profile is returned unchanged."""
    cc = packet[0] & 0x0F
    header = 12 + 4 * cc
    seq = struct.pack("!H", sequence & 0xFFFF)
    if not packet[0] & 0x10:
        block = bytes([(ext_id << 4) | 1]) + seq + b"\x00"
        first = bytes([packet[0] | 0x10])
        return first + packet[1:header] + b"\xbe\xde\x00\x01" + block + packet[header:]
    profile, words = struct.unpack_from("!HH", packet, header)
    start = header + 4
    end = start + 4 * words
    if profile == 0xBEDE:
        element = bytes([(ext_id << 4) | 1]) + seq
        id_bytes = 1
    elif profile & 0xFFF0 == 0x1000:
        element = bytes([ext_id, 2]) + seq
        id_bytes = 2
    else:
        return packet
    pos = used = start
    while pos < end:
        if packet[pos] == 0:  # padding between elements
            pos += 1
            continue
        if id_bytes == 1:
            if packet[pos] >> 4 == 15:
                break  # reserved id: the rest of the block is not to be read
            pos += 2 + (packet[pos] & 0x0F)
        else:
            pos += 2 + packet[pos + 1]
        used = pos
    elements = packet[start:used] + element
    elements += b"\x00" * (-len(elements) % 4)
    return (
        packet[:header] + struct.pack("!HH", profile, len(elements) // 4) + elements + packet[end:]
    )
