"""The media plane of a distributed deployment: SFU nodes reached through Redis.

Signaling sends each media call as a request on the hosting node's channel and waits for
the reply on its own channel. The node reaches participants by publishing targeted room
events, which whichever signaling process holds the WebSocket delivers. When a node dies,
its rooms lose their placement; one signaling process tells each such room ``rejoin``, and
the next media call of each participant joins it on the room's new node.

Right after a Redis restart (``StoreWatch.settling``) a missing node key or placement means
nothing yet: nodes re-register and re-claim their rooms within a heartbeat. So no room is
reaped then, and a join waits for the room's placement to come back before placing it anew.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import TypedDict

from pydantic import ValidationError

from contracts.errors import ErrorCode, SankeError
from contracts.events import RoomEvent
from contracts.layers import LayerPin
from contracts.media import (
    IceCandidate,
    PullRequest,
    PullStatus,
    SendToParticipant,
    Source,
    StatsReport,
)
from contracts.node_messages import (
    AnswerRequest,
    CandidateRequest,
    CloseRoomRequest,
    JoinRequest,
    LeaveRequest,
    MediaReply,
    MediaRequest,
    OfferRequest,
    PullCameraRequest,
    PullStatusRequest,
    ReportStatsRequest,
    SetLayerRequest,
    SetMutedRequest,
    SetRecordingRequest,
    SetSourceRequest,
    SetStageRequest,
    reply_channel,
)
from contracts.nodes import NodeDirectory, node_channel
from contracts.protocol import Rejoin
from contracts.rooms import Participant
from contracts.store import Store, Subscription
from contracts.store.delivery import publish_until_heard
from contracts.store.outage import OutageLog
from contracts.store.watch import StoreWatch
from signaling.hub import RoomHub
from signaling.rooms import RoomRepository

log = logging.getLogger(__name__)

REQUEST_TIMEOUT_SECONDS = 10.0
REAP_INTERVAL_SECONDS = 0.5
# While the store settles, how often a join looks whether its room's node re-claimed it.
SETTLE_POLL_SECONDS = 0.2


# The HTTP status of a node's refusal (the reply carries only its code).
_STATUS = {ErrorCode.recording_unavailable: 409}


class Envelope(TypedDict):
    id: str
    reply_to: str
    room_id: str
    participant_id: str | None


class RemoteMediaPlane:
    def __init__(
        self, store: Store, hub: RoomHub, node_id: str, watch: StoreWatch | None = None
    ) -> None:
        self.store = store
        self.watch = watch if watch is not None else StoreWatch(store)
        self.rooms = RoomRepository(store)
        self.hub = hub
        self.node_id = node_id
        self.directory = NodeDirectory(store)
        self._pending: dict[str, asyncio.Future[MediaReply]] = {}
        # (room, participant) → the node this process joined it on.
        self._joined: dict[tuple[str, str], str] = {}
        self._replies: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        self._replies = await self.store.subscribe(reply_channel(self.node_id))
        self._tasks = [
            asyncio.create_task(self._read_replies(), name="media-replies"),
            asyncio.create_task(self._reap(), name="media-reaper"),
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._replies is not None:
            await self._replies.close()
        for future in self._pending.values():
            future.cancel()

    # --- MediaPlane ------------------------------------------------------------
    async def join(self, participant: Participant, send: SendToParticipant) -> None:
        # Media joins lazily on the first offer: a participant that never negotiates media
        # (a patrol list, a signaling-only client) costs the SFU nothing.
        return None

    async def leave(self, room_id: str, participant_id: str) -> None:
        node = self._joined.pop((room_id, participant_id), None)
        if node is not None:
            with contextlib.suppress(SankeError):
                await self._call(node, LeaveRequest(**self._envelope(room_id, participant_id)))

    async def offer(self, room_id: str, participant_id: str, sdp: str) -> str:
        node = await self._ensure_joined(room_id, participant_id)
        reply = await self._call(
            node, OfferRequest(**self._envelope(room_id, participant_id), sdp=sdp)
        )
        if reply.sdp is None:
            raise SankeError(ErrorCode.media_error, "the media node returned no answer")
        return reply.sdp

    async def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        node = await self._ensure_joined(room_id, participant_id)
        await self._call(node, AnswerRequest(**self._envelope(room_id, participant_id), sdp=sdp))

    async def candidate(self, room_id: str, participant_id: str, candidate: IceCandidate) -> None:
        node = await self._ensure_joined(room_id, participant_id)
        envelope = self._envelope(room_id, participant_id)
        await self._call(node, CandidateRequest(**envelope, candidate=candidate))

    async def set_stage(self, room_id: str, participant_id: str, on_stage: bool) -> None:
        await self._room_call(
            SetStageRequest(**self._envelope(room_id, participant_id), on_stage=on_stage)
        )

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        await self._room_call(
            SetMutedRequest(**self._envelope(room_id, participant_id), muted=muted)
        )

    async def set_layer(self, room_id: str, participant_id: str, layer: LayerPin) -> None:
        await self._room_call(
            SetLayerRequest(**self._envelope(room_id, participant_id), layer=layer)
        )

    async def set_source(self, room_id: str, participant_id: str, mid: str, source: Source) -> None:
        node = await self._ensure_joined(room_id, participant_id)
        envelope = self._envelope(room_id, participant_id)
        await self._call(node, SetSourceRequest(**envelope, mid=mid, source=source))

    async def report_stats(self, room_id: str, participant_id: str, report: StatsReport) -> None:
        await self._room_call(
            ReportStatsRequest(**self._envelope(room_id, participant_id), stats=report)
        )

    async def set_recording(self, room_id: str, on: bool) -> None:
        """On the room's node (it refuses when it records nothing); a room no node hosts yet
        gets the switch from the room's state when its media starts."""
        node = await self.directory.room_node(room_id)
        if node is not None:
            await self._call(node, SetRecordingRequest(**self._envelope(room_id, None), on=on))

    async def pull(self, room_id: str, participant_id: str, request: PullRequest) -> None:
        node = await self._ensure_joined(room_id, participant_id)
        envelope = self._envelope(room_id, participant_id)
        await self._call(node, PullCameraRequest(**envelope, pull=request))

    async def pull_status(self, room_id: str, participant_id: str) -> list[PullStatus]:
        node = self._joined.get((room_id, participant_id))
        if node is None:
            return []
        envelope = self._envelope(room_id, participant_id)
        reply = await self._call(node, PullStatusRequest(**envelope))
        return reply.pulls or []

    async def close_room(self, room_id: str) -> None:
        await self._room_call(CloseRoomRequest(**self._envelope(room_id, None)))
        await self.directory.release(room_id)

    # --- internals -------------------------------------------------------------
    def _envelope(self, room_id: str, participant_id: str | None) -> Envelope:
        return {
            "id": secrets.token_hex(8),
            "reply_to": reply_channel(self.node_id),
            "room_id": room_id,
            "participant_id": participant_id,
        }

    async def _room_call(self, request: MediaRequest) -> None:
        """A call about a room on whatever node hosts it now (none: nothing to do)."""
        node = await self.directory.room_node(request.room_id)
        if node is None:
            return
        with contextlib.suppress(SankeError):
            await self._call(node, request)

    async def _ensure_joined(self, room_id: str, participant_id: str) -> str:
        await self._settled_placement(room_id)
        node = await self.directory.assign(room_id)
        if self._joined.get((room_id, participant_id)) != node:
            participant = await self.rooms.get_participant(room_id, participant_id)
            if participant is None:
                raise SankeError(ErrorCode.not_joined, "you are no longer in the room")
            envelope = self._envelope(room_id, participant_id)
            await self._call(node, JoinRequest(**envelope, participant=participant))
            self._joined[(room_id, participant_id)] = node
        return node

    async def _settled_placement(self, room_id: str) -> None:
        """While the store settles, wait (at most until it has) for the room's placement on a
        live node: its node re-claims it within a heartbeat, and placing the room anew
        meanwhile would split a running lesson over two nodes."""
        while self.watch.settling:
            node = await self.directory.room_node(room_id)
            if node is not None and await self.directory.node(node) is not None:
                return
            await asyncio.sleep(SETTLE_POLL_SECONDS)

    async def _call(self, node: str, request: MediaRequest) -> MediaReply:
        future: asyncio.Future[MediaReply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            async with asyncio.timeout(REQUEST_TIMEOUT_SECONDS):
                # Until the node hears it (within the request's timeout): a client's answer
                # lost on the way leaves its media connection stuck.
                await publish_until_heard(
                    self.store,
                    node_channel(node),
                    request.model_dump_json(),
                    pause=SETTLE_POLL_SECONDS,
                )
                reply = await future
        except TimeoutError:
            raise SankeError(
                ErrorCode.media_unavailable, f"media node {node} did not answer", 503
            ) from None
        finally:
            self._pending.pop(request.id, None)
        if not reply.ok:
            code = reply.code or ErrorCode.media_error
            raise SankeError(code, reply.message or "media error", _STATUS.get(code, 400))
        return reply

    async def _read_replies(self) -> None:
        assert self._replies is not None
        async for raw in self._replies:
            try:
                reply = MediaReply.model_validate_json(raw)
            except ValidationError:
                log.warning("dropping a malformed media reply")
                continue
            future = self._pending.get(reply.id)
            if future is not None and not future.done():
                future.set_result(reply)

    async def _reap(self) -> None:
        """Rooms of dead nodes: drop the placement and tell the room to rejoin (once)."""
        outage = OutageLog(log, "reaping rooms of dead media nodes")
        while True:
            await asyncio.sleep(REAP_INTERVAL_SECONDS)
            try:
                orphans = await self.directory.orphaned_rooms()
                self.watch.answered()
                outage.ok()
                if self.watch.settling:
                    continue  # node keys may be missing only because the store restarted
                for room_id, node in orphans:
                    # Only the process whose delete wins announces it.
                    if await self.directory.release(room_id):
                        log.warning("media node %s is gone: room %s must rejoin", node, room_id)
                        await self.hub.publish(
                            RoomEvent(
                                room_id=room_id, message=Rejoin(reason=f"media node {node} failed")
                            )
                        )
            except Exception as exc:
                self.watch.failed(exc)
                outage.failed(exc)
