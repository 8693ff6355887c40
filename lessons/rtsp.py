"""An RTSP camera as the teacher of the lesson its master classroom has open now.

The supervisor looks at the RTSP sources every ``interval`` seconds. When a source's
classroom has a lesson whose room is open (``lessons.whip.open_lesson``, the same rule as a
WHIP publish), it joins that room as the teacher (``publish_only``, as a WHIP encoder) and
asks the media plane to pull the camera (``MediaPlane.pull``: local, or on the SFU node that
hosts the room). When the lesson's room closes, the room hub ends the participant; a
lesson that is no longer open, or a source deleted, ends it here too; a pull the SFU no
longer has (its node failed) is started again.

The SFU's pull status (connected, reconnecting, refused with the camera setting to change,
unauthorized) becomes the source's status: live while connected (bitrate, resolution,
fps), its last error otherwise. A picture lost after it was connected (the camera unplugged,
the network dropped, the encoder's connection lost) is an outage: every participant gets a
``source_state`` message (``reconnecting``, again at each look while it lasts, then
``connected``) so classrooms show "主讲画面重连中" instead of a frozen frame, and the lesson's
attendance list gets ``source_down`` / ``source_up`` (the record's
``teacher_source_outage_seconds``).

Several processes may run a supervisor (signaling replicas): a lease per source in the store
(``kv:rtsp-pull:<id>``, renewed each look, expiring after ``LEASE_SECONDS``) lets one pull it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import ClassVar

from contracts.errors import ErrorCode
from contracts.events import RoomEvent
from contracts.media import PullRequest, PullStatus
from contracts.protocol import ServerMessage, SourceState
from contracts.rooms import Participant
from contracts.store.outage import OutageLog
from lessons.attendance import AttendanceEvent, attendance_list
from lessons.metrics import SOURCES
from lessons.repository import SessionRepository
from lessons.sources import Source, SourceKind, SourceLive, SourceRegistry
from lessons.whip import WhipPeer, WhipSessions, open_lesson, source_claims
from signaling.service import RoomService

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 2.0
LEASE_SECONDS = 10.0


class RtspPeer(WhipPeer):
    """A pulled camera in the room: ``WhipPeer``'s lifecycle (rights, leave, metrics); its
    status comes from the SFU's pull status, not from quality reports."""

    def deliver(self, message: ServerMessage) -> None:
        return None

    async def _watch(self) -> None:
        return None  # a camera reconnecting sends nothing for a while: the pull says so


class RtspSupervisor:
    """Pulls RTSP sources; ``lessons.rtmp.RtmpSupervisor`` is the same for RTMP pushes (the
    SFU expects the push instead of pulling)."""

    kind: ClassVar[SourceKind] = SourceKind.rtsp
    lease_prefix: ClassVar[str] = "kv:rtsp-pull:"
    device: ClassVar[tuple[str, str]] = ("the camera", "its sub-stream")

    def __init__(
        self,
        service: RoomService,
        registry: SourceRegistry,
        *,
        clock: Callable[[], float] = time.time,
        interval: float = INTERVAL_SECONDS,
    ) -> None:
        self.service = service
        self.registry = registry
        self.clock = clock
        self.interval = interval
        self.sessions = WhipSessions(registry)
        self.lessons = SessionRepository(registry.store)
        self.holder = secrets.token_hex(8)
        self.peers: dict[str, RtspPeer] = {}  # this process's pulls, by source
        self._errors: dict[str, str] = {}  # the last error written, by source
        self._connected_once: dict[str, str] = {}  # source -> its participant that had a picture
        self._outages: dict[str, float] = {}  # source -> since when its picture is lost
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"{self.kind.value}-supervisor")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        for peer in list(self.peers.values()):
            self._forget(peer.source.id)
            peer.end()
            await peer.ended.wait()
            with contextlib.suppress(Exception):
                await self.registry.store.delete(self._lease(peer.source.id))
        self.peers.clear()

    async def _run(self) -> None:
        outage = OutageLog(
            log, f"supervising {self.kind.value} sources"
        )  # a store outage: logged once
        while True:
            try:
                await self.look()
                outage.ok()
            except Exception as exc:
                outage.failed(exc)
            await asyncio.sleep(self.interval)

    async def look(self) -> None:
        """One look at every source of its kind: start, keep or end its pull."""
        sources = {s.id: s for s in await self.registry.list() if s.kind is self.kind}
        for source_id in [i for i in self.peers if i not in sources]:
            self.peers.pop(source_id).end()  # deleted (its rights end it too)
            self._forget(source_id)
        for source in sources.values():
            try:
                await self._supervise(source)
            except Exception:
                log.exception("supervising %s source %s failed", self.kind.value, source.id)

    async def _supervise(self, source: Source) -> None:
        peer = self.peers.get(source.id)
        if peer is not None and peer.ended.is_set():
            del self.peers[source.id]
            self._forget(source.id)
            peer = None
        now = self.clock()
        lesson = (await open_lesson(self.lessons, self.service.repo, source, now)).open
        if peer is not None:
            if (
                lesson is None
                or peer.participant is None
                or (peer.participant.room_id != lesson.room_id)
            ):
                log.info("%s source %s: its lesson is over, stopping", self.kind.value, source.id)
                self.peers.pop(source.id).end()
                self._forget(source.id)
                await self.registry.store.delete(self._lease(source.id))
                return
            await self.registry.store.set(self._lease(source.id), self.holder, ttl=LEASE_SECONDS)
            await self._write_status(source, peer)
            return
        request = self._pull_request(source)
        if lesson is None or request is None:
            return
        store = self.registry.store
        key = self._lease(source.id)
        if (
            not await store.set(key, self.holder, ttl=LEASE_SECONDS, nx=True)
            and await store.get(key) != self.holder
        ):
            return  # another process pulls it
        claims = source_claims(source, lesson, now)
        peer = RtspPeer(self.service, self.registry, self.sessions, source, claims.iat)
        self.service.rights.hold(claims.sub, peer)
        try:
            participant, _ = await self.service.join(claims, None, None, peer, publish_only=True)
        except BaseException:
            self.service.rights.release(claims.sub, peer)
            await store.delete(key)
            raise
        peer.joined(participant)
        self.peers[source.id] = peer
        try:
            await self.service.media.pull(participant.room_id, participant.id, request)
        except Exception as exc:
            self.peers.pop(source.id, None)
            peer.end()
            await store.delete(key)
            await self.registry.record_error(
                source.id, ErrorCode.media_unavailable, f"the SFU could not pull it: {exc}"
            )
            raise
        log.info(
            "%s source %s into %s as %s", self.kind.value, source.id, lesson.room_id, participant.id
        )

    def _lease(self, source_id: str) -> str:
        return f"{self.lease_prefix}{source_id}"

    def _pull_request(self, source: Source) -> PullRequest | None:
        return source.rtsp.pull_request() if source.rtsp is not None else None

    async def _write_status(self, source: Source, peer: RtspPeer) -> None:
        participant = peer.participant
        if participant is None:
            return
        statuses = await self.service.media.pull_status(participant.room_id, participant.id)
        high = next((s for s in statuses if s.layer == "high"), None)
        if high is None:
            # the SFU lost it (its node failed, the room moved): pulled anew at the next look
            log.info("%s source %s: the SFU lost it, again", self.kind.value, source.id)
            self.peers.pop(source.id, None)
            self._forget(source.id)
            peer.end()
            return
        SOURCES.set(source.id, self.kind.value, source.school, high)
        await self._track_outage(source, participant, high)
        if high.state == "connected":
            await self.registry.set_live(
                source.id,
                SourceLive(
                    room_id=participant.room_id,
                    participant_id=participant.id,
                    since=high.connected_since or peer.since,
                    updated_at=time.time(),
                    bitrate_bps=high.bitrate_bps,
                    width=high.width,
                    height=high.height,
                    fps=high.fps,
                ),
            )
        else:
            await self.registry.clear_live(source.id, participant.id)
        problem = _problem(statuses, self.device)
        if problem is not None and self._errors.get(source.id) != problem:
            self._errors[source.id] = problem
            await self.registry.record_error(source.id, ErrorCode.media_error, problem)
        elif problem is None:
            self._errors.pop(source.id, None)

    async def _track_outage(
        self, source: Source, participant: Participant, high: PullStatus
    ) -> None:
        """Tell the room (and the attendance) when the source's picture is lost and back."""
        if high.state == "connected":
            self._connected_once[source.id] = participant.id
            if self._outages.pop(source.id, None) is not None:
                log.info("%s source %s: its picture is back", self.kind.value, source.id)
                await self._outage_event(participant, "source_up")
                await self._tell(participant, "connected", self.clock())
            return
        if self._connected_once.get(source.id) != participant.id or high.state == "stopped":
            return  # never had a picture in this lesson: waiting, not an outage
        since = self._outages.get(source.id)
        if since is None:
            since = self._outages[source.id] = self.clock()
            log.warning(
                "%s source %s lost its picture (%s): classrooms see it reconnecting",
                self.kind.value,
                source.id,
                high.state,
            )
            await self._outage_event(participant, "source_down")
        await self._tell(participant, "reconnecting", since)  # again each look: late joiners

    async def _tell(self, participant: Participant, state: str, since: float) -> None:
        message = SourceState(
            participant_id=participant.id,
            state="connected" if state == "connected" else "reconnecting",
            since=since,
        )
        await self.service.hub.publish(RoomEvent(room_id=participant.room_id, message=message))

    async def _outage_event(self, participant: Participant, kind: str) -> None:
        event = AttendanceEvent(
            t=self.clock(),
            kind="source_down" if kind == "source_down" else "source_up",
            participant_id=participant.id,
            role=participant.role,
            classroom_id=participant.classroom_id,
        )
        await self.registry.store.append(
            attendance_list(participant.room_id), event.model_dump_json()
        )

    def _forget(self, source_id: str) -> None:
        SOURCES.drop(source_id)
        self._connected_once.pop(source_id, None)
        self._outages.pop(source_id, None)


def _problem(statuses: list[PullStatus], device: tuple[str, str]) -> str | None:
    """What the source's operator should know: a stream not connected, and why."""
    for s in statuses:
        if s.state in ("refused", "unauthorized", "reconnecting") and s.message:
            name = device[0] if s.layer == "high" else device[1]
            return f"{name} ({s.state}): {s.message}"[:500]
    return None
