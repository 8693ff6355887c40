"""AMF0 (Adobe's Action Message Format 0), the encoding of RTMP's commands.

Only what a publisher sends and a server answers: numbers, booleans, strings, objects,
ECMA arrays, null/undefined and strict arrays. Written by hand: it is a few dozen lines,
and the PyPI packages for it (``pyamf``: unmaintained, Python 2 era) would weigh more than
they save. Decoding is bounded: nesting depth and element counts are capped, a truncated
or unknown value raises ``AmfError`` (the connection is cut, never the process).
"""

from __future__ import annotations

import struct

NUMBER, BOOLEAN, STRING, OBJECT, NULL, UNDEFINED = 0x00, 0x01, 0x02, 0x03, 0x05, 0x06
ECMA_ARRAY, OBJECT_END, STRICT_ARRAY, LONG_STRING = 0x08, 0x09, 0x0A, 0x0C
MAX_DEPTH = 8
MAX_ELEMENTS = 256

AmfValue = float | bool | str | None | dict[str, "AmfValue"] | list["AmfValue"]


class AmfError(ValueError):
    """Not AMF0 a server can read."""


def encode(*values: AmfValue) -> bytes:
    return b"".join(_encode(v) for v in values)


def _encode(value: AmfValue) -> bytes:
    if value is None:
        return bytes([NULL])
    if isinstance(value, bool):
        return bytes([BOOLEAN, 1 if value else 0])
    if isinstance(value, int | float):
        return bytes([NUMBER]) + struct.pack(">d", float(value))
    if isinstance(value, str):
        raw = value.encode()
        if len(raw) > 0xFFFF:
            return bytes([LONG_STRING]) + struct.pack(">I", len(raw)) + raw
        return bytes([STRING]) + _short(raw)
    if isinstance(value, dict):
        body = b"".join(_short(k.encode()) + _encode(v) for k, v in value.items())
        return bytes([OBJECT]) + body + b"\x00\x00" + bytes([OBJECT_END])
    body = b"".join(_encode(v) for v in value)
    return bytes([STRICT_ARRAY]) + struct.pack(">I", len(value)) + body


def _short(raw: bytes) -> bytes:
    return struct.pack(">H", len(raw)) + raw


def decode_all(data: bytes) -> list[AmfValue]:
    """Every value in ``data`` (a command message's body)."""
    reader = _Reader(data)
    values: list[AmfValue] = []
    while reader.pos < len(data):
        if len(values) >= MAX_ELEMENTS:
            raise AmfError("too many values")
        values.append(reader.value(0))
    return values


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise AmfError("truncated AMF0")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def short_string(self) -> str:
        (n,) = struct.unpack(">H", self.take(2))
        return self.take(n).decode("utf-8", "replace")

    def value(self, depth: int) -> AmfValue:
        if depth > MAX_DEPTH:
            raise AmfError("AMF0 nested too deep")
        marker = self.take(1)[0]
        if marker == NUMBER:
            return float(struct.unpack(">d", self.take(8))[0])
        if marker == BOOLEAN:
            return self.take(1)[0] != 0
        if marker == STRING:
            return self.short_string()
        if marker == LONG_STRING:
            (n,) = struct.unpack(">I", self.take(4))
            return self.take(n).decode("utf-8", "replace")
        if marker in (NULL, UNDEFINED):
            return None
        if marker in (OBJECT, ECMA_ARRAY):
            if marker == ECMA_ARRAY:
                self.take(4)  # an approximate count; the end marker is what counts
            return self.properties(depth)
        if marker == STRICT_ARRAY:
            (n,) = struct.unpack(">I", self.take(4))
            if n > MAX_ELEMENTS:
                raise AmfError("AMF0 array too long")
            return [self.value(depth + 1) for _ in range(n)]
        raise AmfError(f"AMF0 marker {marker:#x} not supported")

    def properties(self, depth: int) -> dict[str, AmfValue]:
        props: dict[str, AmfValue] = {}
        while True:
            key = self.short_string()
            if key == "" and self.pos < len(self.data) and self.data[self.pos] == OBJECT_END:
                self.pos += 1
                return props
            if len(props) >= MAX_ELEMENTS:
                raise AmfError("AMF0 object too large")
            props[key] = self.value(depth + 1)
