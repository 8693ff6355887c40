"""Picture sizes read from encoded frames at the SFU (never decoded): H264 SPS and VP8 headers.

Real frames from PyAV's libx264 and libvpx at known sizes, including the ones whose coded
size is a multiple of 16 that frame cropping brings back (360 → 368, 1080 → 1088), High
profiles with other chroma formats and bit depths, interlaced coding, and an SPS with
scaling lists (x264 puts its matrices in the PPS, so the test writes them into a real SPS
and has FFmpeg's decoder confirm the stream still decodes at that size). Random bytes and
damaged parameter sets never raise and never take long.
"""

from __future__ import annotations

import fractions
import random
from datetime import timedelta

import av
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.frames import (
    START_CODE,
    FrameParser,
    h264_nal_units,
    h264_rtp_has_parameter_sets,
    h264_sps_size,
    vp8_size,
)

SIZES = [(1280, 720), (640, 360), (320, 180), (1920, 1080), (854, 480), (176, 144)]


def encode(
    codec: str, width: int, height: int, pix_fmt: str = "yuv420p", **options: str
) -> list[bytes]:
    """A few frames of a moving gradient, encoded; the first packet is a keyframe."""
    cc = av.CodecContext.create(codec, "w")
    cc.width, cc.height, cc.pix_fmt = width, height, pix_fmt
    cc.time_base = fractions.Fraction(1, 30)
    cc.framerate = fractions.Fraction(30, 1)
    cc.options = dict(options)
    ramp = np.linspace(0, 255, width, dtype=np.uint8)
    packets: list[bytes] = []
    for i in range(4):
        rgb = np.repeat(np.roll(ramp, 7 * i)[None, :, None], height, axis=0).repeat(3, axis=2)
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format=pix_fmt)
        frame.pts = i
        packets += [bytes(p) for p in cc.encode(frame)]
    packets += [bytes(p) for p in cc.encode(None)]
    return packets


def decoded_sizes(codec: str, packets: list[bytes]) -> set[tuple[int, int]]:
    cc = av.CodecContext.create(codec, "r")
    sizes = set()
    for data in packets:
        for frame in cc.decode(av.Packet(data)):
            sizes.add((frame.width, frame.height))
    return sizes


@pytest.mark.parametrize(("width", "height"), SIZES)
@pytest.mark.parametrize("profile", ["baseline", "main", "high"])
def test_h264_keyframes_carry_the_encoded_size(profile: str, width: int, height: int) -> None:
    packets = encode("libx264", width, height, profile=profile, tune="zerolatency")
    parser = FrameParser()
    frames = [parser.parse("H264", p, 3000 * i) for i, p in enumerate(packets)]
    assert frames[0].keyframe and (frames[0].width, frames[0].height) == (width, height)
    # delta frames say nothing; the producer keeps the keyframe's size
    assert all(f.width is None for f in frames[1:] if not f.keyframe)


@pytest.mark.parametrize(
    ("pix_fmt", "options", "size"),
    [
        ("yuv444p", {}, (640, 360)),  # High 4:4:4: chroma_format_idc 3, crop unit 1
        ("yuv422p", {}, (854, 480)),  # High 4:2:2: vertical crop unit 1
        ("yuv420p10le", {}, (1280, 720)),  # High 10: bit depths in the SPS
        ("gray", {}, (320, 180)),  # 4:0:0 (monochrome): chroma_format_idc 0
        ("yuv420p", {"x264-params": "interlaced=1"}, (1920, 1080)),  # field coding: 2 x 544
    ],
)
def test_h264_high_profiles_and_interlaced(
    pix_fmt: str, options: dict[str, str], size: tuple[int, int]
) -> None:
    packets = encode("libx264", *size, pix_fmt=pix_fmt, **options)
    first = FrameParser().parse("H264", packets[0], 0)
    assert first.keyframe and (first.width, first.height) == size
    assert decoded_sizes("h264", packets) == {size}


@pytest.mark.parametrize(("width", "height"), [*SIZES, (641, 361), (33, 17)])
def test_vp8_keyframes_carry_the_encoded_size(width: int, height: int) -> None:
    packets = encode("libvpx", width, height, deadline="realtime")
    parser = FrameParser()
    frames = [parser.parse("VP8", p, 3000 * i) for i, p in enumerate(packets)]
    assert frames[0].keyframe and (frames[0].width, frames[0].height) == (width, height)
    assert all(f.width is None for f in frames[1:] if not f.keyframe)
    assert vp8_size(packets[0]) == (width, height)


def test_an_idr_without_parameter_sets_gets_the_remembered_size() -> None:
    packets = encode("libx264", 640, 360, profile="baseline", tune="zerolatency")
    parser = FrameParser()
    parser.parse("H264", packets[0], 0)
    idr_only = START_CODE + next(u for u in h264_nal_units(packets[0]) if u[0] & 0x1F == 5)
    again = parser.parse("H264", idr_only, 9000)
    assert again.keyframe and (again.width, again.height) == (640, 360)


# --- an SPS with scaling lists ---------------------------------------------------------


class BitReader:
    def __init__(self, data: bytes) -> None:
        self.bits = "".join(f"{b:08b}" for b in data)
        self.pos = 0

    def u(self, n: int) -> int:
        value = int(self.bits[self.pos : self.pos + n] or "0", 2)
        self.pos += n
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
        return (1 << zeros) - 1 + (self.u(zeros) if zeros else 0)


def ue_bits(value: int) -> str:
    code = f"{value + 1:b}"
    return "0" * (len(code) - 1) + code


def se_bits(value: int) -> str:
    return ue_bits(2 * value - 1 if value > 0 else -2 * value)


def unescape(nal: bytes) -> bytes:
    return nal.replace(b"\x00\x00\x03", b"\x00\x00")


def escape(rbsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for b in rbsp:
        if zeros >= 2 and b <= 3:
            out.append(3)
            zeros = 0
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def with_scaling_lists(sps: bytes, lists: list[list[int] | None]) -> bytes:
    """The same High-profile SPS with ``seq_scaling_matrix_present_flag`` set and these
    lists (None: not present; a list: the delta_scale values written)."""
    rbsp = unescape(sps[1:])
    r = BitReader(rbsp)
    r.u(24)  # profile, constraints, level
    r.ue()  # sps id
    chroma = r.ue()
    if chroma == 3:
        r.u(1)
    r.ue()
    r.ue()
    r.u(1)  # transform bypass
    head = r.bits[: r.pos]
    assert r.u(1) == 0, "x264 writes no scaling matrix in the SPS"
    tail = r.bits[r.pos :].rstrip("0")[:-1]  # without rbsp_stop_one_bit and its alignment
    matrix = "1" + "".join(
        "0" if deltas is None else "1" + "".join(se_bits(d) for d in deltas) for deltas in lists
    )
    bits = head + matrix + tail + "1"
    bits += "0" * (-len(bits) % 8)
    return sps[:1] + escape(int(bits, 2).to_bytes(len(bits) // 8, "big"))


def flat_with_bumps(size: int) -> list[int]:
    """Deltas of a list that starts at 16 and wanders a little (every delta is written)."""
    deltas, last = [], 8
    for j in range(size):
        want = 16 + (j % 3) - 1
        deltas.append(((want - last + 128) % 256) - 128)
        last = want
    return deltas


@pytest.mark.parametrize(("width", "height"), [(854, 480), (1920, 1080)])
def test_h264_sps_with_scaling_lists(width: int, height: int) -> None:
    packets = encode("libx264", width, height, profile="high", tune="zerolatency")
    units = h264_nal_units(packets[0])
    sps = next(u for u in units if u[0] & 0x1F == 7)
    # 4x4 lists: two explicit, one "use the default" (a first delta that makes 0), three
    # absent; 8x8: the luma intra list explicit, the inter one absent.
    lists: list[list[int] | None] = [
        flat_with_bumps(16),
        flat_with_bumps(16),
        [-8],
        None,
        None,
        None,
        flat_with_bumps(64),
        None,
    ]
    patched = with_scaling_lists(sps, lists)
    assert h264_sps_size(patched) == (width, height)
    stream = [
        b"".join(START_CODE + (patched if u is sps else u) for u in units),
        *packets[1:],
    ]
    # FFmpeg reads the same SPS, scaling lists and all, and decodes at that size
    assert decoded_sizes("h264", stream) == {(width, height)}
    assert FrameParser().parse("H264", stream[0], 0).width == width


# --- garbage -------------------------------------------------------------------------

FUZZ = settings(max_examples=400, deadline=timedelta(milliseconds=500))


@FUZZ
@given(st.binary(max_size=2048))
def test_sps_parser_never_raises_on_random_bytes(data: bytes) -> None:
    size = h264_sps_size(b"\x67" + data)
    assert size is None or (0 < size[0] <= 8192 and 0 < size[1] <= 8192)


@FUZZ
@given(st.binary(max_size=4096))
def test_frame_parser_never_raises_on_random_frames(data: bytes) -> None:
    parser = FrameParser()
    for payload in (data, START_CODE + b"\x67" + data, START_CODE + b"\x65" + data):
        frame = parser.parse("H264", payload, 0)
        assert frame.width is None or frame.width > 0
    vp8 = parser.parse("VP8", data, 0)
    assert vp8.width is None or vp8.keyframe


_REAL_SPS = [
    next(u for u in h264_nal_units(encode("libx264", 854, 480, profile=p)[0]) if u[0] & 0x1F == 7)
    for p in ("baseline", "high")
]


@FUZZ
@given(st.sampled_from(_REAL_SPS), st.lists(st.integers(0, 10**6), max_size=8), st.integers(0, 64))
def test_damaged_real_sps_never_raises(sps: bytes, flips: list[int], cut: int) -> None:
    damaged = bytearray(sps[: max(1, len(sps) - cut)])
    for flip in flips:
        bit = flip % (8 * len(damaged) - 8) + 8 if len(damaged) > 1 else 0
        damaged[bit // 8] ^= 0x80 >> (bit % 8)
    size = h264_sps_size(bytes(damaged))
    assert size is None or (0 < size[0] <= 8192 and 0 < size[1] <= 8192)


def test_a_huge_garbage_nal_is_read_only_as_far_as_an_sps_goes() -> None:
    rng = random.Random(5)
    junk = b"\x67" + bytes(rng.getrandbits(8) for _ in range(1 << 20))
    h264_sps_size(junk)  # returns (something or None) without reading a megabyte of bits
    assert h264_sps_size(b"\x67" + b"\x00" * 4096) is None  # endless leading zeros


@pytest.mark.parametrize(("width", "height"), [(320, 180), (1280, 720)])
def test_the_packets_with_parameter_sets_are_found_in_the_sfus_own_packetization(
    width: int, height: int
) -> None:
    """The SFU restarts a classroom that lost the packet with a keyframe's SPS/PPS
    (media/consumer.py): that packet is found among a real keyframe's packets, as the SFU
    packetizes them (aiortc: SPS and PPS in a STAP-A, then the IDR), and in no P-frame's."""
    parser = FrameParser()
    frames = [
        parser.parse("H264", data, 3000 * i)
        for i, data in enumerate(
            encode("libx264", width, height, profile="baseline", tune="zerolatency")
        )
    ]
    assert frames[0].keyframe and not any(f.keyframe for f in frames[1:])
    key = [h264_rtp_has_parameter_sets(p) for p in frames[0].payloads]
    assert key[0] and not any(key[1:]), key
    assert frames[0].payloads[0][0] & 0x1F == 24  # a STAP-A
    assert not any(h264_rtp_has_parameter_sets(p) for f in frames[1:] for p in f.payloads)
    sps = next(u for u in h264_nal_units(frames[0].data) if u[0] & 0x1F == 7)
    pps = next(u for u in h264_nal_units(frames[0].data) if u[0] & 0x1F == 8)
    assert h264_rtp_has_parameter_sets(sps) and h264_rtp_has_parameter_sets(pps)  # alone
    fu_start = bytes([0x7C, 0x80 | 7]) + sps[1:40]
    assert h264_rtp_has_parameter_sets(fu_start)
    assert not h264_rtp_has_parameter_sets(bytes([0x7C, 7]) + sps[1:40])  # a later fragment


@settings(max_examples=300, deadline=timedelta(milliseconds=200))
@given(st.binary(max_size=64))
def test_any_bytes_as_a_payload_never_raise_looking_for_parameter_sets(data: bytes) -> None:
    assert h264_rtp_has_parameter_sets(data) in (True, False)
