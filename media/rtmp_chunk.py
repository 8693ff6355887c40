"""RTMP's chunk stream (Adobe RTMP specification 1.0, 5.3): messages cut into chunks.

``ChunkReader`` reassembles a publisher's messages from its chunks, bounded: a chunk size
the peer sets is capped (``MAX_CHUNK_SIZE``), a message longer than ``max_message``, more
open chunk streams than ``MAX_CHUNK_STREAMS`` and more than two messages' worth of partial
messages at once are errors (``ChunkError``: the
connection is cut), every read has an idle timeout, and the bytes read are metered by a
token bucket (``ReadBudget``) so a publisher that floods is cut off, not buffered.
``ChunkWriter`` sends the server's few messages (whole, one chunk stream each).
"""

from __future__ import annotations

import asyncio
import struct
import time
from dataclasses import dataclass

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 65536  # the spec allows 2^31-1; no encoder needs more than this
MAX_CHUNK_STREAMS = 64
EXTENDED = 0xFFFFFF

SET_CHUNK_SIZE, ABORT, ACK, USER_CONTROL, WINDOW_ACK_SIZE, SET_PEER_BANDWIDTH = 1, 2, 3, 4, 5, 6
AUDIO, VIDEO, DATA_AMF3, COMMAND_AMF3, DATA_AMF0, COMMAND_AMF0 = 8, 9, 15, 17, 18, 20


class ChunkError(Exception):
    """The peer broke the chunk stream's rules or its bounds."""


@dataclass(slots=True)
class Message:
    type_id: int
    stream_id: int
    timestamp: int  # milliseconds
    body: bytes


class ReadBudget:
    """A token bucket over the bytes a connection reads: ``rate`` bytes a second, ``burst``
    at once. Running dry is a flood (the publisher sends past its bitrate cap)."""

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self.tokens = burst
        self.at = time.monotonic()

    def spend(self, n: int) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.rate)
        self.at = now
        self.tokens -= n
        return self.tokens >= 0


class Flooded(ChunkError):
    """The publisher sent more than its bitrate cap allows."""


@dataclass(slots=True)
class _Stream:
    timestamp: int = 0
    delta: int = 0
    length: int = 0
    type_id: int = 0
    stream_id: int = 0
    extended: bool = False
    buffer: bytearray | None = None


class ChunkReader:
    def __init__(
        self,
        reader: asyncio.StreamReader,
        *,
        max_message: int,
        idle_timeout: float,
        budget: ReadBudget | None = None,
    ) -> None:
        self.reader = reader
        self.max_message = max_message
        self.idle_timeout = idle_timeout
        self.budget = budget
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.bytes_read = 0
        self._streams: dict[int, _Stream] = {}
        self._buffered = 0  # bytes of messages not yet whole, over every chunk stream

    async def read(self, n: int) -> bytes:
        try:
            async with asyncio.timeout(self.idle_timeout):  # no task per read (wait_for's)
                data = await self.reader.readexactly(n)
        except TimeoutError as exc:
            raise ChunkError(f"nothing received for {self.idle_timeout:.0f} s") from exc
        self.bytes_read += n
        if self.budget is not None and not self.budget.spend(n):
            raise Flooded("more than the bitrate cap")
        return data

    def set_chunk_size(self, size: int) -> None:
        size &= 0x7FFFFFFF
        if not 1 <= size <= MAX_CHUNK_SIZE:
            raise ChunkError(f"chunk size {size} out of bounds (1..{MAX_CHUNK_SIZE})")
        self.chunk_size = size

    def abort(self, csid: int) -> None:
        stream = self._streams.get(csid)
        if stream is not None and stream.buffer is not None:
            self._buffered -= len(stream.buffer)
            stream.buffer = None

    async def message(self) -> Message:
        """The next whole message (control messages included: the caller handles them)."""
        while True:
            message = await self._chunk()
            if message is not None:
                return message

    async def _chunk(self) -> Message | None:
        first = (await self.read(1))[0]
        fmt, csid = first >> 6, first & 0x3F
        if csid == 0:
            csid = 64 + (await self.read(1))[0]
        elif csid == 1:
            b = await self.read(2)
            csid = 64 + b[0] + b[1] * 256
        stream = self._streams.get(csid)
        if stream is None:
            if fmt != 0:
                raise ChunkError(f"chunk stream {csid} starts without a full header")
            if len(self._streams) >= MAX_CHUNK_STREAMS:
                raise ChunkError("too many chunk streams")
            stream = self._streams[csid] = _Stream()
        starting = stream.buffer is None
        if fmt == 0:
            h = await self.read(11)
            ts = int.from_bytes(h[0:3], "big")
            stream.length = int.from_bytes(h[3:6], "big")
            stream.type_id = h[6]
            stream.stream_id = struct.unpack("<I", h[7:11])[0]
            stream.extended = ts == EXTENDED
            if stream.extended:
                ts = int.from_bytes(await self.read(4), "big")
            stream.timestamp, stream.delta = ts, 0
        elif fmt in (1, 2):
            h = await self.read(7 if fmt == 1 else 3)
            delta = int.from_bytes(h[0:3], "big")
            if fmt == 1:
                stream.length = int.from_bytes(h[3:6], "big")
                stream.type_id = h[6]
            stream.extended = delta == EXTENDED
            if stream.extended:
                delta = int.from_bytes(await self.read(4), "big")
            stream.delta = delta
            stream.timestamp = (stream.timestamp + delta) & 0xFFFFFFFF
        else:
            if stream.extended:
                await self.read(4)  # repeated on every chunk of the message (FFmpeg, OBS)
            if starting:
                stream.timestamp = (stream.timestamp + stream.delta) & 0xFFFFFFFF
        if fmt != 3 and not starting:
            raise ChunkError(f"chunk stream {csid} got a new header mid-message")
        if stream.length > self.max_message:
            raise ChunkError(f"a message of {stream.length} bytes (at most {self.max_message})")
        if starting:
            stream.buffer = bytearray()
        buffer = stream.buffer
        assert buffer is not None
        n = min(self.chunk_size, stream.length - len(buffer))
        if n > 0:
            if self._buffered + n > 2 * self.max_message:
                raise ChunkError("too many partial messages at once")
            buffer += await self.read(n)
            self._buffered += n
        if len(buffer) < stream.length:
            return None
        self._buffered -= len(buffer)
        stream.buffer = None
        return Message(stream.type_id, stream.stream_id, stream.timestamp, bytes(buffer))


class ChunkWriter:
    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.chunk_size = DEFAULT_CHUNK_SIZE

    def write(self, csid: int, message: Message) -> None:
        body = message.body
        ts = min(message.timestamp, EXTENDED)
        header = bytes([csid & 0x3F]) + ts.to_bytes(3, "big") + len(body).to_bytes(3, "big")
        header += bytes([message.type_id]) + struct.pack("<I", message.stream_id)
        extended = message.timestamp.to_bytes(4, "big") if ts == EXTENDED else b""
        out = [header, extended]
        for i in range(0, max(1, len(body)), self.chunk_size):
            if i:
                out += [bytes([0xC0 | (csid & 0x3F)]), extended]
            out.append(body[i : i + self.chunk_size])
        self.writer.write(b"".join(out))

    def set_chunk_size(self, size: int) -> None:
        self.write(2, Message(SET_CHUNK_SIZE, 0, 0, struct.pack(">I", size)))
        self.chunk_size = size

    def control(self, type_id: int, body: bytes) -> None:
        self.write(2, Message(type_id, 0, 0, body))
