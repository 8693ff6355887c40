"""District data under /api/v1/schedule/district (coordinator or admin token): the whole
district as JSON, its bells/offerings/demands/pairings as CSV, coordinator pins, bans and
pairings (结对帮扶: which regions or schools may serve which, ``domain.Pairing``).

Every change goes through ``district_edits.apply``: in a child process when its input is large
(scheduler.offload), so that a province's upload never stalls the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from scheduler.domain import District, Pairing
from scheduler.io.csvio import CSV_KINDS, CsvKind
from scheduler.io.district_edits import (
    Change,
    EditPair,
    EditPairing,
    ImportCsv,
    Rejected,
    ReplaceDistrict,
    apply,
    export_csv,
)
from scheduler.offload import OFFLOAD_BYTES, Offloader
from scheduler.repository import TimetableRepository
from signaling.bodies import read_body
from signaling.http_auth import ValidationFailed, authorize, read_json_model
from signaling.openapi import documented

PREFIX = "/api/v1/schedule"
Handler = Callable[[web.Request], Awaitable[web.Response]]
# Measured on the synthetic province (5,000 offerings, 26,599 demands, 5,096 schools): its
# district is 18.1 MB of compact JSON, 42.2 MB pretty-printed; its bells CSV 6.9 MB (68,697
# rows). The same numbers are the Ingress's proxy-body-size (k8s/), see docs/limits.md.
DISTRICT_MAX_BYTES = 64 << 20
CSV_MAX_BYTES = 16 << 20
# Routes whose bodies may be larger than signaling.bodies.JSON_MAX_BYTES (route → limit).
BODY_LIMITS = {
    f"{PREFIX}/district": DISTRICT_MAX_BYTES,
    f"{PREFIX}/district/csv/{{kind}}": CSV_MAX_BYTES,
}
OFFLOADER_KEY: web.AppKey[Offloader] = web.AppKey("schedule_offloader", Offloader)
DISTRICT_REPO_KEY: web.AppKey[TimetableRepository] = web.AppKey(
    "district_repo", TimetableRepository
)


class PairBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_id: str
    offering_id: str


def _auth(request: web.Request) -> None:
    authorize(request, Role.coordinator, Role.admin)


async def _stored(request: web.Request) -> str:
    stored = await request.app[DISTRICT_REPO_KEY].district_json()
    if stored is None:
        raise SankeError(ErrorCode.not_found, "no district uploaded yet", 404)
    return stored


async def _edit(request: web.Request, change: Change) -> web.Response:
    """Apply ``change`` to the stored district (off the loop when large), then store it."""
    repo = request.app[DISTRICT_REPO_KEY]
    stored = None if isinstance(change, ReplaceDistrict) else await _stored(request)
    size = change.size + len(stored or "")
    result = await request.app[OFFLOADER_KEY].run(size, apply, stored, change)
    if isinstance(result, Rejected):
        if result.status == 422 and result.details:
            raise ValidationFailed(result.details)
        raise SankeError(ErrorCode.invalid_request, result.message, result.status)
    if stored is not None and await repo.district_json() != stored:
        raise SankeError(
            ErrorCode.conflict, "the district changed while this change was checked: retry", 409
        )
    await repo.put_district_json(result.document, result.district_id)
    return web.json_response(result.reply)


@documented(
    summary="Upload the whole district (replaces it); large ones are checked off the loop",
    body=District,
    tag="schedule",
)
async def put_district(request: web.Request) -> web.Response:
    _auth(request)
    return await _edit(request, ReplaceDistrict(await read_body(request, DISTRICT_MAX_BYTES)))


@documented(summary="The district as stored", reply=District, tag="schedule")
async def get_district(request: web.Request) -> web.Response:
    _auth(request)
    # Validated when it was stored: sent as it is, not parsed again.
    return web.Response(text=await _stored(request), content_type="application/json")


def _kind(request: web.Request) -> CsvKind:
    kind = request.match_info["kind"]
    for known in CSV_KINDS:
        if kind == known:
            return known
    raise SankeError(ErrorCode.not_found, f"unknown CSV {kind!r} ({', '.join(CSV_KINDS)})", 404)


@documented(
    summary="Replace the district's bells, offerings, demands or pairings from a CSV file",
    body_text="text/csv",
    tag="schedule",
)
async def put_csv(request: web.Request) -> web.Response:
    _auth(request)
    kind = _kind(request)
    return await _edit(request, ImportCsv(kind, await read_body(request, CSV_MAX_BYTES)))


@documented(summary="The district's bells, offerings, demands or pairings as CSV", tag="schedule")
async def get_csv(request: web.Request) -> web.Response:
    _auth(request)
    kind = _kind(request)
    stored = await _stored(request)
    text = await request.app[OFFLOADER_KEY].run(len(stored), export_csv, stored, kind)
    return web.Response(text=text, content_type="text/csv", charset="utf-8")


def _pair_route(field: Literal["pins", "bans"], add: bool) -> Handler:
    @documented(
        summary=f"{'Add' if add else 'Remove'} a coordinator {field[:-1]}",
        body=PairBody,
        tag="schedule",
    )
    async def handler(request: web.Request) -> web.Response:
        _auth(request)
        body = await read_json_model(request, PairBody)
        return await _edit(request, EditPair(field, add, body.class_id, body.offering_id))

    return handler


def _pairing_route(add: bool) -> Handler:
    @documented(
        summary=(
            "Add a pairing (结对帮扶: serving's master teachers may teach served's classes)"
            if add
            else "Remove a pairing (the one equal to the body)"
        ),
        body=Pairing,
        tag="schedule",
    )
    async def handler(request: web.Request) -> web.Response:
        _auth(request)
        body = await read_json_model(request, Pairing)
        return await _edit(request, EditPairing(add, body))

    return handler


def setup_district_routes(
    app: web.Application, repo: TimetableRepository, offload_bytes: int = OFFLOAD_BYTES
) -> None:
    app[DISTRICT_REPO_KEY] = repo
    app[OFFLOADER_KEY] = Offloader(offload_bytes)
    r = app.router
    r.add_put(f"{PREFIX}/district", put_district)
    r.add_get(f"{PREFIX}/district", get_district)
    r.add_put(f"{PREFIX}/district/csv/{{kind}}", put_csv)
    r.add_get(f"{PREFIX}/district/csv/{{kind}}", get_csv)
    r.add_post(f"{PREFIX}/pins", _pair_route("pins", True))
    r.add_delete(f"{PREFIX}/pins", _pair_route("pins", False))
    r.add_post(f"{PREFIX}/bans", _pair_route("bans", True))
    r.add_delete(f"{PREFIX}/bans", _pair_route("bans", False))
    r.add_post(f"{PREFIX}/pairings", _pairing_route(True))
    r.add_delete(f"{PREFIX}/pairings", _pairing_route(False))
