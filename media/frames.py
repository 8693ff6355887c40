"""Encoded frames on the relay path: keyframe detection, H264 parameter sets, packetizing once."""

from __future__ import annotations

from dataclasses import dataclass, field

from media.aiortc_seams import packetize

START_CODE = b"\x00\x00\x00\x01"
H264_IDR = 5
H264_SPS = 7
H264_PPS = 8


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


def vp8_is_keyframe(data: bytes) -> bool:
    # RFC 6386 9.1: the frame tag's first bit is 0 for a key frame.
    return len(data) >= 3 and (data[0] & 0x01) == 0


@dataclass(slots=True)
class EncodedFrame:
    """One complete encoded frame from a producer, shared by all of its consumers."""

    codec: str  # "H264" | "VP8" | "opus" | ...
    data: bytes
    timestamp: int  # RTP clock units, 0 at the producer's first frame
    keyframe: bool
    picture_id: int = 0
    _payloads: list[bytes] | None = field(default=None, repr=False)

    @property
    def payloads(self) -> list[bytes]:
        """RTP payloads, packetized once on first use for every consumer."""
        if self._payloads is None:
            self._payloads = packetize(self.codec, self.data, self.picture_id)
        return self._payloads


class FrameParser:
    """Per-producer state: keyframe detection, H264 SPS/PPS kept for IDRs that lack them."""

    def __init__(self) -> None:
        self._sps: bytes | None = None
        self._pps: bytes | None = None
        self._picture_id = 0

    def parse(self, codec: str, data: bytes, timestamp: int) -> EncodedFrame:
        keyframe = True
        if codec == "H264":
            types = h264_nal_types(data)
            if H264_SPS in types or H264_PPS in types:
                for unit in h264_nal_units(data):
                    if unit and unit[0] & 0x1F == H264_SPS:
                        self._sps = unit
                    elif unit and unit[0] & 0x1F == H264_PPS:
                        self._pps = unit
            keyframe = H264_IDR in types
            if keyframe and H264_SPS not in types and self._sps and self._pps:
                data = START_CODE + self._sps + START_CODE + self._pps + data
            # An IDR without any known parameter set cannot start a decoder.
            keyframe = keyframe and (H264_SPS in types or self._sps is not None)
        elif codec == "VP8":
            keyframe = vp8_is_keyframe(data)
            self._picture_id = (self._picture_id + 1) & 0x7FFF
        return EncodedFrame(codec, data, timestamp, keyframe, self._picture_id)
