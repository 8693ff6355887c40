"""The WHIP endpoint (RFC 9725): an encoder publishes to the lesson of its master classroom.

- ``POST /whip/v1/{source_id}`` (``Authorization: Bearer <source token>``, ``application/sdp``
  offer) → ``201`` with the answer, ``Location`` (the session resource), ``ETag``;
- ``DELETE`` on the Location ends the publish (the classrooms see the teacher leave);
- ``PATCH`` on it with ``application/trickle-ice-sdpfrag`` adds the client's trickled
  candidates (RFC 8840); an ICE restart (new credentials) is not supported: 422, as RFC 9725
  §4.3.1 says for a server that does trickle only;
- ``OPTIONS`` answers CORS preflights (a browser-based WHIP client on another origin).

No lesson of the classroom open now: 409 ``lesson_not_open`` with ``Retry-After``; encoders
retry (docs/ingest.md).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web

from contracts.errors import ErrorCode, SankeError
from contracts.media import MAX_SDP_BYTES, IceCandidate
from lessons.metrics import INGEST_OFFERS
from lessons.repository import SessionRepository
from lessons.sessions import SHANGHAI
from lessons.sources import Source, SourceRegistry, whip_path
from lessons.whip import (
    SILENCE_SECONDS,
    WhipPeer,
    WhipSession,
    WhipSessions,
    new_session_id,
    open_lesson,
    source_claims,
)
from lessons.whip_sdp import check_whip_offer, parse_sdpfrag
from signaling.bodies import read_body
from signaling.http_auth import bearer_token
from signaling.openapi import documented
from signaling.ratelimit import WindowLimit
from signaling.service import RoomService

log = logging.getLogger(__name__)

SDP = "application/sdp"
SDPFRAG = "application/trickle-ice-sdpfrag"
MAX_SDPFRAG_BYTES = 16 * 1024
SOURCE_ID = re.compile(r"src[0-9a-f]{12}")
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
# How soon an encoder should try again when no lesson is open (OBS retries on its own).
RETRY_AFTER_SECONDS = 30
# Each offer costs a peer connection: an encoder retrying in a tight loop is slowed down
# (a reconnecting OBS waits seconds between tries).
OFFERS_PER_MINUTE = 20
CORS = {
    "Access-Control-Allow-Origin": "*",  # bearer tokens, no cookies: any origin may call
    "Access-Control-Allow-Methods": "POST, DELETE, PATCH, OPTIONS",
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Expose-Headers": "Location, ETag, Accept-Patch, Retry-After",
    "Access-Control-Max-Age": "86400",
    "Cache-Control": "no-store",
}


@dataclass
class WhipContext:
    service: RoomService
    registry: SourceRegistry
    # the media plane's own offer check (media.sdp_check), run before the source joins
    # the room, so a bad offer never shows the classrooms a teacher who then leaves
    check_offer: Callable[[str], None]
    clock: Callable[[], float] = time.time
    silence_seconds: float = SILENCE_SECONDS
    sessions: WhipSessions = field(init=False)
    lessons: SessionRepository = field(init=False)
    offers: WindowLimit = field(init=False)
    peers: dict[str, WhipPeer] = field(default_factory=dict)  # this process's, by source

    def __post_init__(self) -> None:
        self.sessions = WhipSessions(self.registry)
        self.lessons = SessionRepository(self.registry.store)
        self.offers = WindowLimit(self.registry.store, "WHIP offers", OFFERS_PER_MINUTE)


WHIP_KEY: web.AppKey[WhipContext] = web.AppKey("whip", WhipContext)


async def _cors(request: web.Request, response: web.StreamResponse) -> None:
    """CORS headers on every WHIP answer, errors included (a browser hides an error without
    them from the page that sent the request); set when the answer is sent, whichever
    middleware made it (JSON errors are made outside the handlers)."""
    if request.path.startswith("/whip/"):
        response.headers.update(CORS)


async def _source(request: web.Request) -> Source:
    ctx = request.app[WHIP_KEY]
    source_id = request.match_info["source_id"]
    source = await ctx.registry.get(source_id) if SOURCE_ID.fullmatch(source_id) else None
    if source is None:
        raise SankeError(ErrorCode.not_found, "no such source", 404)
    return await ctx.registry.authenticate(source.id, bearer_token(request))


def _require_type(request: web.Request, wanted: str) -> None:
    if request.content_type != wanted:
        raise SankeError(ErrorCode.invalid_request, f"the body must be {wanted}", 415)


async def _text(request: web.Request, max_bytes: int) -> str:
    raw = await read_body(request, max_bytes)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SankeError(ErrorCode.invalid_sdp, "the body is not UTF-8 text", 400) from None


@documented(
    summary="WHIP publish (RFC 9725): the source's SDP offer → 201 with the answer and the "
    "session's Location; the source becomes the teacher of its classroom's open lesson",
    body_text=SDP,
    status=201,
    tag="whip",
)
async def publish(request: web.Request) -> web.StreamResponse:
    ctx = request.app[WHIP_KEY]
    source = await _source(request)
    try:
        await ctx.offers.take(source.id)
        _require_type(request, SDP)
        offer = await _text(request, MAX_SDP_BYTES)
        ufrag = check_whip_offer(offer, ctx.check_offer)
        reply = await _publish(request, ctx, source, offer, ufrag)
    except SankeError as exc:
        INGEST_OFFERS.labels(source.kind.value, exc.code.value).inc()
        if exc.code is not ErrorCode.rate_limited:  # the last real problem stays visible
            await ctx.registry.record_error(source.id, exc.code, exc.message)
        raise
    INGEST_OFFERS.labels(source.kind.value, "accepted").inc()
    return reply


async def _publish(
    request: web.Request, ctx: WhipContext, source: Source, offer: str, ufrag: str | None
) -> web.StreamResponse:
    now = ctx.clock()
    lookup = await open_lesson(ctx.lessons, ctx.service.repo, source, now)
    lesson = lookup.open
    if lesson is None:
        when = (
            f"; the next one opens at {datetime.fromtimestamp(lookup.next_opens_at, SHANGHAI):%H:%M}"
            if lookup.next_opens_at is not None
            else ""
        )
        raise SankeError(
            ErrorCode.lesson_not_open,
            f"no lesson of {source.school} {source.classroom} is open now{when}: retry "
            "(lessons open before they start)",
            409,
            {"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    claims = source_claims(source, lesson, now)
    peer = WhipPeer(
        ctx.service,
        ctx.registry,
        ctx.sessions,
        source,
        claims.iat,
        silence_seconds=ctx.silence_seconds,
        on_end=lambda: _forget(ctx, peer),
    )
    # Held before the join checks for a revocation, as a WebSocket's right is.
    ctx.service.rights.hold(claims.sub, peer)
    try:
        participant, _ = await ctx.service.join(claims, None, None, peer, publish_only=True)
    except BaseException:
        ctx.service.rights.release(claims.sub, peer)
        raise
    peer.joined(participant)
    try:
        answer = await ctx.service.media.offer(participant.room_id, participant.id, offer)
    except BaseException:
        peer.end()
        raise
    session = WhipSession(
        id=new_session_id(),
        source_id=source.id,
        lesson_id=lesson.id,
        room_id=participant.room_id,
        participant_id=participant.id,
        etag=f'"{new_session_id()}"',
        ice_ufrag=ufrag,
        created_at=time.time(),
    )
    await ctx.sessions.put(session)
    ctx.peers[source.id] = peer
    await peer.mark_live()
    log.info("WHIP source %s publishes to %s as %s", source.id, lesson.room_id, participant.id)
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type=SDP,
        headers={
            "Location": f"{whip_path(source.id)}/sessions/{session.id}",
            "ETag": session.etag,
            "Accept-Patch": SDPFRAG,
        },
    )


def _forget(ctx: WhipContext, peer: WhipPeer) -> None:
    if ctx.peers.get(peer.source.id) is peer:
        del ctx.peers[peer.source.id]


async def _session(request: web.Request) -> tuple[Source, WhipSession]:
    source = await _source(request)
    session_id = request.match_info["session_id"]
    session = await request.app[WHIP_KEY].sessions.get(source.id)
    if session is None or not SESSION_ID.fullmatch(session_id) or session.id != session_id:
        raise SankeError(ErrorCode.not_found, "no such WHIP session (it ended)", 404)
    return source, session


@documented(summary="End a WHIP publish (the classrooms see the teacher leave)", tag="whip")
async def stop(request: web.Request) -> web.StreamResponse:
    ctx = request.app[WHIP_KEY]
    source, session = await _session(request)
    participant = await ctx.service.repo.get_participant(session.room_id, session.participant_id)
    if participant is not None:
        # kick: the process holding the publish (maybe not this one) ends it there
        await ctx.service.remove(participant, "left", kick=True)
    await ctx.sessions.discard(source.id, session.participant_id)
    await ctx.registry.clear_live(source.id, session.participant_id)
    return web.Response(status=200)


@documented(
    summary="Trickle ICE candidates to a WHIP publish (ICE restart: 422, not supported)",
    body_text=SDPFRAG,
    status=204,
    tag="whip",
)
async def trickle(request: web.Request) -> web.StreamResponse:
    ctx = request.app[WHIP_KEY]
    _, session = await _session(request)
    _require_type(request, SDPFRAG)
    match = request.headers.get("If-Match")
    if match is not None and match.strip() not in ("*", session.etag):
        raise SankeError(ErrorCode.conflict, "If-Match is not this session's ETag", 412)
    fragment = parse_sdpfrag(await _text(request, MAX_SDPFRAG_BYTES))
    if fragment.ice_ufrag is not None and fragment.ice_ufrag != session.ice_ufrag:
        raise SankeError(
            ErrorCode.invalid_request,
            "ICE restart is not supported: DELETE the session and POST a new offer",
            422,
        )
    for mid, candidate in fragment.candidates:
        await ctx.service.media.candidate(
            session.room_id,
            session.participant_id,
            IceCandidate(candidate=candidate, sdp_mid=mid, sdp_mline_index=None),
        )
    return web.Response(status=204)


@documented(summary="CORS preflight for browser WHIP clients", auth=False, status=204, tag="whip")
async def preflight(request: web.Request) -> web.StreamResponse:
    return web.Response(status=204, headers={"Accept-Post": SDP})


async def close_publishes(app: web.Application) -> None:
    """This process stops: its publishes leave their rooms (encoders retry elsewhere)."""
    ctx = app[WHIP_KEY]
    for peer in list(ctx.peers.values()):
        peer.end()
    for peer in list(ctx.peers.values()):
        await peer.ended.wait()
    ctx.peers.clear()


def setup_whip_routes(app: web.Application, context: WhipContext) -> None:
    app[WHIP_KEY] = context
    app.on_response_prepare.append(_cors)
    r = app.router
    r.add_post("/whip/v1/{source_id}", publish)
    r.add_route("OPTIONS", "/whip/v1/{source_id}", preflight)
    resource = "/whip/v1/{source_id}/sessions/{session_id}"
    r.add_delete(resource, stop)
    r.add_patch(resource, trickle)
    r.add_route("OPTIONS", resource, preflight)
    app.on_shutdown.append(close_publishes)
