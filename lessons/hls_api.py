"""Live HLS over HTTP: the signed master URL a viewer asks for, and the files the SFU node
writes (embedded: this process's; a node's directory mounted where the app runs).

- ``GET /api/v1/rooms/{room_id}/hls`` (a token of the room, or a coordinator's/admin's):
  the master playlist's signed URL (lessons/hls_signing.py), the same for every viewer of
  the lesson within a bucket, so a CDN caches one copy; 409 ``hls_unavailable`` for a room
  whose kind is not packaged or a server that packages nothing.
- ``GET /hls/{room}/master.m3u8``, ``/hls/{room}/{stream}/{layer}/index.m3u8``,
  ``…/init.mp4``, ``…/seg<n>.m4s``: each needs a valid ``auth_key`` (403 JSON otherwise);
  playlists are served with every inner URI signed for its own path, a short max-age
  (live: they change every segment), segments and init segments ``immutable`` with a long
  max-age (their names are never reused: a new stream has its own directory).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, Field

from contracts.errors import ErrorCode, SankeError
from contracts.hls import room_directory_name
from contracts.rooms import Role, RoomKind, RoomState
from lessons.hls_signing import AUTH_KEY, UrlSigner, Verdict
from signaling.http_auth import authorize
from signaling.openapi import documented
from signaling.rooms import RoomRepository

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
CONTENT_TYPES = {".m3u8": PLAYLIST_TYPE, ".m4s": "video/iso.segment", ".mp4": "video/mp4"}
PLAYLIST_CACHE = "public, max-age=1, s-maxage=1"
SEGMENT_CACHE = "public, max-age=31536000, immutable"
# what the packager writes (media/hls_room.py, media/hls_variant.py), nothing else
_ROOM = r"(?!\.{1,2}/)[\w.\-]{1,128}"  # never "." or "..": nothing outside the directory
_FILE = re.compile(
    rf"^(?P<room>{_ROOM})/(?:master\.m3u8|[\w\-]{{1,64}}/(?:high|low)/"
    r"(?:index\.m3u8|init\.mp4|seg\d{1,9}\.m4s))$"
)
MAX_PLAYLIST_BYTES = 1 << 20
MAY_WATCH_ANY = frozenset({Role.coordinator, Role.admin, Role.observer})


@dataclass
class HlsServing:
    directory: Path
    signer: UrlSigner
    rooms: RoomRepository
    kinds: frozenset[RoomKind]
    public_base: str = ""  # e.g. https://cdn.example.cn: where viewers fetch /hls from


HLS_KEY: web.AppKey[HlsServing] = web.AppKey("hls", HlsServing)


class HlsLink(BaseModel):
    room_id: str
    url: str = Field(description="the master playlist, signed (auth_key, Aliyun type A)")
    expires_at: float = Field(description="the URL and every URI inside expire then (unix s)")
    live: bool = Field(description="the master playlist exists now (the teacher's camera is up)")


@documented(summary="The signed URL of a lesson's live HLS", reply=HlsLink, tag="rooms")
async def hls_link(request: web.Request) -> web.Response:
    serving = request.app[HLS_KEY]
    room_id = request.match_info["room_id"]
    claims = authorize(request, *Role)  # any role: a room token or a district-wide one
    if claims.role not in MAY_WATCH_ANY and claims.room != room_id:
        raise SankeError(ErrorCode.wrong_room, "this token is for another room", 403)
    room = await serving.rooms.get(room_id)
    if room is None:
        raise SankeError(ErrorCode.room_not_found, "no such room", 404)
    if room.state is RoomState.closed:
        raise SankeError(ErrorCode.room_closed, f"room {room_id} is closed", 410)
    if room.kind not in serving.kinds:
        raise SankeError(
            ErrorCode.hls_unavailable, f"{room.kind.value} lessons are not sent as HLS here", 409
        )
    directory = room_directory_name(room_id)
    path = f"/hls/{directory}/master.m3u8"
    parts = serving.signer.lesson_parts(room_id)
    live = await asyncio.to_thread((serving.directory / directory / "master.m3u8").is_file)
    return web.json_response(
        HlsLink(
            room_id=room_id,
            url=serving.public_base.rstrip("/") + serving.signer.sign(path, parts),
            expires_at=serving.signer.expires_at(parts),
            live=live,
        ).model_dump()
    )


async def hls_file(request: web.Request) -> web.StreamResponse:
    serving = request.app[HLS_KEY]
    tail = request.match_info["tail"]
    if _FILE.match(tail) is None:
        raise SankeError(ErrorCode.not_found, "no such HLS file", 404)
    verdict, parts = serving.signer.check(request.path, request.query.get(AUTH_KEY))
    if verdict == Verdict.expired:
        raise SankeError(ErrorCode.url_signature_expired, "this HLS URL has expired", 403)
    if parts is None:
        why = "missing" if verdict == Verdict.missing else "not valid for this URL"
        raise SankeError(ErrorCode.url_signature_invalid, f"the auth_key is {why}", 403)
    path = serving.directory / tail
    suffix = path.suffix
    headers = {
        "Content-Type": CONTENT_TYPES[suffix],
        # a player on another origin (the CDN's domain, a school portal) reads them too
        "Access-Control-Allow-Origin": "*",
    }
    if suffix == ".m3u8":
        text = await asyncio.to_thread(_read_playlist, path)
        if text is None:
            raise SankeError(ErrorCode.not_found, "no such HLS playlist (yet)", 404)
        headers["Cache-Control"] = PLAYLIST_CACHE
        body = serving.signer.sign_playlist(text, request.path, parts)
        return web.Response(body=body.encode(), headers=headers)
    if not await asyncio.to_thread(path.is_file):
        raise SankeError(ErrorCode.not_found, "no such HLS segment (any more)", 404)
    headers["Cache-Control"] = SEGMENT_CACHE
    return web.FileResponse(path, headers=headers)


def _read_playlist(path: Path) -> str | None:
    try:
        with path.open("rb") as f:
            return f.read(MAX_PLAYLIST_BYTES).decode("utf-8", "replace")
    except OSError:
        return None


def setup_hls_routes(
    app: web.Application,
    directory: Path,
    signer: UrlSigner,
    rooms: RoomRepository,
    kinds: Iterable[RoomKind],
    public_base: str = "",
) -> None:
    app[HLS_KEY] = HlsServing(directory, signer, rooms, frozenset(kinds), public_base)
    app.router.add_get("/api/v1/rooms/{room_id}/hls", hls_link)
    app.router.add_get("/hls/{tail:.+}", hls_file)
