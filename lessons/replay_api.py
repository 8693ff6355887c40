"""HTTP API of the replay library: search recorded lessons, play their parts, publish them.

Who sees what (``can_see``): an admin everything; a coordinator its school's lessons when its
token names a school, else the whole district's; a teacher the lessons it taught; a viewer or
observer the published ones; a classroom device nothing (403). A lesson someone may not see
is not found (404), rather than forbidden: its id says nothing.

A ``<video>`` element cannot send an ``Authorization`` header, and a bearer token never goes
in a URL (``signaling.http_auth``). So a lesson's detail gives each part a short-lived
**replay link** (``?play=``): a token of its own that plays that lesson's files and nothing
else, for the same subject and role, checked again at each request (unpublishing a lesson
stops a viewer's links at once).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role, RoomKind
from lessons.recording_store import S3RecordingStore
from lessons.replay_catalogue import (
    PartView,
    Replay,
    ReplayCatalogue,
    ReplayFilter,
    teacher_matches,
)
from signaling.audit import audit
from signaling.http_auth import TOKENS_KEY, authorize, bearer_token, read_json_model
from signaling.openapi import documented
from signaling.tokens import REPLAY_PURPOSE, Claims

# Who has a replay library at all (and admins): a classroom device has none.
READERS = (Role.coordinator, Role.teacher, Role.viewer, Role.observer)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_PAGE = 10_000


@dataclass(frozen=True)
class ReplayContext:
    catalogue: ReplayCatalogue
    # where the finished recordings are (None: this process has none to serve)
    directory: Path | None = None
    clock: Callable[[], float] = time.time
    # the bucket finished parts are uploaded to (None: they are only in ``directory``)
    bucket: S3RecordingStore | None = None


REPLAY_KEY: web.AppKey[ReplayContext] = web.AppKey("replays", ReplayContext)


class ReplayList(BaseModel):
    total: int = Field(description="how many lessons match (all pages)")
    page: int
    page_size: int
    replays: list[Replay] = Field(description="newest first; parts without play links")


class ReplayPublication(BaseModel):
    model_config = ConfigDict(extra="forbid")

    published: StrictBool


def can_see(claims: Claims, replay: Replay) -> bool:
    if claims.role is Role.admin:
        return True
    if claims.role is Role.coordinator:
        return claims.school_id is None or claims.school_id == replay.school
    if claims.role is Role.teacher:
        return teacher_matches(claims.sub, replay.teacher)
    if claims.role in (Role.viewer, Role.observer):
        return replay.published
    return False


def _reader(claims: Claims) -> Claims:
    if claims.role not in (*READERS, Role.admin):
        raise SankeError(ErrorCode.forbidden, "a classroom device has no replay library", 403)
    return claims


def _filter(request: web.Request) -> tuple[ReplayFilter, int, int]:
    q = request.query
    try:
        wanted = ReplayFilter(
            school=q.get("school") or None,
            teacher=q.get("teacher") or None,
            subject=q.get("subject") or None,
            grade=int(q["grade"]) if q.get("grade") else None,
            kind=RoomKind(q["kind"]) if q.get("kind") else None,
            date_from=_day(q.get("from")),
            date_to=_day(q.get("to")),
            published=_flag(q.get("published")),
        )
        page = int(q.get("page", "1"))
        size = int(q.get("page_size", str(DEFAULT_PAGE_SIZE)))
    except (ValueError, ValidationError) as exc:
        raise SankeError(ErrorCode.invalid_request, f"bad query: {exc}", 422) from None
    if not 1 <= page <= MAX_PAGE:
        raise SankeError(ErrorCode.invalid_request, f"page is 1…{MAX_PAGE}", 422)
    if not 1 <= size <= MAX_PAGE_SIZE:
        raise SankeError(ErrorCode.invalid_request, f"page_size is 1…{MAX_PAGE_SIZE}", 422)
    return wanted, page, size


def _day(value: str | None) -> str | None:
    if not value:
        return None
    return date.fromisoformat(value).isoformat()  # ValueError: not a date


def _flag(value: str | None) -> bool | None:
    if value is None or value == "":
        return None
    if value in ("true", "1"):
        return True
    if value in ("false", "0"):
        return False
    raise ValueError("published is true or false")


def replays(request: web.Request) -> ReplayContext:
    return request.app[REPLAY_KEY]


@documented(
    summary="Search the replay library (what the token may see), newest first",
    reply=ReplayList,
    query={
        "school": "the master school",
        "teacher": "the teacher's id",
        "subject": "the subject",
        "grade": "the grade (a number)",
        "kind": "dedicated, master or broadcast",
        "from": "first day (YYYY-MM-DD, Asia/Shanghai)",
        "to": "last day (YYYY-MM-DD)",
        "published": "true or false",
        "page": "1-based",
        "page_size": f"1…{MAX_PAGE_SIZE} (default {DEFAULT_PAGE_SIZE})",
    },
    tag="replays",
)
async def list_replays(request: web.Request) -> web.Response:
    claims = _reader(authorize(request, *READERS))
    wanted, page, size = _filter(request)
    found = [
        r
        for r in await replays(request).catalogue.all()
        if can_see(claims, r) and wanted.matches(r)
    ]
    shown = found[(page - 1) * size : page * size]
    reply = ReplayList(total=len(found), page=page, page_size=size, replays=shown)
    return web.json_response(reply.model_dump(mode="json"))


async def _visible(request: web.Request, claims: Claims) -> Replay:
    replay = await replays(request).catalogue.get(request.match_info["replay_id"])
    if replay is None or not can_see(claims, replay):
        raise SankeError(ErrorCode.not_found, "no such recorded lesson", 404)
    return replay


@documented(
    summary="One recorded lesson with its parts in order, each with a short-lived play link",
    reply=Replay,
    tag="replays",
)
async def get_replay(request: web.Request) -> web.Response:
    claims = _reader(authorize(request, *READERS))
    replay = await _visible(request, claims)
    link, _ = request.app[TOKENS_KEY].mint_replay_link(claims, replay.id)
    base = f"/api/v1/replays/{quote(replay.id, safe='')}/parts"
    parts = [
        PartView(**p.model_dump(exclude={"url"}), url=f"{base}/{p.n}?play={link}")
        for p in replay.parts
    ]
    return web.json_response(replay.model_copy(update={"parts": parts}).model_dump(mode="json"))


def _part_claims(request: web.Request, replay_id: str) -> Claims:
    """From the Authorization header, or from a replay link (``?play=``) for this lesson."""
    if request.headers.get("Authorization", "").lower().startswith("bearer ") or (
        "play" not in request.query
    ):
        return _reader(request.app[TOKENS_KEY].verify(bearer_token(request)))
    claims = request.app[TOKENS_KEY].verify(request.query.get("play") or None, replay=replay_id)
    if claims.purpose != REPLAY_PURPOSE:
        raise SankeError(
            ErrorCode.token_invalid,
            "a URL carries only a replay link's token: GET /api/v1/replays/{id} gives them",
            401,
        )
    return _reader(claims)


@documented(
    summary="Play a part of a recorded lesson (video/mp4; HTTP range requests for seeking); "
    "the token from the Authorization header or a replay link's ?play=; a part in the "
    "recordings bucket: 302 to a presigned URL of it",
    query={"play": "a replay link's token (from GET /api/v1/replays/{id})"},
    tag="replays",
)
async def play_part(request: web.Request) -> web.StreamResponse:
    replay_id = request.match_info["replay_id"]
    claims = _part_claims(request, replay_id)
    replay = await _visible(request, claims)
    try:
        n = int(request.match_info["n"])
    except ValueError:
        raise SankeError(ErrorCode.invalid_request, "a part is a number", 422) from None
    part = next((p for p in replay.parts if p.n == n), None)
    if part is None:
        raise SankeError(ErrorCode.not_found, f"lesson {replay.id} has no part {n}", 404)
    context = replays(request)
    directory = context.directory
    path = _inside(directory, part.file) if directory is not None else None
    if path is None or not path.is_file():
        if context.bucket is not None:
            # The bucket serves it, range requests and all, for no longer than the link
            # that asked: the player follows the redirect (docs/recording.md, "Storage").
            url = context.bucket.play_url(part.file, claims.exp - context.clock())
            raise web.HTTPFound(url, headers={"Cache-Control": "private, no-store"})
        raise SankeError(
            ErrorCode.not_found, "this part's file is not on this server's recordings storage", 404
        )
    return web.FileResponse(
        path,
        headers={
            "Content-Type": "video/mp4",
            "Cache-Control": "private, max-age=0",
            "Content-Disposition": f'inline; filename="{quote(Path(part.file).name)}"',
        },
    )


def _inside(directory: Path, file: str) -> Path | None:
    root = directory.resolve()
    path = (root / file).resolve()
    return path if path.is_relative_to(root) else None


@documented(
    summary="Publish a recorded lesson for viewers, or withdraw it (coordinator, admin)",
    body=ReplayPublication,
    reply=Replay,
    tag="replays",
)
async def publish_replay(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    body = await read_json_model(request, ReplayPublication)
    replay = await _visible(request, claims)
    context = replays(request)
    if replay.published is not body.published:
        await context.catalogue.set_published(
            replay.id, body.published, claims.sub, context.clock()
        )
        await audit(
            request,
            claims,
            "replay.published" if body.published else "replay.unpublished",
            replay.id,
            school=replay.school,
        )
    updated = await context.catalogue.get(replay.id)
    return web.json_response((updated or replay).model_dump(mode="json"))


def setup_replay_routes(app: web.Application, context: ReplayContext) -> None:
    app[REPLAY_KEY] = context
    r = app.router
    r.add_get("/api/v1/replays", list_replays)
    r.add_get("/api/v1/replays/{replay_id}", get_replay)
    r.add_get("/api/v1/replays/{replay_id}/parts/{n}", play_part)
    r.add_put("/api/v1/replays/{replay_id}/published", publish_replay)
