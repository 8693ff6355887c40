"""Real aiortc client peers for the SFU tests: publishers of encoded clips, decoding subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from support.clips import Clip, ClipTrack, load_clip, prefer

__all__ = [
    "Clip",
    "ClipTrack",
    "DecodeErrors",
    "Peer",
    "Received",
    "load_clip",
    "prefer",
    "wait_for",
]

from contracts.media import OfferToParticipant, TracksChanged
from contracts.rooms import Participant, Role
from media.worker import Worker


@dataclass
class Received:
    kind: str
    stream_id: str
    frames: int = 0
    sizes: set[tuple[int, int]] = field(default_factory=set)
    first_at: float | None = None
    last_size: tuple[int, int] | None = None


class DecodeErrors(logging.Handler):
    """Counts aiortc's 'failed to decode' warnings (client side decoders)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "failed to decode" in record.getMessage():
            self.count += 1


class Peer:
    """One client: an aiortc peer connection driven through the Worker's MediaPlane API."""

    def __init__(
        self,
        worker: Worker,
        pid: str,
        role: Role,
        room: str = "room-1",
        sdp_filter: Callable[[str], str] = lambda sdp: sdp,
        **kw: Any,
    ):
        self.worker = worker
        self.sdp_filter = sdp_filter
        self.participant = Participant(
            id=pid, room_id=room, subject=pid, role=role, node_id="test", **kw
        )
        self.pc = RTCPeerConnection()
        self.tracks_msgs: list[TracksChanged] = []
        self.received: dict[str, Received] = {}  # by remote track id
        self.offers = 0
        # A server offer can overtake the answer to our own offer on the way here: apply it
        # only once our offer is answered (the SFU created it after answering).
        self._answered = asyncio.Event()
        self._offer_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._readers: list[asyncio.Task[None]] = []
        self.pc.on("track", self._on_track)

    @property
    def id(self) -> str:
        return self.participant.id

    async def _send(self, msg: Any) -> None:
        if isinstance(msg, TracksChanged):
            self.tracks_msgs.append(msg)
        elif isinstance(msg, OfferToParticipant):
            task = asyncio.get_running_loop().create_task(self._answer(msg.sdp))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _answer(self, sdp: str) -> None:
        await self._answered.wait()
        async with self._offer_lock:
            self.offers += 1
            offer = RTCSessionDescription(sdp=self.sdp_filter(sdp), type="offer")
            await self.pc.setRemoteDescription(offer)
            await self.pc.setLocalDescription(await self.pc.createAnswer())
            answer = self.sdp_filter(self.pc.localDescription.sdp)
            await self.worker.answer(self.participant.room_id, self.id, answer)

    def _on_track(self, track: MediaStreamTrack) -> None:
        info = Received(kind=track.kind, stream_id="")
        self.received[track.id] = info
        self._readers.append(asyncio.get_running_loop().create_task(self._read(track, info)))

    async def _read(self, track: MediaStreamTrack, info: Received) -> None:
        with contextlib.suppress(MediaStreamError, asyncio.CancelledError):
            while True:
                frame = await track.recv()
                info.frames += 1
                if info.first_at is None:
                    info.first_at = time.monotonic()
                if info.kind == "video":
                    info.last_size = (frame.width, frame.height)
                    info.sizes.add(info.last_size)

    def publish(self, audio: Clip | None, videos: list[tuple[Clip, str]]) -> list[ClipTrack]:
        tracks = []
        if audio is not None:
            t = ClipTrack("audio", audio)
            self.pc.addTransceiver(t, direction="sendonly")
            tracks.append(t)
        for clip, mime in videos:
            t = ClipTrack("video", clip)
            prefer(self.pc.addTransceiver(t, direction="sendonly"), mime)
            tracks.append(t)
        return tracks

    async def connect(self) -> None:
        await self.worker.join(self.participant, self._send)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        answer = await self.worker.offer(
            self.participant.room_id, self.id, self.sdp_filter(self.pc.localDescription.sdp)
        )
        answer = self.sdp_filter(answer)
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        self._answered.set()

    def video(self, source_id: str | None = None) -> list[Received]:
        return self._by_kind("video", source_id)

    def audio(self, source_id: str | None = None) -> list[Received]:
        return self._by_kind("audio", source_id)

    def _by_kind(self, kind: str, source_id: str | None) -> list[Received]:
        owners = {t.track_id: t.participant_id for m in self.tracks_msgs for t in m.tracks}
        return [
            r
            for tid, r in self.received.items()
            if r.kind == kind and (source_id is None or owners.get(tid) == source_id)
        ]

    async def close(self) -> None:
        for task in [*self._readers, *self._tasks]:
            task.cancel()
        await self.pc.close()


async def wait_for(predicate: Any, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(interval)
    return bool(predicate())
