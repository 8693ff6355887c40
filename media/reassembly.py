"""Reassembling a publisher's encoded frames from RTP, in place of aiortc's jitter buffer.

aiortc's buffer (made to feed a decoder) hands a frame on only when the next frame's first
packet arrives, and a lost packet holds back every later frame until it is retransmitted or
512 packets have piled up behind it: 4 s at 1 Mbps, during which every classroom of the
lesson freezes. The SFU forwards frames, so it needs:

- a video frame as soon as it is complete: the packets from the one after the previous
  frame's last packet (RTP marker bit) to the next marker, none missing;
- a hole asked again (NACK) while it is young, and given up after ``MAX_WAIT_S``: the frames
  behind it are dropped up to the next frame boundary and the publisher is asked for a
  keyframe (``on_gap``), so subscribers resume at a clean picture instead of decoding
  frames that reference one they never got;
- a frame its sender cut short dropped, not glued to the next one: libwebrtc's pacer
  throws away a stream's queued packets when a keyframe is queued behind them (its packets
  are numbered only when sent, so no sequence number is missing), and the cut frame then
  has no marker. A packet with another timestamp begins a new frame, as libwebrtc's own
  receiver reads H264. Glued, the cut delta frame led the keyframe: a classroom switching
  layers at that keyframe could not decode it (measured: its decoder dropped the frame and
  asked again, twice, and the classroom froze 1-1.5 s);
- audio at once, one packet one frame, in order (a late packet is dropped: the subscriber's
  Opus decoder conceals it, with the in-band FEC of the next one).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from aiortc.rtp import RtpPacket

from media.transport_cc import unwrap

# A hole older than this is given up. A retransmission normally takes one round trip, but
# on a link that just got smaller (a teacher's uplink cut to 1 Mbps) several rounds, while
# the publisher's encoder follows its estimate down; giving up sooner asks for a keyframe
# that is as big as what was lost and freezes the classrooms longer. Chromium keeps sent
# packets for retransmission about a second.
MAX_WAIT_S = 0.2
MAX_PACKETS = 1024  # packets held at most (a 4K keyframe is ~500 packets)
# A hole still open one and a half round trips after it was asked for is asked again (no
# sooner than RENACK_S: asking before the retransmission can be back only multiplies the
# retransmissions a congested uplink must carry), MAX_NACKS times at most. The round trip
# is measured from NACK to retransmission.
RENACK_S = 0.05
MAX_NACKS = 5

FrameDelivery = Callable[[int, bytes, int], None]
"""``(payload type, encoded frame, RTP timestamp from the first frame)``."""


class FrameAssembler:
    """Stands in for ``RTCRtpReceiver.__jitter_buffer``: frames go to ``deliver``, never
    back to aiortc (which would queue them for a decoder)."""

    capacity = MAX_PACKETS

    def __init__(
        self,
        kind: str,
        deliver: FrameDelivery,
        on_gap: Callable[[], None],
        nack: Callable[[int, list[int]], None] | None = None,
        on_cut: Callable[[], None] = lambda: None,
    ) -> None:
        self.kind = kind
        self._deliver = deliver
        self._on_gap = on_gap
        self._nack = nack
        # A frame its sender cut short was dropped: what follows needs a keyframe (in the
        # case seen, libwebrtc's keyframe flush, the next frame is one).
        self._on_cut = on_cut
        self._packets: dict[int, RtpPacket] = {}
        self._next: int | None = None  # the first sequence number not yet delivered
        self._highest: int | None = None
        self._hole_since: float | None = None
        self._nacked: dict[int, tuple[float, int]] = {}  # seq -> (last asked, times)
        self._resync = False
        self._ts_origin: int | None = None
        self._ssrc = 0
        self.rtt_s = 0.1
        self.frames = 0
        self.gaps = 0
        self.cuts = 0
        self.late = 0
        self.expected = 0  # sequence numbers the stream has advanced by
        self.abandoned = 0  # ... and of those, packets given up (never delivered)

    def add(self, packet: RtpPacket) -> tuple[bool, None]:
        """Take one depayloaded packet (``packet._data``); ``(False, None)`` for aiortc."""
        self._ssrc = packet.ssrc
        if self._highest is None or self._next is None:
            self._highest = self._next = packet.sequence_number
            self.expected = 1
        seq = unwrap(packet.sequence_number, self._highest)
        if seq < self._next or seq in self._packets:
            self.late += 1
            return False, None
        if seq > self._highest:
            self.expected += seq - self._highest
            self._highest = seq
        if self.kind != "video":
            self.abandoned += seq - self._next  # audio is never waited for
            self._next = seq + 1  # audio: one packet, one frame, at once
            self._send(packet.payload_type, [packet])
            return False, None
        self._packets[seq] = packet
        now = time.monotonic()
        asked = self._nacked.pop(seq, None)
        if asked is not None and asked[1] == 1:  # a retransmission of a first request
            self.rtt_s = 0.8 * self.rtt_s + 0.2 * min(max(now - asked[0], 0.001), 1.0)
        if len(self._packets) > MAX_PACKETS:  # no frame ends (garbage, or a flood): start over
            self.abandoned += seq + 1 - self._next - len(self._packets)
            self.gaps += 1
            self._on_gap()
            self._packets.clear()
            self._nacked.clear()
            self._next, self._resync, self._hole_since = seq + 1, True, None
            return False, None
        self._emit()
        if self._hole() is None:
            self._hole_since = None
        else:
            if self._hole_since is None:
                self._hole_since = now
            if now - self._hole_since > MAX_WAIT_S or len(self._packets) > MAX_PACKETS:
                self._skip()
                self._emit()
            else:
                self._ask_again(now)
        return False, None

    def _hole(self) -> int | None:
        """The first missing sequence number below the highest received one."""
        assert self._next is not None and self._highest is not None
        seq = self._next
        while seq < self._highest:
            if seq not in self._packets:
                return seq
            seq += 1
        return None

    def _emit(self) -> None:
        assert self._next is not None
        if self._resync and not self._find_start(self._next):
            return
        while True:
            frame: list[RtpPacket] = []
            seq = self._next
            timestamp: int | None = None
            while seq in self._packets:
                packet = self._packets[seq]
                if getattr(packet, "_data", b""):  # padding carries no frame's timestamp
                    if timestamp is None:
                        timestamp = packet.timestamp
                    elif packet.timestamp != timestamp:
                        break  # the frame so far was cut short by its sender
                frame.append(packet)
                if packet.marker:
                    break
                seq += 1
            else:
                return  # incomplete: the rest is on its way, or lost
            if not frame[-1].marker:
                self._cut(seq)
                continue
            for k in range(self._next, seq + 1):
                del self._packets[k]
            self._next = seq + 1
            self._send(frame[0].payload_type, frame)

    def _cut(self, start: int) -> None:
        """Drop the frame before ``start`` (the first packet of the next frame): it ended
        without its last packet, which was never sent."""
        assert self._next is not None
        for k in range(self._next, start):
            self._packets.pop(k, None)
        self._next = start
        self.cuts += 1
        self._on_cut()

    def _send(self, payload_type: int, packets: list[RtpPacket]) -> None:
        timestamp = packets[0].timestamp
        if self._ts_origin is None:
            self._ts_origin = timestamp
        self.frames += 1
        data = b"".join(getattr(p, "_data", b"") for p in packets)
        self._deliver(payload_type, data, (timestamp - self._ts_origin) & 0xFFFFFFFF)

    def _skip(self) -> None:
        """Give up the hole, and every frame queued behind it: subscribers need a keyframe
        now anyway, and on a lossy link frame after frame has a hole of its own (waiting out
        each in turn would fall further behind with every one). Delivery resumes after the
        newest frame end received (or the next one to arrive)."""
        self.gaps += 1
        self._on_gap()
        assert self._highest is not None
        skipped_from = self._next or 0
        held = len(self._packets)
        hole = self._hole()
        newest_end = max((s for s, p in self._packets.items() if p.marker), default=None)
        if newest_end is None or hole is None or newest_end < hole:
            start = (self._next or 0) if hole is None else hole + 1
            for seq in [s for s in self._packets if s < start]:
                del self._packets[seq]
            self._next = start
            self._resync = True  # resume after the first frame end that arrives
        else:
            for seq in [s for s in self._packets if s <= newest_end]:
                del self._packets[seq]
            self._next = newest_end + 1
            self._resync = False
        dropped = held - len(self._packets)
        self._hole_since = None
        resume: int = self._next or 0
        self.abandoned += resume - skipped_from - dropped
        self._nacked = {s: v for s, v in self._nacked.items() if s >= resume}

    def _find_start(self, start: int) -> bool:
        """In resync: drop packets up to the first frame end at or after ``start``."""
        assert self._highest is not None
        for seq in range(start, self._highest + 1):
            packet = self._packets.get(seq)
            if packet is not None and packet.marker:
                for k in [s for s in self._packets if s <= seq]:
                    del self._packets[k]
                self._next = seq + 1
                self._resync = False
                return True
        return False

    def _ask_again(self, now: float) -> None:
        if self._nack is None or self._next is None or self._highest is None:
            return
        again: list[int] = []
        for seq in range(self._next, self._highest):
            if seq in self._packets:
                continue
            asked, times = self._nacked.get(seq, (now, 0))
            if times == 0:
                self._nacked[seq] = (now, 1)  # aiortc asked for it on arrival of the gap
            elif now - asked >= max(RENACK_S, 1.5 * self.rtt_s) and times < MAX_NACKS:
                self._nacked[seq] = (now, times + 1)
                again.append(seq & 0xFFFF)
        if again:
            self._nack(self._ssrc, again)
