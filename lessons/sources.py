"""A lesson's source of classroom hardware: registered once for a master classroom.

A coordinator registers a source (kind, name, the master classroom it teaches from); when a
lesson of that classroom is open, the source becomes the room's teacher (``lessons.whip``).
Only ``whip`` is accepted today; ``rtsp``, ``rtmp`` and ``srt`` are kinds of the model
already, so a pulled source adds its URL fields without a new store layout.

A WHIP source's bearer token (``whip.<id>.<secret>``) is shown once at registration; the
store keeps only its SHA-256 (SM3 with ``SANKE_CRYPTO=gm``), as for classroom devices.

Layout (under the store's prefix): ``h:sources`` id → Source JSON; ``h:source-errors``
id → the source's last error; ``kv:source-live:<id>`` its live status while it publishes,
refreshed with each quality sample and expiring after ``LIVE_TTL_SECONDS`` (a process that
died leaves no "connected" behind).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.errors import ErrorCode, SankeError
from contracts.store import Store
from signaling.gm import sm3_hex

SOURCES = "h:sources"
SOURCE_ERRORS = "h:source-errors"
LIVE_TTL_SECONDS = 10.0  # quality samples come every 2 s
TOKEN_PREFIX = "whip"
MAX_SOURCES = 10_000  # a province's master classrooms, with room to spare


def live_key(source_id: str) -> str:
    return f"kv:source-live:{source_id}"


def source_subject(source_id: str) -> str:
    """The subject a source joins its lesson's room as (revoked when it is deleted)."""
    return f"source:{source_id}"


class SourceKind(StrEnum):
    whip = "whip"  # an encoder (OBS ≥ 30, a hardware encoder) publishes WebRTC to Sanke
    rtsp = "rtsp"  # Sanke pulls an IP camera or a 录播 host (not yet)
    rtmp = "rtmp"  # a 录播 host pushes RTMP with a stream key (not yet)
    srt = "srt"  # SRT listener or caller (not yet)


class SourceRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Only WHIP is ingested today; the other kinds are refused with a clear 422.
    kind: Literal[SourceKind.whip] = Field(description="whip (rtsp, rtmp and srt: not yet)")
    name: str = Field(min_length=1, max_length=100, description="e.g. 录播主机 3楼")
    school: str = Field(min_length=1, max_length=128, description="the master school")
    classroom: str = Field(
        min_length=1, max_length=100, description="the master classroom its lessons teach from"
    )


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    kind: SourceKind
    name: str
    school: str
    classroom: str
    # A WHIP source: exactly one of them, its token's SHA-256 (default) or SM3 (gm mode).
    secret_sha256: str | None = Field(default=None, exclude_if=lambda v: v is None)
    secret_sm3: str | None = Field(default=None, exclude_if=lambda v: v is None)
    created_at: float

    @model_validator(mode="after")
    def _one_hash(self) -> Source:
        if self.kind is SourceKind.whip and (self.secret_sha256 is None) == (
            self.secret_sm3 is None
        ):
            raise ValueError("a WHIP source has exactly one of secret_sha256, secret_sm3")
        return self

    def matches(self, secret: str) -> bool:
        if self.secret_sm3 is not None:
            return hmac.compare_digest(self.secret_sm3, sm3_hex(secret.encode()))
        if self.secret_sha256 is not None:
            return hmac.compare_digest(self.secret_sha256, _sha256(secret))
        return False


class SourceError(BaseModel):
    """Why the source's last attempt failed (what its operator has to change)."""

    at: float
    code: ErrorCode
    message: str = Field(max_length=500)


class SourceLive(BaseModel):
    """A source publishing now: where, since when, and what the SFU receives of its video."""

    model_config = ConfigDict(extra="forbid")

    room_id: str
    participant_id: str
    since: float
    updated_at: float
    bitrate_bps: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None


class SourceStatus(BaseModel):
    connected: bool
    room_id: str | None = None
    since: float | None = None
    bitrate_bps: float | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    last_error: SourceError | None = None


class SourceView(BaseModel):
    id: str
    kind: SourceKind
    name: str
    school: str
    classroom: str
    created_at: float
    whip_url: str | None = Field(default=None, description="where a WHIP encoder POSTs")
    status: SourceStatus | None = None


class RegisteredSource(BaseModel):
    source: SourceView
    token: str = Field(description="shown once: the encoder's bearer token")


class SourceList(BaseModel):
    sources: list[SourceView]


def whip_path(source_id: str) -> str:
    return f"/whip/v1/{source_id}"


def view(source: Source, status: SourceStatus | None = None) -> SourceView:
    return SourceView(
        **source.model_dump(exclude={"secret_sha256", "secret_sm3"}),
        whip_url=whip_path(source.id) if source.kind is SourceKind.whip else None,
        status=status,
    )


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SourceRegistry:
    def __init__(self, store: Store, crypto: Literal["default", "gm"] = "default") -> None:
        self.store = store
        self.crypto = crypto

    async def register(self, body: SourceRegistration) -> RegisteredSource:
        if len(await self.store.hkeys(SOURCES)) >= MAX_SOURCES:
            raise SankeError(ErrorCode.conflict, f"at most {MAX_SOURCES} sources", 409)
        source_id = "src" + secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        source = Source(
            id=source_id,
            kind=body.kind,
            name=body.name,
            school=body.school,
            classroom=body.classroom,
            secret_sha256=_sha256(secret) if self.crypto != "gm" else None,
            secret_sm3=sm3_hex(secret.encode()) if self.crypto == "gm" else None,
            created_at=time.time(),
        )
        await self.store.hset(SOURCES, source_id, source.model_dump_json())
        return RegisteredSource(source=view(source), token=f"{TOKEN_PREFIX}.{source_id}.{secret}")

    async def get(self, source_id: str) -> Source | None:
        raw = await self.store.hget(SOURCES, source_id)
        return Source.model_validate_json(raw) if raw else None

    async def list(self) -> list[Source]:
        sources = [Source.model_validate_json(raw) for raw in await self.store.hvals(SOURCES)]
        return sorted(sources, key=lambda s: (s.school, s.classroom, s.id))

    async def delete(self, source_id: str) -> Source:
        source = await self.get(source_id)
        if source is None:
            raise SankeError(ErrorCode.not_found, f"no source {source_id}", 404)
        await self.store.hdel(SOURCES, source_id)
        await self.store.hdel(SOURCE_ERRORS, source_id)
        await self.store.delete(live_key(source_id))
        return source

    async def authenticate(self, source_id: str, token: str | None) -> Source:
        """The source ``source_id`` if ``token`` is its token; 401 otherwise (the same answer
        for an unknown source and a wrong token once a token was sent: nothing to probe)."""
        if not token:
            raise SankeError(ErrorCode.token_missing, "the source's bearer token is required", 401)
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != TOKEN_PREFIX or parts[1] != source_id:
            raise SankeError(ErrorCode.token_invalid, "not this source's token", 401)
        source = await self.get(source_id)
        if source is None or not source.matches(parts[2]):
            raise SankeError(ErrorCode.token_invalid, "unknown source or wrong token", 401)
        return source

    # --- status ---------------------------------------------------------------

    async def set_live(self, source_id: str, live: SourceLive) -> None:
        await self.store.set(live_key(source_id), live.model_dump_json(), ttl=LIVE_TTL_SECONDS)

    async def clear_live(self, source_id: str, participant_id: str) -> None:
        """The publish of ``participant_id`` ended (not a newer one of the same source)."""
        live = await self.live(source_id)
        if live is not None and live.participant_id == participant_id:
            await self.store.delete(live_key(source_id))

    async def live(self, source_id: str) -> SourceLive | None:
        raw = await self.store.get(live_key(source_id))
        return SourceLive.model_validate_json(raw) if raw else None

    async def record_error(self, source_id: str, code: ErrorCode, message: str) -> None:
        error = SourceError(at=time.time(), code=code, message=message[:500])
        await self.store.hset(SOURCE_ERRORS, source_id, error.model_dump_json())

    async def status(self, source_id: str) -> SourceStatus:
        live = await self.live(source_id)
        raw = await self.store.hget(SOURCE_ERRORS, source_id)
        error = SourceError.model_validate_json(raw) if raw else None
        if live is None:
            return SourceStatus(connected=False, last_error=error)
        return SourceStatus(
            connected=True,
            room_id=live.room_id,
            since=live.since,
            bitrate_bps=live.bitrate_bps,
            width=live.width,
            height=live.height,
            fps=live.fps,
            last_error=error,
        )
