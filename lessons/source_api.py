"""HTTP API of a lesson's hardware sources: coordinators register, list and delete them.

Scoped like classroom devices (``lessons.device_api``): the master classroom must be one
that the district's master lessons teach from, and a school coordinator (a token with a
``school_id``) sees and manages only its school's sources.
"""

from __future__ import annotations

from aiohttp import web

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from lessons.context import lessons_context
from lessons.sources import (
    RegisteredSource,
    Source,
    SourceList,
    SourceRegistration,
    SourceRegistry,
    SourceStatus,
    SourceView,
    source_subject,
)
from scheduler.repository import TimetableRepository
from signaling.audit import audit
from signaling.http_auth import authorize, read_json_model
from signaling.openapi import documented
from signaling.ratelimit import RATE_LIMITS_KEY
from signaling.tokens import Claims

SOURCES_KEY: web.AppKey[SourceRegistry] = web.AppKey("sources", SourceRegistry)


def _in_scope(claims: Claims, school: str) -> bool:
    return claims.role is Role.admin or claims.school_id is None or claims.school_id == school


async def _check_classroom(request: web.Request, claims: Claims, body: SourceRegistration) -> None:
    """The master classroom must be one the district's master lessons teach from, and of the
    coordinator's school when its token has one: a source registered for another school's
    classroom would teach that school's lessons."""
    district = await TimetableRepository(lessons_context(request).lessons.store).district()
    if district is None:
        raise SankeError(
            ErrorCode.conflict, "no district yet: upload it, then register its sources", 409
        )
    if not any(
        (o.school, o.classroom) == (body.school, body.classroom) for o in district.offerings
    ):
        raise SankeError(
            ErrorCode.invalid_request,
            f"no master lesson of district {district.id} is taught in {body.school} "
            f"{body.classroom}",
            422,
        )
    if not _in_scope(claims, body.school):
        raise SankeError(
            ErrorCode.forbidden,
            f"your token is for school {claims.school_id}: {body.school} is not it",
            403,
        )


async def _scoped(request: web.Request, claims: Claims) -> Source:
    source = await request.app[SOURCES_KEY].get(request.match_info["source_id"])
    # Another school's source is not found, rather than forbidden: its id says nothing.
    if source is None or not _in_scope(claims, source.school):
        raise SankeError(ErrorCode.not_found, "no such source", 404)
    return source


@documented(
    summary="Register a lesson source (classroom hardware) for a master classroom; a WHIP "
    "source's bearer token is shown once",
    body=SourceRegistration,
    reply=RegisteredSource,
    status=201,
    tag="sources",
)
async def register_source(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    await request.app[RATE_LIMITS_KEY].register.take(claims.sub)
    body = await read_json_model(request, SourceRegistration)
    await _check_classroom(request, claims, body)
    registered = await request.app[SOURCES_KEY].register(body)
    source = registered.source
    await audit(
        request,
        claims,
        "source.registered",
        source.id,
        school=source.school,
        classroom=source.classroom,
        kind=source.kind.value,
        name=source.name,
    )
    return web.json_response(registered.model_dump(mode="json"), status=201)


@documented(summary="List lesson sources with their status", reply=SourceList, tag="sources")
async def list_sources(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    registry = request.app[SOURCES_KEY]
    views = [
        registry.view(s, await registry.status(s.id))
        for s in await registry.list()
        if _in_scope(claims, s.school)
    ]
    return web.json_response(SourceList(sources=views).model_dump(mode="json"))


@documented(summary="One lesson source with its status", reply=SourceView, tag="sources")
async def get_source(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    source = await _scoped(request, claims)
    status = await request.app[SOURCES_KEY].status(source.id)
    return web.json_response(request.app[SOURCES_KEY].view(source, status).model_dump(mode="json"))


@documented(
    summary="A lesson source's status: connected, bitrate, resolution, fps, last error",
    reply=SourceStatus,
    tag="sources",
)
async def source_status(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    source = await _scoped(request, claims)
    status = await request.app[SOURCES_KEY].status(source.id)
    return web.json_response(status.model_dump(mode="json"))


@documented(
    summary="Delete a lesson source: its token stops working and a live publish ends",
    reply=SourceView,
    tag="sources",
)
async def delete_source(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    source = await _scoped(request, claims)
    await request.app[SOURCES_KEY].delete(source.id)
    # A publish of it ends on whichever signaling process holds it (signaling.rights).
    await lessons_context(request).lessons.rooms.rights.revoke(
        source_subject(source.id), "source deleted"
    )
    await audit(
        request,
        claims,
        "source.deleted",
        source.id,
        school=source.school,
        classroom=source.classroom,
        kind=source.kind.value,
    )
    return web.json_response(request.app[SOURCES_KEY].view(source).model_dump(mode="json"))


def setup_source_routes(app: web.Application, registry: SourceRegistry) -> None:
    app[SOURCES_KEY] = registry
    r = app.router
    r.add_post("/api/v1/sources", register_source)
    r.add_get("/api/v1/sources", list_sources)
    r.add_get("/api/v1/sources/{source_id}", get_source)
    r.add_get("/api/v1/sources/{source_id}/status", source_status)
    r.add_delete("/api/v1/sources/{source_id}", delete_source)
