"""Transport-wide congestion control feedback: what the SFU builds parses back exactly."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.transport_cc import (
    DELTA_TICK_US,
    MAX_PENDING,
    REFERENCE_WRAP_US,
    FeedbackRecorder,
    build_feedback,
    parse_feedback,
    unwrap,
)


def quantized(arrival: int | None) -> int | None:
    return None if arrival is None else arrival // DELTA_TICK_US * DELTA_TICK_US


def test_a_known_packet_parses_field_by_field() -> None:
    # 4 packets from 65534 (wrapping): received, lost, received 70 ms later, received earlier
    arrivals = [1_000_000, None, 1_070_000, 1_069_000]
    data = build_feedback(0x11111111, 0x22222222, 65534, 7, arrivals)
    assert len(data) % 4 == 0
    assert data[0] & 0x1F == 15 and data[1] == 205
    fb = parse_feedback(data)
    assert (fb.sender_ssrc, fb.media_ssrc, fb.base_sequence, fb.feedback_count) == (
        0x11111111,
        0x22222222,
        65534,
        7,
    )
    assert fb.reference_time_us == 1_000_000 // 64_000 * 64_000
    assert fb.arrivals == [(65534, 1_000_000), (65535, None), (0, 1_070_000), (1, 1_069_000)]


@settings(max_examples=300, deadline=None)
@given(
    base=st.integers(0, 0xFFFF),
    start=st.integers(0, 10**12),
    steps=st.lists(
        st.one_of(st.none(), st.integers(-5_000_000, 5_000_000), st.integers(0, 70_000)),
        min_size=1,
        max_size=1200,
    ),
)
def test_feedback_round_trips(base: int, start: int, steps: list[int | None]) -> None:
    arrivals: list[int | None] = []
    now = start
    for step in steps:
        if step is None:
            arrivals.append(None)
        else:
            now = max(0, now + step)
            arrivals.append(now)
    if all(a is None for a in arrivals):
        arrivals[0] = start
    fb = parse_feedback(build_feedback(1, 2, base, 0, arrivals))
    assert [seq for seq, _ in fb.arrivals] == [(base + k) & 0xFFFF for k in range(len(arrivals))]
    # Absolute times come back modulo the reference time's wrap; their differences exactly.
    shift = next(a for a in arrivals if a is not None) // REFERENCE_WRAP_US * REFERENCE_WRAP_US
    expected = [None if a is None else quantized(a - shift) for a in arrivals]
    assert [a for _, a in fb.arrivals] == expected


def test_the_recorder_reports_every_number_once_lost_ones_included() -> None:
    recorder = FeedbackRecorder(sender_ssrc=9)
    t = 5_000_000
    for k, seq in enumerate([65530, 65531, 65533, 65535, 0, 2]):  # wraps; 65532, 65534, 1 lost
        recorder.record(seq, t + 1000 * k, media_ssrc=42)
    first = [parse_feedback(p) for p in recorder.build()]
    reported = [pair for fb in first for pair in fb.arrivals]
    assert [seq for seq, _ in reported] == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2]
    assert [seq for seq, a in reported if a is None] == [65532, 65534, 1]
    assert all(fb.media_ssrc == 42 for fb in first)
    assert recorder.build() == []  # nothing new
    recorder.record(1, t + 9000, media_ssrc=42)  # too late: reported lost already
    recorder.record(3, t + 10_000, media_ssrc=42)
    second = [pair for p in recorder.build() for pair in parse_feedback(p).arrivals]
    assert second == [(3, quantized(t + 10_000))]
    counts = [parse_feedback(p).feedback_count for p in recorder.build()]
    assert counts == []


def test_big_reports_split_into_packets_that_fit_a_datagram() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1)
    for seq in range(5000):
        if seq % 3:
            recorder.record(seq, 1_000_000 + seq * 300, media_ssrc=5)
    packets = recorder.build()
    assert len(packets) > 1 and all(len(p) <= 1200 for p in packets)
    parsed = [parse_feedback(p) for p in packets]
    assert [fb.feedback_count for fb in parsed] == list(range(len(parsed)))
    seqs = [seq for fb in parsed for seq, _ in fb.arrivals]
    assert seqs == list(range(1, 5000))  # seq 0 was lost before anything arrived


def test_a_pause_longer_than_a_delta_starts_a_new_packet() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1)
    recorder.record(10, 1_000_000, media_ssrc=5)
    recorder.record(11, 1_000_000 + 20_000_000, media_ssrc=5)  # 20 s later
    parsed = [parse_feedback(p) for p in recorder.build()]
    assert [fb.arrivals for fb in parsed] == [[(10, 1_000_000)], [(11, 21_000_000)]]


def test_pending_arrivals_stay_bounded() -> None:
    recorder = FeedbackRecorder(sender_ssrc=1)
    for seq in range(3 * MAX_PENDING):
        recorder.record(seq & 0xFFFF, seq * 100, media_ssrc=5)
    assert recorder.pending <= MAX_PENDING


@pytest.mark.parametrize(
    "data",
    [b"", b"\x8f\xcd\x00\x01" + b"\x00" * 4, b"\x81\xc9\x00\x07" + b"\x00" * 28],
)
def test_garbage_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse_feedback(data)


def test_unwrap() -> None:
    assert unwrap(0, 65535) == 65536
    assert unwrap(65535, 65536) == 65535
    assert unwrap(5, 70000) == 65536 + 5


def _extensions_map(ids: dict[str, int]) -> object:
    from aiortc.rtcrtpparameters import RTCRtpHeaderExtensionParameters, RTCRtpParameters
    from aiortc.rtp import HeaderExtensionsMap

    uris = {
        "mid": "urn:ietf:params:rtp-hdrext:sdes:mid",
        "abs": "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
        "twcc": "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
    }
    extensions_map = HeaderExtensionsMap()
    extensions_map.configure(
        RTCRtpParameters(
            headerExtensions=[
                RTCRtpHeaderExtensionParameters(id=i, uri=uris[k]) for k, i in ids.items()
            ]
        )
    )
    return extensions_map


@pytest.mark.parametrize("mid", [None, "0", "a-long-mid-value"])
@pytest.mark.parametrize("padding", [0, 7])
def test_stamping_keeps_every_other_field_as_aiortc_reads_it(mid: str | None, padding: int) -> None:
    from aiortc.rtp import RtpPacket

    from media.transport_cc import stamp_sequence

    writer = _extensions_map({"mid": 1, "abs": 3})
    reader = _extensions_map({"mid": 1, "abs": 3, "twcc": 5})
    packet = RtpPacket(payload_type=102, sequence_number=999, timestamp=12345, ssrc=0xDEADBEEF)
    packet.payload = bytes(range(200))
    packet.marker = 1
    packet.padding_size = padding
    if mid is not None:
        packet.extensions.mid = mid
        packet.extensions.abs_send_time = 0x123456
    packet.csrc = [7]
    stamped = stamp_sequence(packet.serialize(writer), 5, 65535)  # type: ignore[arg-type]
    back = RtpPacket.parse(stamped, reader)  # type: ignore[arg-type]
    assert back.extensions.transport_sequence_number == 65535
    assert (back.payload_type, back.sequence_number, back.timestamp, back.ssrc) == (
        102,
        999,
        12345,
        0xDEADBEEF,
    )
    assert (back.marker, back.csrc, back.payload, back.padding_size) == (
        1,
        [7],
        packet.payload,
        padding,
    )
    assert back.extensions.mid == mid
    if mid is not None:
        assert back.extensions.abs_send_time == 0x123456
