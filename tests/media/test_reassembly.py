"""Frames from RTP packets at the SFU: complete frames at once, holes asked for again and
given up in bounded time, audio never held back."""

from __future__ import annotations

import time

import pytest
from aiortc.rtp import RtpPacket

import media.reassembly as reassembly
from media.reassembly import MAX_PACKETS, FrameAssembler


def packet(seq: int, ts: int, data: bytes, marker: bool) -> RtpPacket:
    p = RtpPacket(payload_type=102, sequence_number=seq & 0xFFFF, timestamp=ts)
    p.marker = int(marker)
    p._data = data  # type: ignore[attr-defined]
    return p


def frame_packets(first_seq: int, ts: int, parts: int, tag: bytes) -> list[RtpPacket]:
    return [packet(first_seq + k, ts, tag + bytes([k]), k == parts - 1) for k in range(parts)]


class Recorder:
    def __init__(self, kind: str = "video") -> None:
        self.frames: list[tuple[bytes, int]] = []
        self.gaps = 0
        self.nacks: list[list[int]] = []
        self.assembler = FrameAssembler(
            kind,
            lambda pt, data, ts: self.frames.append((data, ts)),
            self._gap,
            lambda ssrc, seqs: self.nacks.append(seqs),
        )

    def _gap(self) -> None:
        self.gaps += 1

    def feed(self, packets: list[RtpPacket]) -> None:
        for p in packets:
            self.assembler.add(p)


def test_a_frame_is_delivered_when_its_last_packet_arrives_not_a_frame_later() -> None:
    r = Recorder()
    first = frame_packets(65534, 1000, 3, b"A")  # wraps the sequence number
    r.feed(first[:2])
    assert r.frames == []
    r.feed(first[2:])
    assert r.frames == [(b"A\x00A\x01A\x02", 0)]
    r.feed(frame_packets(1, 4000, 2, b"B"))
    assert r.frames[-1] == (b"B\x00B\x01", 3000)


def test_reordered_packets_complete_the_frame_and_the_ones_behind_it() -> None:
    r = Recorder()
    a, b = frame_packets(10, 0, 3, b"A"), frame_packets(13, 3000, 2, b"B")
    r.feed([a[0], a[2], *b])  # a[1] late: both frames wait
    assert r.frames == [] and r.nacks == []
    r.feed([a[1]])
    assert [f for f, _ in r.frames] == [b"A\x00A\x01A\x02", b"B\x00B\x01"]
    assert r.gaps == 0


def test_a_lost_packet_is_asked_again_then_given_up_with_a_keyframe_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(reassembly.time, "monotonic", lambda: now[0])
    r = Recorder()
    a, b, c = (frame_packets(10 + 3 * k, 3000 * k, 3, bytes([65 + k])) for k in range(3))
    r.feed([a[0], a[2]])  # a[1] lost
    again = max(reassembly.RENACK_S, 1.5 * r.assembler.rtt_s) + 0.01
    assert again < reassembly.MAX_WAIT_S
    now[0] += again
    r.feed([b[0]])
    assert r.nacks == [[11]]  # asked again after 1.5 round trips
    now[0] = 100.0 + reassembly.MAX_WAIT_S - 0.01
    r.feed([b[1], b[2]])
    assert r.frames == [] and r.gaps == 0
    now[0] += 0.02  # the hole is older than MAX_WAIT_S: given up
    r.feed([c[0]])
    assert r.gaps == 1
    # b was complete, but behind the hole: the subscribers resume at a keyframe anyway, so
    # delivery resumes after the newest frame end (b's), not frame by frame behind the hole
    assert r.frames == []
    r.feed(c[1:])
    assert [f for f, _ in r.frames] == [b"C\x00C\x01C\x02"]
    r.feed([a[1]])  # the retransmission, too late
    assert len(r.frames) == 1 and r.assembler.late == 1
    # what the publisher is told it lost: the one packet never delivered, not the frames
    # dropped behind it (they arrived)
    assert (r.assembler.expected, r.assembler.abandoned) == (9, 1)  # seq 10..18


def test_a_hole_with_no_frame_end_behind_it_resyncs_at_the_next_frame_end(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [0.0]
    monkeypatch.setattr(reassembly.time, "monotonic", lambda: now[0])
    r = Recorder()
    a, b, c = (frame_packets(10 + 3 * k, 3000 * k, 3, bytes([65 + k])) for k in range(3))
    r.feed(a[:2] + b[:2])  # a's marker packet lost, and b's last one not yet here
    now[0] += 1.0
    r.feed([c[0]])  # a's hole given up; no frame end has arrived yet: resume after the next
    assert r.gaps == 1 and r.frames == []
    r.feed([b[2]])  # b's end: c starts after it
    r.feed(c[1:])
    assert [f for f, _ in r.frames] == [b"C\x00C\x01C\x02"]


def test_a_frame_its_sender_cut_short_is_dropped_not_glued_to_the_next() -> None:
    # libwebrtc's pacer drops a stream's queued packets when a keyframe is queued behind
    # them; sequence numbers are given at sending, so none is missing, but the cut frame
    # has no marker and the keyframe's first packet carries a new timestamp
    r = Recorder()
    cuts: list[int] = []
    r.assembler._on_cut = lambda: cuts.append(len(r.frames))
    a = frame_packets(10, 0, 3, b"A")
    cut = [packet(13, 3000, b"P\x00", False), packet(14, 3000, b"P\x01", False)]
    key = frame_packets(15, 6000, 3, b"K")
    r.feed(a + cut)
    assert len(r.frames) == 1 and cuts == []  # the rest of the cut frame may still come
    r.feed(key)
    assert [f for f, _ in r.frames] == [b"A\x00A\x01A\x02", b"K\x00K\x01K\x02"]
    assert cuts == [1] and r.assembler.cuts == 1  # told before the keyframe is delivered
    assert r.gaps == 0 and r.nacks == []  # nothing was lost: nothing to ask for


def test_padding_between_frames_is_no_cut() -> None:
    r = Recorder()
    a, b = frame_packets(10, 0, 2, b"A"), frame_packets(13, 6000, 2, b"B")
    padding = packet(12, 3000, b"", False)  # no payload: a probe, with its own timestamp
    r.feed([*a, padding, *b])
    assert [f for f, _ in r.frames] == [b"A\x00A\x01", b"B\x00B\x01"]
    assert r.assembler.cuts == 0


def test_held_packets_stay_bounded_whatever_arrives() -> None:
    r = Recorder()
    r.feed([packet(0, 0, b"x", False)])
    for seq in range(2, 3 * MAX_PACKETS):  # seq 1 never arrives, no frame ever ends
        r.feed([packet(seq, 0, b"x", False)])
        assert len(r.assembler._packets) <= MAX_PACKETS + 1
    assert r.gaps >= 1


def test_audio_is_never_held_back() -> None:
    r = Recorder("audio")
    r.feed([packet(5, 960 * 5, b"5", True), packet(7, 960 * 7, b"7", False)])  # 6 lost
    assert r.frames == [(b"5", 0), (b"7", 1920)]
    r.feed([packet(6, 960 * 6, b"6", False)])  # late: concealed at the subscriber
    assert len(r.frames) == 2


def test_many_packets_cost_little() -> None:
    r = Recorder()
    packets = [p for k in range(2000) for p in frame_packets(10 * k, 3000 * k, 10, b"F")]
    start = time.perf_counter()
    r.feed(packets)
    assert len(r.frames) == 2000
    per_packet = (time.perf_counter() - start) / len(packets)
    print(f"\nreassembly: {per_packet * 1e6:.1f} µs per packet")
