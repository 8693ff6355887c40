"""One signaling WebSocket: parse, limit, authorize, dispatch, answer.

A malformed, unknown or forbidden message gets an ``error`` and the connection stays
open; only abuse past the limits (a huge frame, a flood, a stalled reader) closes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiohttp import WSCloseCode, WSMsgType, web
from pydantic import ValidationError

from contracts.addresses import ip_version
from contracts.close_codes import (
    CLOSE_JOIN_TIMEOUT,
    CLOSE_RATE_LIMIT,
    CLOSE_TOKEN_EXPIRED,
    CLOSE_TOO_SLOW,
    LEAVE_REASONS,
)
from contracts.errors import ErrorCode, SankeError
from contracts.protocol import (
    CLIENT_MESSAGE_TYPES,
    Answer,
    Candidate,
    ClientMessage,
    EndLesson,
    Error,
    HandRaised,
    IceServer,
    Join,
    Joined,
    Kick,
    Leave,
    LeaveReason,
    Left,
    LowerHand,
    Mute,
    Muted,
    Offer,
    Ping,
    Pong,
    RaiseHand,
    Recording,
    ServerAnswer,
    ServerMessage,
    SetLayer,
    SetRecording,
    SetSource,
    SetStage,
    StageChanged,
    Stats,
    client_message_adapter,
)
from contracts.rooms import Participant, Role
from contracts.store.outage import STORE_UNREACHABLE
from signaling.envelope import echoable_rid, shown
from signaling.media_messages import ice_candidate
from signaling.metrics import ERRORS, JOIN_LATENCY, JOINS_BY_IP, MESSAGES, WS_CONNECTIONS
from signaling.ratelimit import TokenBucket
from signaling.service import RoomService, participant_info
from signaling.tokens import Claims, TokenService
from signaling.visibility import can_see

log = logging.getLogger(__name__)
T = TypeVar("T")
# Leaves still running after their handler was cancelled (strong references: the loop keeps
# only weak ones to tasks).
_LEAVING: set[asyncio.Task[None]] = set()

# A frame this many times the message limit is abuse, not a mistake: the server
# stops reading and closes with 1009 (aiohttp's max_msg_size).
HARD_SIZE_FACTOR = 4
OUTBOUND_QUEUE_LIMIT = 512
# A publishing page reports its stats every 2 s; one a second leaves room for jitter and a
# page that reconnects, and keeps a buggy page from turning reports into media-plane calls.
STATS_PER_SECOND = 1.0


@dataclass(frozen=True)
class Limits:
    max_message_bytes: int
    rate_per_second: float
    rate_burst: int
    violations_before_close: int
    heartbeat_seconds: float
    join_timeout_seconds: float


class Connection:
    """A client's WebSocket; a ``LocalPeer`` of the room hub once joined."""

    def __init__(
        self,
        ws: web.WebSocketResponse,
        service: RoomService,
        tokens: TokenService,
        limits: Limits,
        ice_servers: Callable[[str], list[IceServer]],
        remote: str | None = None,
    ) -> None:
        self.ws = ws
        self.remote = remote  # the client's address, as the socket has it
        self.service = service
        self.tokens = tokens
        self.limits = limits
        self.ice_servers = ice_servers
        self.participant_id = ""
        self.role = Role.viewer
        self.participant: Participant | None = None
        # The right this connection holds (its token), once it sent a join.
        self.claims: Claims | None = None
        self.issued_at = 0
        self._expiry: asyncio.TimerHandle | None = None
        self._ending: asyncio.Task[None] | None = None
        self._outbound: asyncio.Queue[ServerMessage] = asyncio.Queue(OUTBOUND_QUEUE_LIMIT)
        self._bucket = TokenBucket(limits.rate_per_second, limits.rate_burst)
        self._stats_bucket = TokenBucket(STATS_PER_SECOND, 1)
        self._violations = 0
        self._closing = False
        self._leave_reason: LeaveReason = "disconnected"
        # Room events that arrive while the join is in flight wait here, so that
        # ``joined`` is always the first message a participant gets.
        self._held: list[ServerMessage] | None = None

    # --- LocalPeer ---------------------------------------------------------
    def deliver(self, message: ServerMessage) -> None:
        if self._closing:
            return
        self._follow(message)
        if self._held is not None:
            if len(self._held) < OUTBOUND_QUEUE_LIMIT:
                self._held.append(message)
            return
        try:
            self._outbound.put_nowait(message)
        except asyncio.QueueFull:
            # A client that does not read its messages is cut off (it will rejoin
            # and resync) rather than letting its backlog grow without bound.
            self._closing = True
            asyncio.get_running_loop().create_task(
                self.ws.close(code=CLOSE_TOO_SLOW, message=b"too slow")
            )

    def _follow(self, message: ServerMessage) -> None:
        """Keep this process's copy of the participant as the store has it: a Redis restarted
        empty gets it back from here (signaling.presence), hand and stage included."""
        me = self.participant
        if me is None:
            return
        match message:
            case HandRaised(participant_id=pid, raised=raised) if pid == me.id:
                me.hand_raised = raised
            case StageChanged(participant_id=pid, on_stage=on_stage) if pid == me.id:
                me.on_stage = on_stage
            case Muted(participant_id=pid, muted=muted) if pid == me.id:
                me.muted = muted
            case _:
                pass

    async def terminate(self, message: ServerMessage | None, close_code: int) -> None:
        if self._closing:
            return
        self._closing = True
        self._leave_reason = LEAVE_REASONS.get(close_code, "room_closed")
        with contextlib.suppress(Exception):
            if message is not None:
                await self.ws.send_str(message.model_dump_json(exclude_none=True))
            await self.ws.close(code=close_code)

    # --- Holder (signaling.rights) ---------------------------------------------
    async def end_right(self, code: ErrorCode, message: str, close_code: int) -> None:
        ERRORS.labels(code.value).inc()
        await self.terminate(Error(code=code, message=message), close_code)

    def _expire(self) -> None:
        """The token's ``exp`` is reached: the seat it gave ends with it."""
        self._ending = asyncio.get_running_loop().create_task(
            self.end_right(
                ErrorCode.token_expired,
                "the access token has expired; join again with a fresh one",
                CLOSE_TOKEN_EXPIRED,
            )
        )

    def _release_right(self) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
        if self.claims is not None:
            self.service.rights.release(self.claims.sub, self)

    # --- lifecycle ---------------------------------------------------------
    async def run(self) -> None:
        WS_CONNECTIONS.inc()
        writer = asyncio.create_task(self._write(), name="ws-writer")
        join_timer = asyncio.get_running_loop().call_later(
            self.limits.join_timeout_seconds, self._join_timeout
        )
        try:
            async for msg in self.ws:
                if msg.type is WSMsgType.TEXT:
                    await self._on_text(msg.data)
                elif msg.type is WSMsgType.BINARY:
                    self._error(
                        ErrorCode.invalid_message, "binary frames are not part of the protocol"
                    )
                elif msg.type is WSMsgType.ERROR:
                    break
                if self._closing:
                    break
        finally:
            join_timer.cancel()
            self._release_right()
            if isinstance(self.ws.exception(), TimeoutError):
                self._leave_reason = "timeout"
            # aiohttp cancels the handler of a socket whose peer went away, often while the
            # leave is in a store command: leaving runs as its own task, or the room would
            # keep a participant who is gone.
            leaving = asyncio.get_running_loop().create_task(self._leave(writer), name="ws-leave")
            _LEAVING.add(leaving)
            leaving.add_done_callback(_LEAVING.discard)
            await asyncio.shield(leaving)

    async def _leave(self, writer: asyncio.Task[None]) -> None:
        try:
            await self._cleanup()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            WS_CONNECTIONS.dec()

    def _join_timeout(self) -> None:
        if self.participant is None and not self._closing:
            self._closing = True
            asyncio.get_running_loop().create_task(
                self.ws.close(code=CLOSE_JOIN_TIMEOUT, message=b"join timeout")
            )

    async def _cleanup(self) -> None:
        participant, self.participant = self.participant, None
        if participant is None:
            return
        try:
            await self.service.remove(participant, self._leave_reason, kick=False)
        except STORE_UNREACHABLE as exc:
            log.warning(
                "removing %s: the store does not answer (%s), retrying", participant.id, exc
            )
            self.service.pending_removals.add(participant, self._leave_reason)
        except Exception:
            log.exception("removing %s failed", participant.id)
        await self.service.hub.detach(participant.room_id, participant.id)
        if not self.ws.closed:
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def _write(self) -> None:
        while True:
            message = await self._outbound.get()
            try:
                await self.ws.send_str(message.model_dump_json(exclude_none=True))
            except (ConnectionError, RuntimeError):
                return

    # --- inbound -----------------------------------------------------------
    def _error(self, code: ErrorCode, message: str, rid: str | None = None) -> None:
        ERRORS.labels(code.value).inc()
        self.deliver(Error(code=code, message=message, rid=rid))

    async def _on_text(self, data: str) -> None:
        if not self._bucket.take():
            self._violations += 1
            if self._violations >= self.limits.violations_before_close:
                self._closing = True
                await self.ws.close(code=CLOSE_RATE_LIMIT, message=b"rate limit")
                return
            self._error(ErrorCode.rate_limited, "too many messages; slow down")
            return
        if len(data.encode()) > self.limits.max_message_bytes:
            self._error(
                ErrorCode.message_too_large,
                f"message larger than {self.limits.max_message_bytes} bytes",
            )
            return
        try:
            raw = json.loads(data)
        except ValueError as exc:
            self._error(ErrorCode.bad_json, f"not valid JSON: {exc}")
            return
        if not isinstance(raw, dict):
            self._error(ErrorCode.invalid_message, "a message is a JSON object with a type")
            return
        rid = echoable_rid(raw.get("rid"))
        kind = raw.get("type")
        if not isinstance(kind, str) or kind not in CLIENT_MESSAGE_TYPES:
            self._error(ErrorCode.unknown_type, f"unknown message type {shown(kind)}", rid)
            return
        try:
            message = client_message_adapter.validate_python(raw)
        except ValidationError as exc:
            err = exc.errors(include_url=False)[0]
            where = ".".join(str(p) for p in err["loc"][1:]) or "message"
            self._error(ErrorCode.invalid_message, f"{kind}: {where}: {err['msg']}", rid)
            return
        MESSAGES.labels(kind).inc()
        try:
            await self._dispatch(message)
        except SankeError as exc:
            self._error(exc.code, exc.message, message.rid)
        except STORE_UNREACHABLE as exc:
            log.info("handling %s: the store does not answer (%s)", kind, exc)
            self._error(
                ErrorCode.internal, f"the store does not answer; send {kind} again shortly", rid
            )
        except Exception as exc:
            log.exception("handling %s failed", kind)
            self._error(
                ErrorCode.internal, f"the server could not handle {kind}: {exc}", message.rid
            )

    async def _dispatch(self, message: ClientMessage) -> None:
        if isinstance(message, Ping):
            self.deliver(Pong(rid=message.rid, ts=message.ts, server_ts=time.time()))
            return
        if isinstance(message, Join):
            await self._join(message)
            return
        actor = self.participant
        if actor is None:
            raise SankeError(ErrorCode.not_joined, "send join first")
        service, media, room = self.service, self.service.media, actor.room_id
        match message:
            case Leave():
                self._leave_reason = "left"
                await self.service.remove(actor, "left", kick=False)
                self.deliver(Left(rid=message.rid))
                await self._drain_and_close()
            case Offer():
                answer = await self._media_call(media.offer(room, actor.id, message.sdp))
                self.deliver(ServerAnswer(rid=message.rid, sdp=answer))
            case Answer():
                await self._media_call(media.answer(room, actor.id, message.sdp))
            case Candidate():
                await self._media_call(media.candidate(room, actor.id, ice_candidate(message)))
            case RaiseHand():
                await service.set_hand(actor, True, None)
            case LowerHand():
                await service.set_hand(actor, False, message.participant_id)
            case SetStage():
                await service.set_stage(actor, message.participant_id, message.on_stage)
            case Mute():
                await service.mute(actor, message.participant_id, message.muted)
            case Kick():
                await service.kick(actor, message.participant_id)
            case SetLayer():
                await media.set_layer(room, actor.id, message.layer)
            case SetSource():
                await self._media_call(
                    media.set_source(room, actor.id, message.mid, message.source)
                )
            case SetRecording():
                await service.set_recording(actor, message.on)
            case EndLesson():
                await service.end_lesson(actor)
            case Stats():
                # Excess reports are refused, not counted as abuse: the message budget above
                # already closes a flooding client.
                if not self._stats_bucket.take():
                    raise SankeError(ErrorCode.rate_limited, "stats: at most one a second")
                await self._media_call(media.report_stats(room, actor.id, message.report()))

    @staticmethod
    async def _media_call(call: Awaitable[T]) -> T:
        """Run a media-plane call; its failures (bad SDP, …) become a media_error."""
        try:
            return await call
        except SankeError:
            raise
        except Exception as exc:
            log.info("media call failed: %r", exc)
            # The exception's text is the media stack's, not the client's business.
            raise SankeError(ErrorCode.media_error, "media negotiation failed") from None

    async def _join(self, message: Join) -> None:
        if self.participant is not None:
            raise SankeError(ErrorCode.already_joined, "already in a room; leave first")
        started = time.perf_counter()
        claims = self.tokens.verify(message.token)
        # Held before the join checks for a revocation: one racing the join either fails
        # that check or finds this connection (signaling.rights).
        self._release_right()
        self.claims, self.issued_at = claims, claims.iat
        self.service.rights.hold(claims.sub, self)
        self._held = []
        try:
            participant, others = await self.service.join(claims, None, message.name, self)
            # Whether the lesson is recorded (people in the room should know: the pages show
            # it), read while room events are held, so a change meanwhile comes after it.
            recording = await self._recording_status(participant.room_id)
        except BaseException:
            self._release_right()
            self.claims = None
            raise
        finally:
            held, self._held = self._held, None
        self.participant = participant
        version = ip_version(self.remote or "")
        JOINS_BY_IP.labels(participant.school_id or "", str(version or "unknown")).inc()
        loop = asyncio.get_running_loop()
        self._expiry = loop.call_at(
            loop.time() + max(0.0, claims.exp + self.tokens.leeway - time.time()), self._expire
        )
        visible = [participant_info(p) for p in others if can_see(participant.role, p.role)]
        # Joined goes first: it is queued before any event the join itself triggers.
        self._outbound.put_nowait(
            Joined(
                rid=message.rid,
                participant_id=participant.id,
                room_id=participant.room_id,
                role=participant.role,
                participants=visible,
                ice_servers=self.ice_servers(participant.id),
            )
        )
        if recording is not None and recording.enabled:  # else: never recorded, nothing to show
            self._outbound.put_nowait(recording)
        for event in held:
            self.deliver(event)
        JOIN_LATENCY.observe(time.perf_counter() - started)

    async def _recording_status(self, room_id: str) -> Recording | None:
        try:
            return await self.service.recording.status_of(room_id)
        except Exception:  # the join stands; the next change tells the page
            log.exception("reading the recording status of %s failed", room_id)
            return None

    async def _drain_and_close(self) -> None:
        self._closing = True
        for _ in range(50):
            if self._outbound.empty():
                break
            await asyncio.sleep(0.01)
        await self.ws.close(code=WSCloseCode.OK)
