"""H.264 byte-stream forms (media.annexb): what an RTSP demuxer, an MP4 or an FLV hands the
SFU becomes Annex B with SPS/PPS before every IDR. The access units are a real x264
stream's (ffmpeg), split by the SFU's own parser."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest

from media.annexb import (
    AnnexBWriter,
    annexb_to_avcc,
    annexb_units,
    avcc_config,
    avcc_to_annexb,
    parameter_sets,
)
from media.frames import FrameParser, h264_nal_types


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("annexb") / "clip.mp4"
    subprocess.run(
        [
            "ffmpeg",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-t",
            "2",
            "-c:v",
            "libx264",
            "-bf",
            "0",
            "-g",
            "30",
            "-pix_fmt",
            "yuv420p",
            str(path),
        ],
        check=True,
    )
    return path


def test_an_mp4s_avcc_packets_become_annexb_with_parameter_sets_before_each_idr(mp4: Path) -> None:
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        extradata = bytes(stream.codec_context.extradata)
        sets, length_size = parameter_sets(extradata)
        assert length_size == 4 and len(sets.sps) == 1 and len(sets.pps) == 1
        writer = AnnexBWriter(extradata)
        parser = FrameParser()
        idrs = 0
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            raw = bytes(packet)
            data, idr = writer.access_unit(raw)
            assert annexb_to_avcc(data).endswith(raw[-64:])
            types = h264_nal_types(data)
            if idr:
                idrs += 1
                assert types[:2] == [7, 8], types  # SPS, PPS, then the IDR
            frame = parser.parse("H264", data, 0)
            assert frame.keyframe == idr
            if idr:
                assert (frame.width, frame.height) == (320, 240)
        assert idrs == 2  # a GOP of 30 over 60 frames


def test_annexb_and_avcc_convert_both_ways_and_garbage_stops_short() -> None:
    units = [b"\x67\x42\x00\x1f\xaa", b"\x68\xce\x3c\x80", b"\x65\x88\x84\x00\x00\x03\x01"]
    annexb = b"".join(b"\x00\x00\x00\x01" + u for u in units)
    assert annexb_units(annexb) == units
    assert avcc_to_annexb(annexb_to_avcc(annexb)) == annexb
    # a length past the end ends the access unit instead of reading beyond it
    assert avcc_to_annexb(b"\x00\x00\x00\x10\x65\x88" + b"\xff\xff\xff\xff") == b""
    # an AVCDecoderConfigurationRecord cut short yields what it holds
    sets, length_size = avcc_config(b"\x01\x42\x00\x1f\xff\xe1\x00\x05\x67\x42\x00\x1f\xaa\x01")
    assert length_size == 4 and sets.sps == (units[0],) and sets.pps == ()
    assert not sets  # no PPS: nothing to put before an IDR
    writer = AnnexBWriter(None)
    data, idr = writer.access_unit(b"\x00\x00\x01\x65\x88")
    assert idr and data == b"\x00\x00\x00\x01\x65\x88"  # no parameter sets known: as is
