"""H.264 byte streams: AVCC (length-prefixed, MP4/FLV) and Annex B (start codes, RTP/WebRTC).

The relay path carries Annex B access units (``media.frames``). A demuxer hands either form
and keeps the parameter sets (SPS/PPS) in its extradata, which an RTSP camera announces in
its SDP (``sprop-parameter-sets``) and may never repeat in band: an IDR without them cannot
start a decoder, so they are put in front of every IDR that lacks them.
"""

from __future__ import annotations

from dataclasses import dataclass

START_CODE = b"\x00\x00\x00\x01"
NAL_IDR = 5
NAL_SPS = 7
NAL_PPS = 8
MAX_PARAMETER_SET_BYTES = 1024


@dataclass(frozen=True, slots=True)
class ParameterSets:
    sps: tuple[bytes, ...] = ()
    pps: tuple[bytes, ...] = ()

    def annexb(self) -> bytes:
        return b"".join(START_CODE + unit for unit in (*self.sps, *self.pps))

    def __bool__(self) -> bool:
        return bool(self.sps) and bool(self.pps)


def is_avcc_config(extradata: bytes) -> bool:
    """An AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) starts with version 1."""
    return len(extradata) >= 7 and extradata[0] == 1


def annexb_units(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B stream (start codes of three or four bytes)."""
    units: list[bytes] = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        start = i + 3
        j = data.find(b"\x00\x00\x01", start)
        end = len(data) if j == -1 else (j - 1 if data[j - 1] == 0 else j)
        if end > start:
            units.append(data[start:end])
        i = j
    return units


def avcc_units(data: bytes, length_size: int = 4) -> list[bytes]:
    """The NAL units of a length-prefixed access unit; a length past the end ends it."""
    units: list[bytes] = []
    i = 0
    while i + length_size <= len(data):
        n = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        if n == 0 or i + n > len(data):
            break
        units.append(data[i : i + n])
        i += n
    return units


def to_annexb(units: list[bytes]) -> bytes:
    return b"".join(START_CODE + unit for unit in units)


def avcc_to_annexb(data: bytes, length_size: int = 4) -> bytes:
    return to_annexb(avcc_units(data, length_size))


def annexb_to_avcc(data: bytes, length_size: int = 4) -> bytes:
    return b"".join(len(u).to_bytes(length_size, "big") + u for u in annexb_units(data))


def avcc_config(extradata: bytes) -> tuple[ParameterSets, int]:
    """The parameter sets of an AVCDecoderConfigurationRecord and its NAL length size."""
    length_size = (extradata[4] & 0x03) + 1
    sps: list[bytes] = []
    pps: list[bytes] = []
    i = 6
    count = extradata[5] & 0x1F
    for target, n in ((sps, count), (pps, -1)):
        if n < 0:
            if i >= len(extradata):
                break
            n = extradata[i]
            i += 1
        for _ in range(n):
            if i + 2 > len(extradata):
                break
            size = int.from_bytes(extradata[i : i + 2], "big")
            i += 2
            if size > MAX_PARAMETER_SET_BYTES or i + size > len(extradata):
                break
            target.append(extradata[i : i + size])
            i += size
    return ParameterSets(tuple(sps), tuple(pps)), length_size


def parameter_sets(extradata: bytes | None) -> tuple[ParameterSets, int | None]:
    """SPS/PPS from a demuxer's extradata, either form; the AVCC length size (None: the
    stream's packets are Annex B)."""
    if not extradata:
        return ParameterSets(), None
    if is_avcc_config(extradata):
        return avcc_config(extradata)
    return from_units(annexb_units(extradata)), None


def from_units(units: list[bytes]) -> ParameterSets:
    sps = tuple(u for u in units if u and u[0] & 0x1F == NAL_SPS)
    pps = tuple(u for u in units if u and u[0] & 0x1F == NAL_PPS)
    return ParameterSets(sps, pps)


class AnnexBWriter:
    """A demuxed stream's packets as Annex B access units, every IDR led by SPS/PPS (the
    latest in band, else the extradata's)."""

    def __init__(self, extradata: bytes | None) -> None:
        self.sets, self.length_size = parameter_sets(extradata)

    def access_unit(self, data: bytes) -> tuple[bytes, bool]:
        """The packet as Annex B, and whether it is an IDR."""
        if self.length_size is not None:
            units = avcc_units(data, self.length_size)
        else:
            units = annexb_units(data)
        types = {u[0] & 0x1F for u in units if u}
        if NAL_SPS in types and NAL_PPS in types:
            self.sets = from_units(units)
        idr = NAL_IDR in types
        if idr and not (NAL_SPS in types and NAL_PPS in types) and self.sets:
            units = [u for u in units if u[0] & 0x1F not in (NAL_SPS, NAL_PPS)]
            return self.sets.annexb() + to_annexb(units), True
        return to_annexb(units), idr
