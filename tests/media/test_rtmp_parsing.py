"""The RTMP server's parsers on what a publisher may send: AMF0 values round-trip, and
arbitrary bytes give a clear error (the connection is cut), never another exception."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media import amf0
from media.flv import FlvError, audio_tag, video_tag
from media.rtmp_chunk import ChunkError, ChunkReader, ChunkWriter, Message

values = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


@given(st.lists(values, max_size=5))
def test_amf0_round_trips(decoded: list[amf0.AmfValue]) -> None:
    assert amf0.decode_all(amf0.encode(*decoded)) == decoded


@given(st.binary(max_size=300))
def test_amf0_garbage_is_an_amf_error(data: bytes) -> None:
    with contextlib.suppress(amf0.AmfError):
        amf0.decode_all(data)


def test_amf0_nesting_is_bounded() -> None:
    deep: amf0.AmfValue = "x"
    for _ in range(20):
        deep = [deep]
    with pytest.raises(amf0.AmfError):
        amf0.decode_all(amf0.encode(deep))


@given(st.binary(max_size=64))
def test_flv_tags_of_garbage_are_read_or_refused(data: bytes) -> None:
    for parse in (video_tag, audio_tag):
        with contextlib.suppress(FlvError):
            parse(data)


def test_flv_names_what_is_not_h264() -> None:
    assert video_tag(bytes([0x1C, 0, 0, 0, 0])).codec == "H.265"
    assert video_tag(bytes([0x90]) + b"hvc1" + bytes(4)).codec == "H.265"  # enhanced RTMP
    avc = video_tag(bytes([0x27, 1, 0, 0, 0x28]) + b"nal")
    assert (avc.codec, avc.keyframe, avc.composition_ms, avc.payload) == ("h264", False, 40, b"nal")


async def _read_all(data: bytes) -> list[Message]:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    chunks = ChunkReader(reader, max_message=4096, idle_timeout=1)
    messages = []
    try:
        while True:
            messages.append(await chunks.message())
    except (ChunkError, asyncio.IncompleteReadError):
        return messages


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_chunk_stream_garbage_ends_in_a_chunk_error(data: bytes) -> None:
    asyncio.run(_read_all(data))


class _Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data


@settings(deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(3, 60), st.integers(0, 0xFFFFFFFF), st.binary(max_size=3000)),
        max_size=4,
    ),
)
def test_messages_written_in_chunks_read_back(sent: list[tuple[int, int, bytes]]) -> None:
    sink = _Sink()
    writer = ChunkWriter(sink)  # type: ignore[arg-type]
    for csid, timestamp, body in sent:
        writer.write(csid, Message(9, 1, timestamp, body))
    got = asyncio.run(_read_all(bytes(sink.data)))
    assert [(m.timestamp, m.body) for m in got] == [(t, b) for _, t, b in sent]


def test_the_rtmp_port_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from sanke.settings import Settings

    monkeypatch.setenv("SANKE_RTMP_PORT", "")
    off = Settings()
    assert off.rtmp_port == 0  # empty: no RTMP listener
    monkeypatch.setenv("SANKE_RTMP_PORT", "1936")
    assert Settings().rtmp_server_url() == "rtmp://localhost:1936/live"
    monkeypatch.setenv("SANKE_RTMP_PUBLIC_URL", "rtmp://sanke.example.com:1936/live")
    assert Settings().rtmp_server_url() == "rtmp://sanke.example.com:1936/live"
