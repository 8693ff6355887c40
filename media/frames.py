"""Encoded frames on the relay path: keyframe detection, H264 parameter sets, packetizing once.

A keyframe also tells the picture size, read from the bitstream without decoding: the H264
sequence parameter set (ITU-T H.264 7.3.2.1.1, with the frame cropping that turns a coded
1920x1088 into 1080p) and the VP8 key frame header (RFC 6386 9.1). It is what the SFU
really receives, whatever the publisher's page says it sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from media.aiortc_seams import packetize

START_CODE = b"\x00\x00\x00\x01"
H264_SLICE = 1  # a coded slice of a non-IDR picture
H264_IDR = 5
H264_SPS = 7
H264_PPS = 8
# Profiles whose SPS carries chroma format, bit depths and scaling lists (H.264 7.3.2.1.1).
H264_HIGH_PROFILES = frozenset({100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135})
# An SPS with every scaling list is well under this; garbage past it is not read at all.
MAX_SPS_BYTES = 1024
MAX_DIMENSION = 8192  # level 6.2 allows 8192x4320; the protocol says 8192 too


def h264_nal_types(data: bytes) -> list[int]:
    """NAL unit types of an Annex-B access unit."""
    types: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1 and i + 3 < len(data):
        types.append(data[i + 3] & 0x1F)
        i = data.find(b"\x00\x00\x01", i + 3)
    return types


def h264_nal_units(data: bytes) -> list[bytes]:
    units: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = len(data) if j == -1 else (j - 1 if data[j - 1] == 0 else j)
        units.append(data[start:end])
        i = j
    return units


H264_STAP_A = 24  # RFC 6184 5.7.1: several NAL units in one packet, each after a 16-bit size
H264_FU_A = 28  # RFC 6184 5.8: one fragment of a NAL unit


def h264_rtp_has_parameter_sets(payload: bytes) -> bool:
    """Whether an H264 RTP payload (RFC 6184) carries an SPS or a PPS: alone, in a STAP-A,
    or as the first fragment of one."""
    if not payload:
        return False
    kind = payload[0] & 0x1F
    if kind in (H264_SPS, H264_PPS):
        return True
    if kind == H264_FU_A:
        return (
            len(payload) > 1
            and payload[1] & 0x80 != 0
            and payload[1] & 0x1F in (H264_SPS, H264_PPS)
        )
    if kind == H264_STAP_A:
        i = 1
        while i + 2 < len(payload):
            size = int.from_bytes(payload[i : i + 2], "big")
            if payload[i + 2] & 0x1F in (H264_SPS, H264_PPS):
                return True
            i += 2 + size
    return False


def vp8_is_keyframe(data: bytes) -> bool:
    # RFC 6386 9.1: the frame tag's first bit is 0 for a key frame.
    return len(data) >= 3 and (data[0] & 0x01) == 0


def vp8_size(data: bytes) -> tuple[int, int] | None:
    """Width and height of a VP8 key frame (RFC 6386 9.1), None for anything else."""
    if len(data) < 10 or not vp8_is_keyframe(data) or data[3:6] != b"\x9d\x01\x2a":
        return None
    # 14 bits of size, then 2 bits of upscaling the decoder does not apply to the stream
    width = int.from_bytes(data[6:8], "little") & 0x3FFF
    height = int.from_bytes(data[8:10], "little") & 0x3FFF
    return (width, height) if width and height else None


class _BitsExhausted(Exception):
    """Read past the end of a (possibly garbage) parameter set."""


class _Bits:
    """An RBSP bit reader: Exp-Golomb codes (H.264 9.1) over the bytes after the NAL header."""

    def __init__(self, rbsp: bytes) -> None:
        self._value = int.from_bytes(rbsp, "big")
        self._left = len(rbsp) * 8

    def u(self, n: int) -> int:
        if n > self._left:
            raise _BitsExhausted
        self._left -= n
        return (self._value >> self._left) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:  # no syntax element is that large: garbage
                raise _BitsExhausted
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        k = self.ue()
        return (k + 1) // 2 if k & 1 else -(k // 2)


def _rbsp(nal: bytes) -> bytes:
    """The payload without its header and emulation-prevention bytes (00 00 03 → 00 00)."""
    out = bytearray()
    zeros = 0
    for b in nal[1:MAX_SPS_BYTES]:
        if zeros >= 2 and b == 3:
            zeros = 0
            continue
        out.append(b)
        zeros = zeros + 1 if b == 0 else 0
    return bytes(out)


def h264_is_b_slice(nal: bytes) -> bool:
    """Whether a non-IDR slice NAL unit is a B slice (H.264 7.3.3: first_mb_in_slice, then
    slice_type; 1 and 6 are B). Reads a few bytes; garbage is not a B slice."""
    if len(nal) < 2 or nal[0] & 0x1F != H264_SLICE:
        return False
    try:
        bits = _Bits(_rbsp(nal[:16]))
        bits.ue()  # first_mb_in_slice
        return bits.ue() % 5 == 1
    except _BitsExhausted:
        return False


def _skip_scaling_list(bits: _Bits, size: int) -> None:
    last, following = 8, 8
    for _ in range(size):
        if following != 0:
            following = (last + bits.se() + 256) % 256
        last = following if following != 0 else last


def h264_sps_size(nal: bytes) -> tuple[int, int] | None:
    """Display width and height from an H264 SPS NAL unit (header byte included).

    Never raises: a truncated or garbage parameter set gives None, so nothing on the
    forwarding path can fail because of what a publisher sent.
    """
    try:
        return _sps_size(nal)
    except (_BitsExhausted, ValueError, IndexError):
        return None


def _sps_size(nal: bytes) -> tuple[int, int] | None:
    if len(nal) < 4 or nal[0] & 0x1F != H264_SPS:
        return None
    bits = _Bits(_rbsp(nal))
    profile_idc = bits.u(8)
    bits.u(16)  # constraint flags, level_idc
    bits.ue()  # seq_parameter_set_id
    chroma_format_idc, separate_planes = 1, 0
    if profile_idc in H264_HIGH_PROFILES:
        chroma_format_idc = bits.ue()
        if chroma_format_idc > 3:
            return None
        if chroma_format_idc == 3:
            separate_planes = bits.u(1)
        bits.ue()  # bit_depth_luma_minus8
        bits.ue()  # bit_depth_chroma_minus8
        bits.u(1)  # qpprime_y_zero_transform_bypass_flag
        if bits.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if bits.u(1):
                    _skip_scaling_list(bits, 16 if i < 6 else 64)
    bits.ue()  # log2_max_frame_num_minus4
    poc_type = bits.ue()
    if poc_type == 0:
        bits.ue()  # log2_max_pic_order_cnt_lsb_minus4
    elif poc_type == 1:
        bits.u(1)  # delta_pic_order_always_zero_flag
        bits.se()  # offset_for_non_ref_pic
        bits.se()  # offset_for_top_to_bottom_field
        cycle = bits.ue()
        if cycle > 255:
            return None
        for _ in range(cycle):
            bits.se()
    elif poc_type != 2:
        return None
    bits.ue()  # max_num_ref_frames
    bits.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = bits.ue() + 1
    height_units = bits.ue() + 1
    frame_mbs_only = bits.u(1)
    if not frame_mbs_only:
        bits.u(1)  # mb_adaptive_frame_field_flag
    bits.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = (2 - frame_mbs_only) * height_units * 16
    if bits.u(1):  # frame_cropping_flag: crops count in chroma samples (H.264 7.4.2.1.1)
        if separate_planes or chroma_format_idc == 0:
            unit_x, unit_y = 1, 2 - frame_mbs_only
        else:
            unit_x = 1 if chroma_format_idc == 3 else 2
            unit_y = (2 if chroma_format_idc == 1 else 1) * (2 - frame_mbs_only)
        left, right, top, bottom = bits.ue(), bits.ue(), bits.ue(), bits.ue()
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
    if not (0 < width <= MAX_DIMENSION and 0 < height <= MAX_DIMENSION):
        return None
    return width, height


@dataclass(slots=True)
class EncodedFrame:
    """One complete encoded frame from a producer, shared by all of its consumers."""

    codec: str  # "H264" | "VP8" | "opus" | ...
    data: bytes
    timestamp: int  # RTP clock units, 0 at the producer's first frame
    keyframe: bool
    picture_id: int = 0
    # the picture size on keyframes (from the SPS / the VP8 header), None when unknown
    width: int | None = None
    height: int | None = None
    _payloads: list[bytes] | None = field(default=None, repr=False)

    @property
    def payloads(self) -> list[bytes]:
        """RTP payloads, packetized once on first use for every consumer."""
        if self._payloads is None:
            self._payloads = packetize(self.codec, self.data, self.picture_id)
        return self._payloads


class FrameParser:
    """Per-producer state: keyframe detection, H264 SPS/PPS kept for IDRs that lack them,
    and the picture size the last parameter set (or VP8 key frame) declared."""

    def __init__(self) -> None:
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self._size: tuple[int, int] | None = None
        self._picture_id = 0
        # B-frames (bidirectional prediction, x264's default): WebRTC receivers play frames
        # in arrival order, so such a stream stutters; the publisher's encoder must not send them
        self.b_frames = 0

    def parse(self, codec: str, data: bytes, timestamp: int) -> EncodedFrame:
        keyframe = True
        size: tuple[int, int] | None = None
        if codec == "H264":
            types = h264_nal_types(data)
            if H264_SPS in types or H264_PPS in types:
                for unit in h264_nal_units(data):
                    if unit and unit[0] & 0x1F == H264_SPS:
                        if unit != self._sps:  # parsed once per new parameter set
                            self._size = h264_sps_size(unit)
                        self._sps = unit
                    elif unit and unit[0] & 0x1F == H264_PPS:
                        self._pps = unit
            keyframe = H264_IDR in types
            if not keyframe and H264_SLICE in types and self._b_slice(data):
                self.b_frames += 1
            if keyframe and H264_SPS not in types and self._sps and self._pps:
                data = START_CODE + self._sps + START_CODE + self._pps + data
            # An IDR without any known parameter set cannot start a decoder.
            keyframe = keyframe and (H264_SPS in types or self._sps is not None)
            size = self._size if keyframe else None
        elif codec == "VP8":
            keyframe = vp8_is_keyframe(data)
            if keyframe:
                size = vp8_size(data)
            self._picture_id = (self._picture_id + 1) & 0x7FFF
        width, height = size if size is not None else (None, None)
        return EncodedFrame(codec, data, timestamp, keyframe, self._picture_id, width, height)

    @staticmethod
    def _b_slice(data: bytes) -> bool:
        """The access unit's first slice decides (its slices share the picture's type in
        the streams encoders make)."""
        i = data.find(b"\x00\x00\x01")
        while i != -1 and i + 3 < len(data):
            if data[i + 3] & 0x1F == H264_SLICE:
                return h264_is_b_slice(data[i + 3 : i + 3 + 16])
            i = data.find(b"\x00\x00\x01", i + 3)
        return False
