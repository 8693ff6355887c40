"""The SFU worker: the ``MediaPlane`` the signaling server drives (one Router per room)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path

from pydantic import BaseModel, Field

from contracts.errors import ErrorCode, SankeError
from contracts.hls import HlsHooks
from contracts.layers import LayerPin
from contracts.media import (
    IceCandidate,
    PullRequest,
    PullStatus,
    SendToParticipant,
    Source,
    StatsReport,
)
from contracts.recording import RecordingHooks
from contracts.rooms import Participant
from media import aiortc_seams as seams
from media.hls_packager import HlsSettings
from media.hls_room import RoomHls
from media.ice_policy import IcePolicy
from media.layers import LayerChooser
from media.recorder import RecorderSettings
from media.recording_recovery import left_behind, recover
from media.recording_room import RoomRecording
from media.router import Router
from media.rtmp_ingest import PushTable
from media.stats import ClientReport, RoomStats, TransportStats, WorkerStats
from media.transport import Transport

log = logging.getLogger(__name__)

# A page reports every 2 s: a report older than this belongs to a page that stopped.
CLIENT_REPORT_MAX_AGE = 10.0


class WorkerSettings(BaseModel):
    layer_interval: float = Field(default=1.0, gt=0, description="seconds between layer choices")
    max_rooms: int = Field(default=1000, ge=1)
    max_participants_per_room: int = Field(default=256, ge=1)
    ice: IcePolicy = Field(
        default_factory=IcePolicy, description="where ICE checks may go (media.ice_policy)"
    )
    recordings_dir: Path | None = Field(
        default=None, description="where recordings are written; None: this node records nothing"
    )
    recorder: RecorderSettings = Field(default_factory=RecorderSettings)
    hls_dir: Path | None = Field(
        default=None, description="where live HLS is written; None: this node packages none"
    )
    hls: HlsSettings = Field(default_factory=HlsSettings)


class Worker:
    """Forwards encoded media between the participants of each room; never decodes."""

    def __init__(
        self,
        settings: WorkerSettings | None = None,
        recording: RecordingHooks | None = None,
        hls: HlsHooks | None = None,
    ) -> None:
        seams.check_seams()
        self.settings = settings or WorkerSettings()
        self.recording_hooks = recording
        self.hls_hooks = hls
        self.routers: dict[str, Router] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()
        # the publishers' own reports, by (room, participant); kept here, not on the Transport
        self.client_reports: dict[tuple[str, str], ClientReport] = {}
        # the RTMP pushes its participants expect (media.rtmp_server accepts them)
        self.pushes = PushTable()

    # --- MediaPlane ------------------------------------------------------------------

    async def join(self, participant: Participant, send: SendToParticipant) -> None:
        router = self.routers.get(participant.room_id)
        if router is None:
            if len(self.routers) >= self.settings.max_rooms:
                raise SankeError(ErrorCode.media_unavailable, "this media node is full", 503)
            router = self.routers[participant.room_id] = self._new_router(participant.room_id)
        if participant.id in router.transports:
            await self.leave(participant.room_id, participant.id)
        if len(router.transports) >= self.settings.max_participants_per_room:
            raise SankeError(ErrorCode.room_full, "the room's media is full", 503)
        router.transports[participant.id] = Transport(
            participant.model_copy(),
            send,
            on_change=lambda t: router.reconcile(),
            on_failed=self._transport_failed,
            on_estimate=router.allocate,
            ice_policy=self.settings.ice,
            pushes=self.pushes,
        )
        self._ensure_ticker()

    async def leave(self, room_id: str, participant_id: str) -> None:
        router = self.routers.get(room_id)
        if router is None:
            return
        transport = router.transports.pop(participant_id, None)
        if transport is None:
            return
        self.client_reports.pop((room_id, participant_id), None)
        await transport.close()
        router.reconcile()
        if not router.transports:
            self.routers.pop(room_id, None)
            self._close_recording(router)

    async def offer(self, room_id: str, participant_id: str, sdp: str) -> str:
        return await self._transport(room_id, participant_id).handle_offer(sdp)

    async def answer(self, room_id: str, participant_id: str, sdp: str) -> None:
        await self._transport(room_id, participant_id).handle_answer(sdp)

    async def candidate(self, room_id: str, participant_id: str, candidate: IceCandidate) -> None:
        await self._transport(room_id, participant_id).add_candidate(candidate)

    async def set_stage(self, room_id: str, participant_id: str, on_stage: bool) -> None:
        transport = self._find(room_id, participant_id)
        if transport is not None:
            transport.participant.on_stage = on_stage
            self.routers[room_id].reconcile()

    async def set_muted(self, room_id: str, participant_id: str, muted: bool) -> None:
        transport = self._find(room_id, participant_id)
        if transport is not None:
            transport.participant.muted = muted
            self.routers[room_id].reconcile()

    async def set_layer(self, room_id: str, participant_id: str, layer: LayerPin) -> None:
        transport = self._transport(room_id, participant_id)
        transport.pinned = None if layer == "auto" else layer
        pin = None if layer == "auto" else layer
        for c in transport.consumers.values():
            c.pinned = pin
            c.chooser = LayerChooser()  # a released pin may probe up at once
        self.routers[room_id].allocate_layers()

    async def set_source(self, room_id: str, participant_id: str, mid: str, source: Source) -> None:
        self._transport(room_id, participant_id).set_source(mid, source)

    async def report_stats(self, room_id: str, participant_id: str, report: StatsReport) -> None:
        if self._find(room_id, participant_id) is not None:
            self.client_reports[(room_id, participant_id)] = ClientReport(
                received_at=time.monotonic(), stats=report
            )

    async def set_recording(self, room_id: str, on: bool) -> None:
        if self.settings.recordings_dir is None or self.recording_hooks is None:
            raise SankeError(
                ErrorCode.recording_unavailable, "this media node records nothing", 409
            )
        router = self.routers.get(room_id)
        if router is not None and router.recording is not None:
            # No router yet: the policy asks for the room's switch when its media starts.
            router.recording.set_on(on)

    async def pull(self, room_id: str, participant_id: str, request: PullRequest) -> None:
        self._transport(room_id, participant_id).pull(request)

    async def pull_status(self, room_id: str, participant_id: str) -> list[PullStatus]:
        transport = self._find(room_id, participant_id)
        return [] if transport is None else transport.pull_status()

    async def close_room(self, room_id: str) -> None:
        router = self.routers.pop(room_id, None)
        for key in [k for k in self.client_reports if k[0] == room_id]:
            del self.client_reports[key]
        if router is None:
            return
        self._close_recording(router)
        transports = list(router.transports.values())
        router.transports.clear()
        await asyncio.gather(*(t.close() for t in transports), return_exceptions=True)

    async def close(self) -> None:
        for room_id in list(self.routers):
            await self.close_room(room_id)
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        for task in list(self._closing):
            with contextlib.suppress(Exception):
                await task

    # --- beyond the protocol ------------------------------------------------------------

    def transport(self, room_id: str, participant_id: str) -> Transport | None:
        return self._find(room_id, participant_id)

    async def stats(self) -> WorkerStats:
        rooms = []
        for room_id, router in list(self.routers.items()):
            transports = [await self._transport_stats(t) for t in list(router.transports.values())]
            rooms.append(RoomStats(room_id=room_id, transports=transports))
        return WorkerStats(rooms=rooms)

    def peer_connection_count(self) -> int:
        return sum(len(r.transports) for r in self.routers.values())

    async def recover_recordings(self) -> int:
        """Finish the parts a crash of this node left behind (media/recording_recovery.py) and
        report them; how many. Run once when the node starts."""
        directory, hooks = self.settings.recordings_dir, self.recording_hooks
        if directory is None or hooks is None:
            return 0
        recovered = 0
        for partial in await asyncio.to_thread(left_behind, directory):
            finished = await asyncio.to_thread(recover, directory, partial)
            if finished is None:
                continue
            log.warning(
                "finished %s, left by a crash (%.1f s)", finished.file, finished.duration_seconds
            )
            try:
                await hooks.finished(finished)
            except Exception:
                log.exception("recovered %s but it was not put in the records", finished.file)
            recovered += 1
        return recovered

    async def recordings_finished(self) -> None:
        """Wait until every recording of a closed room is written, remuxed and reported."""
        while pending := [t for t in self._closing if t.get_name().startswith("recording:")]:
            await asyncio.gather(*pending, return_exceptions=True)

    async def hls_finished(self) -> None:
        """Wait until the HLS of every closed room has written its last segments."""
        while pending := [t for t in self._closing if t.get_name().startswith("hls:")]:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- internals ----------------------------------------------------------------------

    def _new_router(self, room_id: str) -> Router:
        router = Router(room_id)
        directory, hooks = self.settings.recordings_dir, self.recording_hooks
        if directory is not None and hooks is not None:
            router.recording = RoomRecording(
                room_id,
                directory,
                hooks,
                lambda: list(router.transports.values()),
                self.settings.recorder,
            )
        if self.settings.hls_dir is not None and self.hls_hooks is not None:
            router.hls = RoomHls(
                room_id,
                self.settings.hls_dir,
                self.hls_hooks,
                lambda: list(router.transports.values()),
                self.settings.hls,
            )
        return router

    def _close_recording(self, router: Router) -> None:
        """Finish the room's recording off the request: a remux of a long lesson takes a while
        (close() waits for it); the room's HLS ends the same way (its last segments, ENDLIST)."""
        for name, work in (("recording", router.recording), ("hls", router.hls)):
            if work is None:
                continue
            task = asyncio.get_running_loop().create_task(
                work.close(), name=f"{name}:{router.room_id}"
            )
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _transport_stats(self, transport: Transport) -> TransportStats:
        """The transport's stats with what only the worker joins in: the m-line of each
        producer, the page's recent report, the downlink estimate."""
        stats = await transport.stats()
        mids = {p.id: mid for mid, p in transport.producers.items()}
        for p in stats.producers:
            p.mid = mids.get(p.id)
        report = self.client_reports.get((transport.participant.room_id, transport.id))
        if report is not None and time.monotonic() - report.received_at <= CLIENT_REPORT_MAX_AGE:
            stats.client = report
        stats.downlink_estimate_bps = transport.downlink.estimate_bps()
        return stats

    def _find(self, room_id: str, participant_id: str) -> Transport | None:
        router = self.routers.get(room_id)
        return router.transports.get(participant_id) if router else None

    def _transport(self, room_id: str, participant_id: str) -> Transport:
        transport = self._find(room_id, participant_id)
        if transport is None:
            raise SankeError(
                ErrorCode.participant_not_found, "not joined to this room's media", 404
            )
        return transport

    def _transport_failed(self, transport: Transport) -> None:
        log.info("ICE/DTLS failed for %s: freeing its media", transport.id)
        task = asyncio.get_running_loop().create_task(
            self.leave(transport.participant.room_id, transport.id)
        )
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick())

    async def _tick(self) -> None:
        while self.routers:
            await asyncio.sleep(self.settings.layer_interval)
            for router in list(self.routers.values()):
                try:
                    router.allocate_layers()
                except Exception:
                    log.exception("layer allocation failed in %s", router.room_id)
        self._ticker = None
