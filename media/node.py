"""An SFU node of a distributed deployment (``sanke sfu``).

It registers in the Store with its capacity and load and heartbeats (TTL), serves the media
requests signaling sends on its channel with a local ``Worker``, and reaches participants
by publishing targeted room events. On SIGTERM it drains: it stops taking new rooms, lets
live lessons finish (up to a grace period), then exits.

Each heartbeat also checks that the rooms it hosts are placed on it (one HMGET) and re-claims
those whose placement is gone, as after a Redis restarted empty: a new join of a running
lesson must come here, not to whichever node is least loaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from pydantic import ValidationError

from contracts.errors import ErrorCode, SankeError
from contracts.events import RoomEvent, room_channel
from contracts.media import MediaEvent, OfferToParticipant, SendToParticipant, TracksChanged
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
    media_request_adapter,
)
from contracts.nodes import NODE_HEARTBEAT_SECONDS, NodeDirectory, NodeInfo, node_channel
from contracts.store import Store, Subscription
from contracts.store.delivery import publish_until_heard
from contracts.store.metrics import STORE_UP
from contracts.store.outage import OutageLog
from media.worker import Worker

log = logging.getLogger(__name__)

# How long a server offer waits for an unreachable store, and how often it tries; a reply
# is useful only within the requester's timeout (signaling.remote_media, 10 s).
DELIVER_RETRY_SECONDS = 30.0
DELIVER_RETRY_PAUSE_SECONDS = 0.25
REPLY_RETRY_SECONDS = 8.0


class SfuNode:
    def __init__(
        self,
        store: Store,
        worker: Worker,
        node_id: str,
        *,
        address: str = "",
        capacity: int = 50,
        region: str = "",
    ) -> None:
        self.store = store
        self.worker = worker
        self.directory = NodeDirectory(store)
        self.info = NodeInfo(id=node_id, address=address, capacity=capacity, region=region)
        self._requests: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._handlers: set[asyncio.Task[None]] = set()
        self._misplaced: set[tuple[str, str]] = set()
        self.stopped = asyncio.Event()

    @property
    def draining(self) -> bool:
        return self.info.draining

    async def start(self) -> None:
        self._requests = await self.store.subscribe(node_channel(self.info.id))
        await self._beat()
        self._tasks = [
            asyncio.create_task(self._serve(), name="sfu-requests"),
            asyncio.create_task(self._heartbeat(), name="sfu-heartbeat"),
        ]
        log.info("SFU node %s up (capacity %d rooms)", self.info.id, self.info.capacity)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._requests is not None:
            await self._requests.close()
        for task in list(self._handlers):
            task.cancel()
        await self.worker.close()
        await self.directory.unregister(self.info.id)
        self.stopped.set()

    async def drain(self, grace_seconds: float) -> None:
        """Take no new rooms; wait for the live ones to end (at most ``grace_seconds``)."""
        self.info.draining = True
        await self._beat()
        log.info(
            "draining: %d rooms live, waiting up to %.0f s", len(self.worker.routers), grace_seconds
        )
        deadline = time.monotonic() + grace_seconds
        # The worker has no "last room ended" event; polling twice a second is plenty.
        while self.worker.routers and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.5)
        await self.stop()

    async def _beat(self) -> None:
        self.info.rooms = len(self.worker.routers)
        self.info.participants = self.worker.peer_connection_count()
        # Placements first: once the node key is back, its rooms point to it again.
        await self._reclaim()
        await self.directory.register(self.info)

    async def _reclaim(self) -> None:
        hosted = list(self.worker.routers)
        if not hosted:
            return
        for room, node in zip(hosted, await self.directory.room_nodes(hosted), strict=True):
            if node == self.info.id or room not in self.worker.routers:
                continue
            if node is None:
                node = await self.directory.reclaim(room, self.info.id)
                if node == self.info.id:
                    log.warning("room %s had lost its placement: re-claimed on this node", room)
                    continue
            if node is not None and (room, node) not in self._misplaced:
                # Placed elsewhere while it runs here: after a failover the old node keeps
                # a room until its peers time out; a split after a restart is logged only.
                self._misplaced.add((room, node))
                log.info("room %s is hosted here but placed on %s", room, node)
        self._misplaced &= {(room, node) for room, node in self._misplaced if room in hosted}

    async def _heartbeat(self) -> None:
        outage = OutageLog(log, "SFU heartbeat")
        while True:
            await asyncio.sleep(NODE_HEARTBEAT_SECONDS)
            try:
                await self._beat()
                STORE_UP.set(1)
                outage.ok()
            except Exception as exc:
                STORE_UP.set(0)
                outage.failed(exc)

    async def _serve(self) -> None:
        assert self._requests is not None
        async for raw in self._requests:
            try:
                request = media_request_adapter.validate_json(raw)
            except ValidationError:
                log.warning("dropping a malformed media request")
                continue
            # Each request runs on its own: a slow negotiation never holds up the others.
            task = asyncio.create_task(self._answer(request))
            self._handlers.add(task)
            task.add_done_callback(self._handlers.discard)

    async def _answer(self, request: MediaRequest) -> None:
        try:
            if isinstance(request, PullStatusRequest):
                pulls = await self.worker.pull_status(request.room_id, request.participant_id or "")
                reply = MediaReply(id=request.id, ok=True, pulls=pulls)
            else:
                sdp = await self._apply(request)
                reply = MediaReply(id=request.id, ok=True, sdp=sdp)
        except SankeError as exc:
            reply = MediaReply(id=request.id, ok=False, code=exc.code, message=exc.message)
        except Exception as exc:
            log.info("media request %s failed: %r", request.op, exc)
            reply = MediaReply(
                id=request.id,
                ok=False,
                code=ErrorCode.media_error,
                message="the media node could not do this",
            )
        if not await self._publish(request.reply_to, reply.model_dump_json(), REPLY_RETRY_SECONDS):
            # The requester times out and answers its client media_unavailable.
            log.info("reply to media request %s lost", request.op)

    async def _publish(self, channel: str, raw: str, patience: float) -> bool:
        return await publish_until_heard(
            self.store, channel, raw, pause=DELIVER_RETRY_PAUSE_SECONDS, patience=patience
        )

    def _sender(self, room_id: str, participant_id: str) -> SendToParticipant:
        async def send(media: MediaEvent) -> None:
            event = RoomEvent(room_id=room_id, target=participant_id, media=media)
            # A lost server offer leaves the connection waiting for its answer for good, so
            # offers (and the track list before them) wait out a short Redis outage; the
            # rest (quality) is periodic and dropped.
            raw = event.model_dump_json()
            if not isinstance(media, OfferToParticipant | TracksChanged):
                await self._publish(room_channel(room_id), raw, 0.0)
            elif not await self._publish(room_channel(room_id), raw, DELIVER_RETRY_SECONDS):
                log.warning("%s for %s lost: nobody heard it", media.event, participant_id)

        return send

    async def _apply(self, r: MediaRequest) -> str | None:
        w, room, pid = self.worker, r.room_id, r.participant_id or ""
        match r:
            case JoinRequest():
                if room not in w.routers and (
                    self.draining or len(w.routers) >= self.info.capacity
                ):
                    raise SankeError(
                        ErrorCode.media_unavailable,
                        f"media node {self.info.id} takes no new rooms",
                        503,
                    )
                await w.join(r.participant, self._sender(room, pid))
            case LeaveRequest():
                await w.leave(room, pid)
            case OfferRequest():
                return await w.offer(room, pid, r.sdp)
            case AnswerRequest():
                await w.answer(room, pid, r.sdp)
            case CandidateRequest():
                await w.candidate(room, pid, r.candidate)
            case SetStageRequest():
                await w.set_stage(room, pid, r.on_stage)
            case SetMutedRequest():
                await w.set_muted(room, pid, r.muted)
            case SetLayerRequest():
                await w.set_layer(room, pid, r.layer)
            case SetSourceRequest():
                await w.set_source(room, pid, r.mid, r.source)
            case ReportStatsRequest():
                await w.report_stats(room, pid, r.stats)
            case SetRecordingRequest():
                await w.set_recording(room, r.on)
            case PullCameraRequest():
                await w.pull(room, pid, r.pull)
            case PullStatusRequest():
                pass  # answered with its statuses (_answer)
            case CloseRoomRequest():
                await w.close_room(room)
        return None
