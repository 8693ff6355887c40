"""HTTP API of the signaling plane: health, rooms, token minting, the WebSocket."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from contracts.errors import ErrorCode, SankeError
from contracts.protocol import IceServer, Recording
from contracts.rooms import ID_PATTERN, Participant, Role, Room, RoomKind
from signaling.audit import audit
from signaling.connection import HARD_SIZE_FACTOR, Connection, Limits
from signaling.http_auth import TOKENS_KEY, authorize, read_json_model
from signaling.names import clean_name, name_problem
from signaling.openapi import build_openapi, documented
from signaling.ratelimit import RATE_LIMITS_KEY
from signaling.recording_control import Switcher
from signaling.service import RoomService
from signaling.tokens import MAX_TTL_SECONDS, check_window, max_ttl


@dataclass(frozen=True)
class SignalingContext:
    service: RoomService
    limits: Limits
    ice_servers: Callable[[str], list[IceServer]]
    default_room_capacity: int
    token_ttl_seconds: int


CONTEXT_KEY: web.AppKey[SignalingContext] = web.AppKey("signaling", SignalingContext)


class Health(BaseModel):
    status: str
    node_id: str | None = None


class RoomCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=ID_PATTERN)
    name: str = Field(default="", max_length=200)
    kind: RoomKind = RoomKind.dedicated
    school_id: str | None = Field(default=None, max_length=128)
    max_participants: int | None = Field(default=None, ge=1, le=10_000)


class RoomView(BaseModel):
    room: Room
    participant_count: int = Field(description="teachers, classrooms and viewers")
    observer_count: int = Field(description="invisible observers (巡课)")


class RoomDetail(BaseModel):
    room: Room
    participants: list[Participant]


class RoomList(BaseModel):
    rooms: list[RoomView]


# Finite and before 2100: a float time of the year 131968 or NaN is a mistake or an attack.
UnixTime = Annotated[float, Field(ge=0, le=4_102_444_800, allow_inf_nan=False)]


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=128)
    role: Role
    room: str | None = Field(default=None, pattern=ID_PATTERN)
    classroom_id: str | None = Field(default=None, max_length=128)
    school_id: str | None = Field(default=None, max_length=128)
    name: str = Field(default="", max_length=100)
    not_before: UnixTime | None = Field(default=None, description="unix time; default now")
    expires: UnixTime | None = Field(
        default=None, description="unix time; default not_before + TTL (at most the role's)"
    )
    ttl_seconds: int | None = Field(
        default=None,
        ge=60,
        le=max(MAX_TTL_SECONDS.values()),
        description="lifetime; at most the role's maximum (docs/security.md)",
    )

    @field_validator("name")
    @classmethod
    def _displayable(cls, name: str, info: ValidationInfo) -> str:
        role = info.data.get("role")
        problem = name_problem(name, role) if isinstance(role, Role) else None
        if problem is not None:
            raise ValueError(problem)
        return clean_name(name, limit=100)


class TokenReply(BaseModel):
    token: str
    not_before: float
    expires: float


def _ctx(request: web.Request) -> SignalingContext:
    return request.app[CONTEXT_KEY]


@documented(summary="Liveness: the process serves requests", reply=Health, auth=False, tag="ops")
async def healthz(request: web.Request) -> web.Response:
    return web.json_response(Health(status="ok").model_dump())


@documented(summary="Readiness: the store answers", reply=Health, auth=False, tag="ops")
async def readyz(request: web.Request) -> web.Response:
    service = _ctx(request).service
    if not await service.store.ping():
        raise SankeError(ErrorCode.internal, "the store does not answer", 503)
    return web.json_response(Health(status="ready", node_id=service.node_id).model_dump())


@documented(summary="This API as OpenAPI 3.1", auth=False, tag="ops")
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(build_openapi(request.app))


@documented(summary="Create a room", body=RoomCreate, reply=Room, status=201, tag="rooms")
async def create_room(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    body = await read_json_model(request, RoomCreate)
    ctx = _ctx(request)
    room = Room(
        id=body.id,
        name=body.name,
        kind=body.kind,
        school_id=body.school_id,
        max_participants=body.max_participants or ctx.default_room_capacity,
    )
    if not await ctx.service.repo.create(room):
        raise SankeError(ErrorCode.room_exists, f"room {room.id} already exists", 409)
    await audit(request, claims, "room.created", room.id, school=room.school_id, kind=room.kind)
    return web.json_response(room.model_dump(mode="json"), status=201)


@documented(summary="List rooms", reply=RoomList, tag="rooms")
async def list_rooms(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    repo = _ctx(request).service.repo
    rooms = []
    for room in sorted(await repo.all(), key=lambda r: r.id):
        roles = [p.role for p in await repo.list_participants(room.id)]
        observers = roles.count(Role.observer)
        rooms.append(
            RoomView(room=room, participant_count=len(roles) - observers, observer_count=observers)
        )
    return web.json_response(RoomList(rooms=rooms).model_dump(mode="json"))


@documented(summary="A room and everyone in it (observers included)", reply=RoomDetail, tag="rooms")
async def get_room(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    repo = _ctx(request).service.repo
    room = await repo.get(request.match_info["room_id"])
    if room is None:
        raise SankeError(ErrorCode.room_not_found, "no such room", 404)
    detail = RoomDetail(room=room, participants=await repo.list_participants(room.id))
    return web.json_response(detail.model_dump(mode="json"))


@documented(
    summary="Close a room: everyone in it is told and disconnected", reply=Room, tag="rooms"
)
async def close_room(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    service = _ctx(request).service
    room_id = request.match_info["room_id"]
    if not await service.close_room(room_id):
        raise SankeError(ErrorCode.room_not_found, "no such room", 404)
    room = await service.repo.get(room_id)
    assert room is not None
    await audit(request, claims, "room.closed", room_id, school=room.school_id)
    return web.json_response(room.model_dump(mode="json"))


class RecordingSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    on: bool = Field(description="false stops the lesson's recording, true starts a new part")


class RecordingStatus(BaseModel):
    room_id: str
    on: bool
    enabled: bool = Field(description="the room's kind is recorded at all")


@documented(
    summary="Stop or restart a lesson's recording (409 recording_unavailable: not recorded)",
    body=RecordingSwitch,
    reply=RecordingStatus,
    tag="rooms",
)
async def set_recording(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    body = await read_json_model(request, RecordingSwitch)
    who = Switcher(subject=claims.sub, role=claims.role, school_id=claims.school_id)
    room_id = request.match_info["room_id"]
    status, _ = await _ctx(request).service.recording.set(room_id, body.on, who)
    return web.json_response(_recording_status(room_id, status).model_dump())


@documented(summary="Whether a lesson is recorded", reply=RecordingStatus, tag="rooms")
async def get_recording(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    room_id = request.match_info["room_id"]
    status = await _ctx(request).service.recording.status_of(room_id)
    if status is None:
        raise SankeError(ErrorCode.room_not_found, "no such room", 404)
    return web.json_response(_recording_status(room_id, status).model_dump())


def _recording_status(room_id: str, status: Recording) -> RecordingStatus:
    return RecordingStatus(room_id=room_id, on=status.on, enabled=status.enabled)


@documented(
    summary="Mint an access token", body=TokenRequest, reply=TokenReply, status=201, tag="tokens"
)
async def mint_token(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    await request.app[RATE_LIMITS_KEY].mint.take(claims.sub)
    body = await read_json_model(request, TokenRequest)
    if body.role in (Role.coordinator, Role.admin) and claims.role is not Role.admin:
        raise SankeError(
            ErrorCode.forbidden, "only an admin mints coordinator or admin tokens", 403
        )
    if body.role not in (Role.coordinator, Role.admin) and not body.room:
        raise SankeError(ErrorCode.invalid_request, f"a {body.role.value} token needs a room", 422)
    ctx = _ctx(request)
    if body.room and await ctx.service.repo.get(body.room) is None:
        raise SankeError(ErrorCode.room_not_found, f"room {body.room} does not exist", 404)
    now = time.time()
    nbf = body.not_before if body.not_before is not None else now
    # The configured default never makes a token outlive its role's maximum.
    ttl = body.ttl_seconds or min(ctx.token_ttl_seconds, max_ttl(body.role))
    exp = body.expires if body.expires is not None else nbf + ttl
    check_window(body.role, int(nbf), int(exp), now)
    if exp <= now:
        raise SankeError(ErrorCode.invalid_request, "this token would be expired already", 422)
    token = request.app[TOKENS_KEY].mint(
        subject=body.subject,
        role=body.role,
        room=body.room,
        classroom_id=body.classroom_id,
        school_id=body.school_id,
        name=body.name,
        not_before=nbf,
        expires=exp,
    )
    # who handed whom which right: never the token itself
    detail: dict[str, str | None] = {"role": body.role.value, "room": body.room}
    await audit(request, claims, "token.minted", body.subject, school=body.school_id, **detail)
    reply = TokenReply(token=token, not_before=int(nbf), expires=int(exp))
    return web.json_response(reply.model_dump(), status=201)


async def websocket(request: web.Request) -> web.WebSocketResponse:
    """Signaling protocol v1 (see docs/protocol.md)."""
    ctx = _ctx(request)
    limits = ctx.limits
    ws = web.WebSocketResponse(
        heartbeat=limits.heartbeat_seconds * 2 / 3,
        max_msg_size=limits.max_message_bytes * HARD_SIZE_FACTOR,
    )
    await ws.prepare(request)
    conn = Connection(
        ws, ctx.service, request.app[TOKENS_KEY], limits, ctx.ice_servers, request.remote
    )
    await conn.run()
    return ws


def setup_ops_routes(app: web.Application, context: SignalingContext) -> None:
    """Liveness, readiness and the OpenAPI document: every process serving HTTP has them,
    also one that serves no rooms (``sanke scheduler``)."""
    app[CONTEXT_KEY] = context
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/openapi.json", openapi)


def setup_signaling_routes(app: web.Application, context: SignalingContext) -> None:
    setup_ops_routes(app, context)
    app.router.add_get("/ws", websocket)
    app.router.add_post("/api/v1/rooms", create_room)
    app.router.add_get("/api/v1/rooms", list_rooms)
    app.router.add_get("/api/v1/rooms/{room_id}", get_room)
    app.router.add_delete("/api/v1/rooms/{room_id}", close_room)
    app.router.add_put("/api/v1/rooms/{room_id}/recording", set_recording)
    app.router.add_get("/api/v1/rooms/{room_id}/recording", get_recording)
    app.router.add_post("/api/v1/tokens", mint_token)
