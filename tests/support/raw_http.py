"""A raw HTTP/1.1 client over an asyncio stream: sends a body in pieces, with pauses between.

aiohttp's client writes a body at once; a slow school link or a proxy delivers it in pieces.
This client makes the pieces explicit (each written and drained before a pause), with a
Content-Length or chunked framing, and reads the whole reply.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any


@dataclass
class RawReply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def split(body: bytes, pieces: int) -> list[bytes]:
    """``body`` in ``pieces`` parts (the last takes the rest); empty bodies stay one piece."""
    if pieces <= 1 or len(body) < pieces:
        return [body]
    size = len(body) // pieces
    return [body[k * size : (k + 1) * size] for k in range(pieces - 1)] + [
        body[(pieces - 1) * size :]
    ]


async def send_in_pieces(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes,
    *,
    headers: dict[str, str] | None = None,
    pieces: int = 3,
    pause: float = 0.1,
    chunked: bool = False,
    declared_length: int | None = None,
) -> RawReply:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if chunked:
            lines.append("Transfer-Encoding: chunked")
        else:
            lines.append(
                f"Content-Length: {len(body) if declared_length is None else declared_length}"
            )
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
        await writer.drain()
        try:
            for part in split(body, pieces):
                await asyncio.sleep(pause)
                writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
                await writer.drain()
            if chunked:
                writer.write(b"0\r\n\r\n")
                await writer.drain()
        except ConnectionError:
            pass  # the server answered (413) before the body was complete
        return await asyncio.wait_for(_read_reply(reader), timeout=60)
    finally:
        writer.close()


async def _read_reply(reader: asyncio.StreamReader) -> RawReply:
    """The reply, read by its framing (the server may linger on an unread body before closing)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        payload = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        payload = _dechunk(await reader.read())
    else:
        payload = await reader.read()
    return RawReply(int(status_line.split()[1]), headers, payload)


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)
