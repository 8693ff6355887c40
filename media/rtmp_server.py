"""An RTMP server on one port for many publishers (OBS, 录播 hosts), in the SFU process.

Why in Python and not a sidecar (nginx-rtmp, SRS): FFmpeg's ``-listen`` takes one
connection per port, and what Sanke needs of RTMP is small and well specified (the simple
handshake, the chunk stream, a few AMF0 commands, FLV tags): the video is passed through,
so a sidecar would add a process to supervise and a hop to remux through for nothing.

A publish is accepted only if its stream key's SHA-256 is one the SFU expects
(``media.rtmp_ingest.PushTable``: a participant of an open lesson's room, put there by the
lessons side through ``MediaPlane.pull``); anything else gets an RTMP error status
(``NetStream.Publish.BadName``) and the connection is closed. Bounded per connection: the
handshake must finish within ``handshake_timeout``, nothing received for ``idle_timeout``
closes it, a publisher must publish within ``publish_timeout`` of connecting, a message is
at most ``COMMAND_BYTES`` until then and ``max_message_bytes`` after, a chunk size at most
``rtmp_chunk.MAX_CHUNK_SIZE``, and the bytes read at most ``max_bitrate_bps`` (token
bucket, a few seconds of burst): past it the publisher is cut off with a status. At most
``max_connections`` connections at once. A connection's fault never reaches another's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import struct
from collections.abc import Callable

from pydantic import BaseModel, Field

from media import amf0
from media.flv import FlvError, audio_tag, video_tag
from media.rtmp_chunk import (
    ABORT,
    ACK,
    AUDIO,
    COMMAND_AMF0,
    COMMAND_AMF3,
    SET_CHUNK_SIZE,
    SET_PEER_BANDWIDTH,
    USER_CONTROL,
    VIDEO,
    WINDOW_ACK_SIZE,
    ChunkError,
    ChunkReader,
    ChunkWriter,
    Flooded,
    Message,
    ReadBudget,
)
from media.rtmp_ingest import PushTable, Refused, RtmpIngest

log = logging.getLogger(__name__)

HANDSHAKE_BYTES = 1536
OUT_CHUNK_SIZE = 4096
WINDOW = 2_500_000
BURST_SECONDS = 4.0  # a keyframe burst over the cap is fine; a sustained flood is not
COMMAND_BYTES = 64 * 1024  # a message before the publish is accepted (commands only)

NO_LESSON = (
    "no lesson is open for this stream key (or the key is wrong): push once the "
    "classroom's lesson has opened, with the stream key the coordinator was shown"
)

OnRefused = Callable[[str, str], None]  # the stream key's SHA-256, why


class RtmpSettings(BaseModel):
    port: int = Field(default=1935, ge=0, le=65535, description="0: no RTMP listener")
    hosts: list[str] = Field(default_factory=lambda: ["::", "0.0.0.0"])
    max_connections: int = Field(default=200, ge=1)
    max_message_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_bitrate_bps: int = Field(default=20_000_000, ge=10_000)
    handshake_timeout: float = Field(default=10.0, gt=0)
    idle_timeout: float = Field(default=10.0, gt=0)
    publish_timeout: float = Field(default=20.0, gt=0, description="connect to publish")


class _Cut(Exception):
    """End the connection, telling the publisher why (an error status) if it publishes."""


class RtmpServer:
    def __init__(
        self,
        pushes: PushTable,
        settings: RtmpSettings | None = None,
        on_refused: OnRefused = lambda digest, why: None,
    ) -> None:
        self.pushes = pushes
        self.settings = settings or RtmpSettings()
        self.on_refused = on_refused
        self.servers: list[asyncio.Server] = []
        self.sessions: set[_Session] = set()
        self.port = self.settings.port

    async def start(self) -> None:
        port = self.settings.port
        for host in self.settings.hosts:
            family = socket.AF_INET6 if ":" in host else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((host, port))
            except OSError:
                sock.close()
                if family == socket.AF_INET6:
                    log.warning("RTMP: no IPv6 on this host; listening on IPv4 only")
                    continue
                raise
            port = sock.getsockname()[1]  # port 0: the first bind picks one for both
            sock.listen(128)
            sock.setblocking(False)
            self.servers.append(await asyncio.start_server(self._serve, sock=sock))
        self.port = port
        log.info("RTMP listening on port %d (%s)", port, ", ".join(self.settings.hosts))

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        for session in list(self.sessions):
            session.cut("the server is shutting down")
        for server in self.servers:
            with contextlib.suppress(Exception):
                await server.wait_closed()
        self.servers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if len(self.sessions) >= self.settings.max_connections:
            log.warning("RTMP: %s refused, %d connections already", peer, len(self.sessions))
            writer.close()
            return
        session = _Session(self, reader, writer, str(peer[0] if peer else "?"))
        self.sessions.add(session)
        try:
            await session.run()
        finally:
            self.sessions.discard(session)


class _Session:
    """One TCP connection: handshake, commands, then a publish's FLV tags to its ingest."""

    def __init__(
        self,
        server: RtmpServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        peer: str,
    ) -> None:
        self.server = server
        self.settings = server.settings
        self.reader = reader
        self.writer = writer
        self.peer = peer
        rate = self.settings.max_bitrate_bps / 8
        self.chunks = ChunkReader(
            reader,
            max_message=COMMAND_BYTES,
            idle_timeout=self.settings.idle_timeout,
            budget=ReadBudget(rate, rate * BURST_SECONDS),
        )
        self.out = ChunkWriter(writer)
        self.app = ""
        self.ingest: RtmpIngest | None = None
        self.publish_stream = 0
        self.window = 0  # the publisher's window: acknowledge every this many bytes
        self.acked = 0
        self._task: asyncio.Task[None] | None = None
        self._cut_reason: str | None = None

    # --- PushConnection ----------------------------------------------------------

    def cut(self, reason: str) -> None:
        """Tell the publisher why and close (from the ingest, or the server stopping)."""
        if self._cut_reason is None:
            self._cut_reason = reason
            with contextlib.suppress(Exception):
                self._status("error", "NetStream.Publish.Rejected", reason)
        if self._task is not None:
            self._task.cancel()
        self.writer.close()

    # --- the connection ------------------------------------------------------------

    async def run(self) -> None:
        self._task = asyncio.current_task()
        reason: str | None = None
        try:
            async with asyncio.timeout(self.settings.handshake_timeout):
                await self._handshake()
            try:
                async with asyncio.timeout(self.settings.publish_timeout):
                    while self.ingest is None:
                        await self._handle(await self.chunks.message())
            except TimeoutError as exc:
                raise _Cut("no publish in time") from exc
            self.chunks.max_message = self.settings.max_message_bytes
            while True:
                await self._handle(await self.chunks.message())
        except TimeoutError:
            reason = "the RTMP handshake did not finish in time"
            log.info("RTMP %s: %s", self.peer, reason)
        except (asyncio.IncompleteReadError, ConnectionError):
            reason = None  # the encoder went away (stopped, unplugged)
        except Flooded:
            reason = (
                f"the encoder sends more than {self.settings.max_bitrate_bps // 1000} kbps: "
                "lower its bitrate (CBR, 2500–4000 kbps)"
            )
            log.warning("RTMP %s cut off: %s", self.peer, reason)
            self._tell(reason)
        except Refused as exc:
            reason = str(exc)
            log.warning("RTMP %s refused: %s", self.peer, reason)
            if self.ingest is not None:
                self.ingest.refuse(self, reason)
            self._tell(reason)
        except (ChunkError, amf0.AmfError, FlvError) as exc:
            reason = f"not an RTMP stream Sanke can read: {exc}"[:300]
            log.info("RTMP %s cut off: %s", self.peer, reason)
            self._tell(reason)
        except _Cut as exc:
            reason = exc.args[0] if exc.args else None
        except asyncio.CancelledError:
            reason = self._cut_reason
        except Exception:
            log.exception("RTMP %s: the connection failed", self.peer)
            reason = "the server could not read this stream"
        finally:
            if self.ingest is not None:
                self.ingest.end(self, reason)
                log.info("RTMP %s: publish ended (%s)", self.peer, reason or "disconnected")
            self.writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.writer.wait_closed(), 1.0)

    def _tell(self, reason: str) -> None:
        if self.publish_stream:
            with contextlib.suppress(Exception):
                self._status("error", "NetStream.Publish.Rejected", reason)

    async def _handshake(self) -> None:
        """The simple handshake (spec 5.2): C0 C1 → S0 S1 S2 → C2. FFmpeg, OBS's librtmp
        and 录播 hosts accept it for plain rtmp://."""
        c0 = await self.reader.readexactly(1)
        if c0[0] != 3:
            raise ChunkError(f"RTMP version {c0[0]} (3 expected): not an RTMP client")
        c1 = await self.reader.readexactly(HANDSHAKE_BYTES)
        s1 = struct.pack(">II", 0, 0) + os.urandom(HANDSHAKE_BYTES - 8)
        self.writer.write(b"\x03" + s1 + c1[:4] + b"\x00\x00\x00\x00" + c1[8:])
        await self.writer.drain()
        await self.reader.readexactly(HANDSHAKE_BYTES)  # C2: S1 echoed; not checked

    async def _handle(self, message: Message) -> None:
        self._acknowledge()
        kind = message.type_id
        if kind == SET_CHUNK_SIZE and len(message.body) >= 4:
            self.chunks.set_chunk_size(struct.unpack(">I", message.body[:4])[0])
        elif kind == ABORT and len(message.body) >= 4:
            self.chunks.abort(struct.unpack(">I", message.body[:4])[0])
        elif kind == WINDOW_ACK_SIZE and len(message.body) >= 4:
            self.window = struct.unpack(">I", message.body[:4])[0]
        elif kind in (COMMAND_AMF0, COMMAND_AMF3):
            body = message.body[1:] if kind == COMMAND_AMF3 else message.body
            await self._command(message.stream_id, amf0.decode_all(body))
        elif kind == VIDEO and self.ingest is not None and message.body:
            self.ingest.video(video_tag(message.body), message.timestamp)
        elif kind == AUDIO and self.ingest is not None and message.body:
            self.ingest.audio_tag(audio_tag(message.body))
        # ACK, USER_CONTROL, SET_PEER_BANDWIDTH, data (@setDataFrame): nothing to do
        _ = (ACK, USER_CONTROL, SET_PEER_BANDWIDTH)

    def _acknowledge(self) -> None:
        if self.window and self.chunks.bytes_read - self.acked >= self.window:
            self.acked = self.chunks.bytes_read
            self.out.control(ACK, struct.pack(">I", self.acked & 0xFFFFFFFF))

    async def _command(self, stream_id: int, values: list[amf0.AmfValue]) -> None:
        if not values or not isinstance(values[0], str):
            raise amf0.AmfError("a command without a name")
        name = values[0]
        txn = values[1] if len(values) > 1 and isinstance(values[1], float) else 0.0
        if name == "connect":
            info = values[2] if len(values) > 2 and isinstance(values[2], dict) else {}
            app = info.get("app")
            self.app = app if isinstance(app, str) else ""
            self.out.control(WINDOW_ACK_SIZE, struct.pack(">I", WINDOW))
            self.out.control(SET_PEER_BANDWIDTH, struct.pack(">IB", WINDOW, 2))
            self.out.set_chunk_size(OUT_CHUNK_SIZE)
            self._result(
                txn,
                {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
                {
                    "level": "status",
                    "code": "NetConnection.Connect.Success",
                    "description": "Connection succeeded.",
                    "objectEncoding": 0.0,
                },
            )
        elif name == "createStream":
            self._result(txn, None, 1.0)
        elif name in ("releaseStream", "FCPublish", "FCUnpublish"):
            if txn:
                self._result(txn, None, None)
        elif name == "publish":
            key = values[3] if len(values) > 3 and isinstance(values[3], str) else ""
            self._publish(stream_id or 1, key)
        elif name == "deleteStream":
            raise _Cut(None)
        try:
            async with asyncio.timeout(self.settings.idle_timeout):
                await self.writer.drain()
        except TimeoutError as exc:
            raise _Cut("the encoder reads nothing the server sends") from exc

    def _publish(self, stream_id: int, key: str) -> None:
        self.publish_stream = stream_id
        if self.ingest is not None:
            raise _Cut("one publish per connection")
        key = key.split("?", 1)[0]  # OBS and some hosts append ?query parameters
        digest = hashlib.sha256(key.encode()).hexdigest()
        ingest = self.server.pushes.get(digest) if key else None
        if ingest is None or ingest.closed:
            log.warning("RTMP %s: publish to %s/<key> refused: %s", self.peer, self.app, NO_LESSON)
            self._status("error", "NetStream.Publish.BadName", NO_LESSON)
            self.server.on_refused(digest, NO_LESSON)
            raise _Cut(NO_LESSON)
        self.ingest = ingest
        ingest.begin(self)
        log.info("RTMP %s: publishing to %s/<key>", self.peer, self.app)
        self._status("status", "NetStream.Publish.Start", "Publishing.")

    def _result(self, txn: float, *values: amf0.AmfValue) -> None:
        body = amf0.encode("_result", txn, *values)
        self.out.write(3, Message(COMMAND_AMF0, 0, 0, body))

    def _status(self, level: str, code: str, description: str) -> None:
        info: dict[str, amf0.AmfValue] = {"level": level, "code": code}
        info["description"] = description
        body = amf0.encode("onStatus", 0.0, None, info)
        self.out.write(5, Message(COMMAND_AMF0, self.publish_stream or 1, 0, body))
