"""A lesson's source of classroom hardware: registered once for a master classroom.

A coordinator registers a source (kind, name, the master classroom it teaches from); when a
lesson of that classroom is open, the source becomes the room's teacher (``lessons.whip``).
``whip``, ``rtsp``, ``rtmp`` and ``srt`` are accepted. An RTSP source is pulled by the SFU while its classroom's lesson is open
(``lessons.rtsp``); its camera's password is kept in the store (the pull needs it in the
clear) and never shown by the API (``SourceView`` says only whether there is one). An SRT
source is an FFmpeg SRT URL the SFU opens while the lesson is open (``lessons.srt``): a
listener the encoder calls, or a caller to an encoder that listens; its ``passphrase`` is
kept like a camera's password and never shown.

A WHIP source's bearer token (``whip.<id>.<secret>``) is shown once at registration; the
store keeps only its SHA-256 (SM3 with ``SANKE_CRYPTO=gm``), as for classroom devices. An
RTMP source's stream key is shown once too (in its ``rtmp_url``); the store keeps only its
SHA-256 (in every crypto mode: the SFU that accepts the push compares that digest, and
``media`` has no SM3), indexed in ``h:rtmp-keys`` (digest → source id) so that a push the
SFU refused can be told to its source's status.

Layout (under the store's prefix): ``h:sources`` id → Source JSON; ``h:source-errors``
id → the source's last error; ``kv:source-live:<id>`` its live status while it publishes,
refreshed with each quality sample and expiring after ``LIVE_TTL_SECONDS`` (a process that
died leaves no "connected" behind).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from enum import StrEnum
from typing import Literal
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.errors import ErrorCode, SankeError
from contracts.media import PullRequest
from contracts.store import Store
from signaling.gm import sm3_hex

SOURCES = "h:sources"
SOURCE_ERRORS = "h:source-errors"
RTMP_KEYS = "h:rtmp-keys"
DEFAULT_RTMP_SERVER = "rtmp://localhost:1935/live"
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
    rtsp = "rtsp"  # Sanke pulls an IP camera or a 录播 host
    rtmp = "rtmp"  # a 录播 host or OBS pushes RTMP with a stream key
    srt = "srt"  # SRT: the SFU listens for the encoder's call, or calls an encoder


RTSP_URL = r"^rtsps?://[^/@\s]+(/\S*)?$"  # no credentials in it: they have their own fields


class RtspSettings(BaseModel):
    """Where an RTSP source's camera is, and how to log in to it."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=RTSP_URL, max_length=1024, description="rtsp://host:554/path")
    sub_url: str | None = Field(
        default=None,
        pattern=RTSP_URL,
        max_length=1024,
        description="the camera's sub-stream (CIF/D1 H.264): the classrooms' low layer",
    )
    transport: Literal["tcp", "udp"] = Field(
        default="tcp", description="tcp (interleaved; through firewalls) or udp"
    )
    username: str | None = Field(default=None, min_length=1, max_length=64)
    password: str | None = Field(default=None, max_length=128)

    def pull_request(self) -> PullRequest:
        return PullRequest(
            url=self._with_credentials(self.url),
            low_url=self._with_credentials(self.sub_url) if self.sub_url else None,
            transport=self.transport,
        )

    def _with_credentials(self, url: str) -> str:
        if self.username is None:
            return url
        parts = urlsplit(url)
        auth = quote(self.username, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        return urlunsplit(
            (parts.scheme, f"{auth}@{parts.netloc}", parts.path, parts.query, parts.fragment)
        )


SRT_URL = r"^srt://(\[[0-9a-fA-F:.]+\]|[^/@\s\[\]?]+):\d{1,5}(\?\S*)?$"


class SrtSettings(BaseModel):
    """An SRT source: FFmpeg's SRT URL, e.g. ``srt://[::]:9000?mode=listener`` (the encoder
    calls the SFU's port 9000) or ``srt://10.1.3.20:9000?mode=caller`` (the SFU calls it)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        pattern=SRT_URL,
        max_length=1024,
        description="srt://[::]:9000?mode=listener or srt://encoder:9000?mode=caller",
    )

    def pull_request(self) -> PullRequest:
        return PullRequest(url=self.url)

    def shown(self) -> str:
        """The URL without its passphrase's value."""
        return re.sub(r"(passphrase=)[^&]*", r"\1***", self.url)


class RtspView(BaseModel):
    url: str
    sub_url: str | None = None
    transport: Literal["tcp", "udp"]
    username: str | None = None
    has_password: bool = Field(description="the password itself is never shown")


class SourceRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: Literal[SourceKind.whip, SourceKind.rtsp, SourceKind.rtmp, SourceKind.srt] = Field(
        description="whip, rtsp, rtmp or srt"
    )
    name: str = Field(min_length=1, max_length=100, description="e.g. 录播主机 3楼")
    school: str = Field(min_length=1, max_length=128, description="the master school")
    classroom: str = Field(
        min_length=1, max_length=100, description="the master classroom its lessons teach from"
    )
    rtsp: RtspSettings | None = Field(default=None, description="an rtsp source's camera")
    srt: SrtSettings | None = Field(default=None, description="an srt source's URL")

    @model_validator(mode="after")
    def _rtsp_settings(self) -> SourceRegistration:
        if (self.kind is SourceKind.rtsp) != (self.rtsp is not None):
            raise ValueError("an rtsp source needs its rtsp settings (url), and only it has them")
        if (self.kind is SourceKind.srt) != (self.srt is not None):
            raise ValueError("an srt source needs its srt settings (url), and only it has them")
        return self


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
    rtsp: RtspSettings | None = Field(default=None, exclude_if=lambda v: v is None)
    srt: SrtSettings | None = Field(default=None, exclude_if=lambda v: v is None)
    # An RTMP source: its stream key's SHA-256 (the key is shown once).
    stream_key_sha256: str | None = Field(default=None, exclude_if=lambda v: v is None)
    created_at: float

    @model_validator(mode="after")
    def _one_hash(self) -> Source:
        if self.kind is SourceKind.whip and (self.secret_sha256 is None) == (
            self.secret_sm3 is None
        ):
            raise ValueError("a WHIP source has exactly one of secret_sha256, secret_sm3")
        if (self.kind is SourceKind.rtsp) != (self.rtsp is not None):
            raise ValueError("an RTSP source has its rtsp settings, and only it")
        if (self.kind is SourceKind.srt) != (self.srt is not None):
            raise ValueError("an SRT source has its srt settings, and only it")
        if (self.kind is SourceKind.rtmp) != (self.stream_key_sha256 is not None):
            raise ValueError("an RTMP source has its stream key's digest, and only it")
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
    rtmp_server: str | None = Field(
        default=None, description="an RTMP source: the encoder's server (OBS: Server)"
    )
    rtsp: RtspView | None = None
    srt_url: str | None = Field(default=None, description="an srt source's URL (no passphrase)")
    status: SourceStatus | None = None


class RegisteredSource(BaseModel):
    source: SourceView
    token: str | None = Field(default=None, description="shown once: a WHIP encoder's bearer token")
    stream_key: str | None = Field(
        default=None, description="shown once: an RTMP source's stream key (OBS: Stream Key)"
    )
    rtmp_url: str | None = Field(
        default=None, description="shown once: the RTMP server and stream key, as one URL"
    )


class SourceList(BaseModel):
    sources: list[SourceView]


def whip_path(source_id: str) -> str:
    return f"/whip/v1/{source_id}"


def view(
    source: Source, status: SourceStatus | None = None, rtmp_server: str = DEFAULT_RTMP_SERVER
) -> SourceView:
    rtsp = source.rtsp
    return SourceView(
        **source.model_dump(
            exclude={"secret_sha256", "secret_sm3", "rtsp", "srt", "stream_key_sha256"}
        ),
        srt_url=source.srt.shown() if source.srt is not None else None,
        whip_url=whip_path(source.id) if source.kind is SourceKind.whip else None,
        rtmp_server=rtmp_server if source.kind is SourceKind.rtmp else None,
        rtsp=RtspView(
            url=rtsp.url,
            sub_url=rtsp.sub_url,
            transport=rtsp.transport,
            username=rtsp.username,
            has_password=rtsp.password is not None,
        )
        if rtsp is not None
        else None,
        status=status,
    )


def _sha256(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


class SourceRegistry:
    def __init__(
        self,
        store: Store,
        crypto: Literal["default", "gm"] = "default",
        rtmp_server: str = DEFAULT_RTMP_SERVER,
    ) -> None:
        self.store = store
        self.crypto = crypto
        self.rtmp_server = rtmp_server.rstrip("/")  # rtmp://host:1935/live, as encoders see it
        self._refusals: dict[str, float] = {}  # digest → when its refusal was last written

    def view(self, source: Source, status: SourceStatus | None = None) -> SourceView:
        return view(source, status, self.rtmp_server)

    async def register(self, body: SourceRegistration) -> RegisteredSource:
        if len(await self.store.hkeys(SOURCES)) >= MAX_SOURCES:
            raise SankeError(ErrorCode.conflict, f"at most {MAX_SOURCES} sources", 409)
        source_id = "src" + secrets.token_hex(6)
        whip = body.kind is SourceKind.whip
        rtmp = body.kind is SourceKind.rtmp
        secret = secrets.token_urlsafe(32)
        key = f"{source_id}-{secrets.token_urlsafe(24)}" if rtmp else None
        source = Source(
            id=source_id,
            kind=body.kind,
            name=body.name,
            school=body.school,
            classroom=body.classroom,
            secret_sha256=_sha256(secret) if whip and self.crypto != "gm" else None,
            secret_sm3=sm3_hex(secret.encode()) if whip and self.crypto == "gm" else None,
            rtsp=body.rtsp,
            srt=body.srt,
            stream_key_sha256=_sha256(key) if key is not None else None,
            created_at=time.time(),
        )
        if source.stream_key_sha256 is not None:
            await self.store.hset(RTMP_KEYS, source.stream_key_sha256, source_id)
        await self.store.hset(SOURCES, source_id, source.model_dump_json())
        token = f"{TOKEN_PREFIX}.{source_id}.{secret}" if whip else None
        return RegisteredSource(
            source=self.view(source),
            token=token,
            stream_key=key,
            rtmp_url=f"{self.rtmp_server}/{key}" if key is not None else None,
        )

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
        if source.stream_key_sha256 is not None:
            await self.store.hdel(RTMP_KEYS, source.stream_key_sha256)
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

    async def refused_push(self, key_sha256: str, message: str) -> None:
        """The SFU refused an RTMP push with a stream key of this digest: its source's last
        error says so (a wrong key's digest is no source's: nothing to tell). At most one
        write a digest every 5 s, so an encoder retrying fast costs the store nothing."""
        now = time.monotonic()
        if now - self._refusals.get(key_sha256, -60.0) < 5.0:
            return
        if len(self._refusals) > 1000:
            self._refusals.clear()
        self._refusals[key_sha256] = now
        source_id = await self.store.hget(RTMP_KEYS, key_sha256)
        if source_id is not None:
            await self.record_error(source_id, ErrorCode.lesson_not_open, message)

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
