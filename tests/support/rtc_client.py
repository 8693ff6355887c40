"""A real aiortc client that negotiates through the signaling WebSocket, as a page would.

It offers its send tracks, answers the server's renegotiation offers, decodes what it
receives, and on ``rejoin`` starts a new peer connection (the room moved to another node).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from support.clips import Clip, ClipTrack, prefer


class RtcClient:
    def __init__(
        self, session: aiohttp.ClientSession, ws_url: str, token: str, clip: Clip | None = None
    ) -> None:
        self.session = session
        self.ws_url = ws_url
        self.token = token
        self.clip = clip
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc: RTCPeerConnection | None = None
        self.participant_id = ""
        self.inbox: list[dict[str, Any]] = []
        self.frames = 0
        self.frame_times: list[float] = []
        self.last_size: tuple[int, int] | None = None  # of the last decoded video frame
        self.rejoins: list[float] = []
        self.errors: list[dict[str, Any]] = []
        self._answered = asyncio.Event()
        self._offer_lock = asyncio.Lock()
        self._tasks: list[asyncio.Task[Any]] = []
        self._listeners: list[Callable[[dict[str, Any]], None]] = []

    async def start(self) -> None:
        self.ws = await self.session.ws_connect(self.ws_url)
        await self._send({"type": "join", "token": self.token})
        while True:
            msg = json.loads((await self.ws.receive(timeout=10)).data)
            self.inbox.append(msg)
            if msg["type"] == "joined":
                self.participant_id = msg["participant_id"]
                break
            if msg["type"] == "error":
                raise RuntimeError(f"join refused: {msg}")
        self._tasks.append(asyncio.create_task(self._read()))
        await self._negotiate()

    async def _send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def _negotiate(self) -> None:
        if self.pc is not None:
            await self.pc.close()
        self._answered = asyncio.Event()
        pc = self.pc = RTCPeerConnection()
        pc.on("track", self._on_track)
        if self.clip is not None:
            prefer(
                pc.addTransceiver(ClipTrack("video", self.clip), direction="sendonly"), "video/H264"
            )
        await pc.setLocalDescription(await pc.createOffer())
        await self._send({"type": "offer", "sdp": pc.localDescription.sdp, "rid": "offer"})

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind == "video":
            self._tasks.append(asyncio.create_task(self._decode(track)))

    async def _decode(self, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                self.last_size = (frame.width, frame.height)
                self.frames += 1
                self.frame_times.append(time.monotonic())

    async def _read(self) -> None:
        assert self.ws is not None
        async for raw in self.ws:
            if raw.type is not aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(raw.data)
            self.inbox.append(msg)
            try:
                await self._on_message(msg)
            except Exception as exc:  # a test client: record, keep reading
                self.errors.append({"type": "client", "message": repr(exc)})

    async def _on_message(self, msg: dict[str, Any]) -> None:
        assert self.pc is not None
        kind = msg["type"]
        if kind == "answer":
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=msg["sdp"], type="answer"))
            self._answered.set()
        elif kind == "offer":
            # Applied off the reader: the answer to our own offer may still be on its way, and
            # the server's offer must wait for it without blocking the messages behind it.
            self._tasks.append(asyncio.create_task(self._apply_server_offer(msg["sdp"])))
        elif kind == "rejoin":
            self.rejoins.append(time.monotonic())
            await self._negotiate()
        elif kind == "error":
            self.errors.append(msg)

    async def _apply_server_offer(self, sdp: str) -> None:
        async with self._offer_lock:
            try:
                await asyncio.wait_for(self._answered.wait(), 15)
                assert self.pc is not None
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self._send({"type": "answer", "sdp": self.pc.localDescription.sdp})
            except Exception as exc:  # a test client: record it, the test decides
                self.errors.append({"type": "client", "message": repr(exc)})

    def frames_after(self, moment: float) -> int:
        return sum(1 for t in self.frame_times if t > moment)

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()
