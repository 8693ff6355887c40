"""HTTP API of classroom devices: registration by coordinators, schedule and join for devices."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from icalendar import Calendar, Event
from pydantic import BaseModel

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from lessons.context import lessons_context
from lessons.devices import Device, DeviceRegistration, DeviceView, RegisteredDevice, view
from lessons.models import LessonSession, SessionState
from lessons.service import Notice
from lessons.sessions import SHANGHAI
from scheduler.repository import TimetableRepository
from signaling.audit import audit
from signaling.http_auth import (
    TOKENS_KEY,
    authorize,
    bearer_token,
    calendar_link_claims,
    read_json_model,
    token_in_url,
)
from signaling.openapi import documented
from signaling.ratelimit import RATE_LIMITS_KEY
from signaling.rights import device_subject
from signaling.tokens import Claims

# The name a device calendar link's token carries; its subject says which device.
DEVICE_CALENDAR = "device:schedule"


class DeviceList(BaseModel):
    devices: list[DeviceView]


class DeviceSchedule(BaseModel):
    device_id: str
    class_id: str
    server_time: float
    current: LessonSession | None
    upcoming: list[LessonSession]
    notices: list[Notice]


class DeviceCalendarLink(BaseModel):
    url: str
    expires: int


class DeviceJoin(BaseModel):
    token: str
    session: LessonSession
    ws_path: str = "/ws"


@documented(
    summary="Register a device for a remote class of the district (a school coordinator: of "
    "its school); the credential is shown once",
    body=DeviceRegistration,
    reply=RegisteredDevice,
    status=201,
    tag="devices",
)
async def register_device(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    await request.app[RATE_LIMITS_KEY].register.take(claims.sub)
    body = await read_json_model(request, DeviceRegistration)
    await _check_scope(request, claims, body)
    registered = await lessons_context(request).devices.register(body)
    device = registered.device
    await audit(
        request,
        claims,
        "device.registered",
        device.id,
        school=device.school,
        class_id=device.class_id,
        name=device.name,
    )
    return web.json_response(registered.model_dump(), status=201)


async def _check_scope(request: web.Request, claims: Claims, body: DeviceRegistration) -> None:
    """The class must be one of the district's, of the school the body names, and within the
    coordinator's school when its token has one: a device registered for another school's
    class would get that school's schedule and tokens naming that school."""
    district = await TimetableRepository(lessons_context(request).lessons.store).district()
    if district is None:
        raise SankeError(
            ErrorCode.conflict,
            "no district yet: upload it, then register its classes' devices",
            409,
        )
    school = next((d.school for d in district.demands if d.class_id == body.class_id), None)
    if school is None:
        raise SankeError(
            ErrorCode.invalid_request,
            f"class {body.class_id!r} is not a remote class of district {district.id}",
            422,
        )
    if (
        claims.school_id is not None
        and claims.role is not Role.admin
        and claims.school_id != school
    ):
        raise SankeError(
            ErrorCode.forbidden,
            f"your token is for school {claims.school_id}: class {body.class_id} is not in it",
            403,
        )
    if body.school != school:
        raise SankeError(
            ErrorCode.invalid_request,
            f"class {body.class_id} belongs to school {school}, not {body.school}",
            422,
        )


@documented(summary="List classroom devices", reply=DeviceList, tag="devices")
async def list_devices(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    devices = DeviceList(devices=[view(d) for d in await lessons_context(request).devices.list()])
    return web.json_response(devices.model_dump(mode="json"))


@documented(summary="Revoke a device credential", tag="devices")
async def revoke_device(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    ctx = lessons_context(request)
    device = await ctx.devices.revoke(request.match_info["device_id"])
    # Its live connections close on every signaling process, and the join tokens it was
    # given no longer join (signaling.rights).
    await ctx.lessons.rooms.rights.revoke(device_subject(device.id), "device revoked")
    await audit(
        request, claims, "device.revoked", device.id, school=device.school, class_id=device.class_id
    )
    return web.json_response(view(device).model_dump())


async def _calendar_device(request: web.Request) -> Device:
    """The device whose calendar link's token the URL carries (a calendar app sends no
    header), or whose credential the header does. The link reads this calendar only; the
    device's revocation ends it."""
    ctx = lessons_context(request)
    if not token_in_url(request):
        return await ctx.devices.authenticate(bearer_token(request))
    claims = calendar_link_claims(request, DEVICE_CALENDAR)
    device = await ctx.devices.get(claims.sub.removeprefix(device_subject("")))
    if device is None or device_subject(device.id) != claims.sub:
        raise SankeError(ErrorCode.token_invalid, "this calendar link's device is unknown", 401)
    if device.revoked_at is not None:
        raise SankeError(ErrorCode.forbidden, "this device has been revoked", 403)
    return device


async def _device_schedule(request: web.Request, *, calendar: bool = False) -> DeviceSchedule:
    ctx = lessons_context(request)
    if calendar:
        device = await _calendar_device(request)
    else:
        device = await ctx.devices.authenticate(bearer_token(request))
    now = ctx.lessons.clock()
    mine = [s for s in await ctx.lessons.sessions_for_class(device.class_id) if s.closes_at > now]
    current = next(
        (
            s
            for s in mine
            if s.opens_at <= now
            and s.state in (SessionState.scheduled, SessionState.live, SessionState.missed)
        ),
        None,
    )
    horizon = now + 14 * 86400
    upcoming = [s for s in mine if s is not current and s.starts_at <= horizon][:50]
    return DeviceSchedule(
        device_id=device.id,
        class_id=device.class_id,
        server_time=now,
        current=current,
        upcoming=upcoming,
        notices=await ctx.lessons.notices(device.class_id),
    )


@documented(
    summary="The device's schedule: the current lesson, the next two weeks, notices",
    reply=DeviceSchedule,
    auth=True,
    tag="devices",
)
async def device_schedule(request: web.Request) -> web.Response:
    schedule = await _device_schedule(request)
    return web.json_response(schedule.model_dump(mode="json"))


@documented(summary="The device's schedule as iCalendar", auth=True, tag="devices")
async def device_schedule_ics(request: web.Request) -> web.Response:
    # A calendar subscription cannot send a header: its calendar link's token is in the URL.
    schedule = await _device_schedule(request, calendar=True)
    cal = Calendar()
    cal.add("prodid", "-//Sanke//lessons//ZH")
    cal.add("version", "2.0")
    cal.add("x-wr-timezone", "Asia/Shanghai")
    for s in [*([schedule.current] if schedule.current else []), *schedule.upcoming]:
        event = Event()
        event.add("uid", f"{s.id}@sanke")
        event.add("summary", f"{s.subject} · {s.teacher}")
        event.add("dtstart", datetime.fromtimestamp(s.starts_at, SHANGHAI))
        event.add("dtend", datetime.fromtimestamp(s.ends_at, SHANGHAI))
        event.add("status", "CANCELLED" if s.state is SessionState.cancelled else "CONFIRMED")
        cal.add_component(event)
    return web.Response(body=cal.to_ical(), content_type="text/calendar", charset="utf-8")


@documented(
    summary="A subscription link to the device's calendar: its token reads only that calendar "
    "(never the device credential in a URL)",
    reply=DeviceCalendarLink,
    status=201,
    tag="devices",
)
async def device_calendar_link(request: web.Request) -> web.Response:
    ctx = lessons_context(request)
    device = await ctx.devices.authenticate(bearer_token(request))
    await request.app[RATE_LIMITS_KEY].mint.take(device_subject(device.id))
    token, expires = request.app[TOKENS_KEY].mint_calendar_link(
        subject=device_subject(device.id),
        role=Role.classroom,
        calendar=DEVICE_CALENDAR,
        school_id=device.school,
    )
    url = f"/api/v1/device/schedule.ics?token={token}"
    return web.json_response(DeviceCalendarLink(url=url, expires=expires).model_dump(), status=201)


@documented(
    summary="A short-lived join token for the device's current lesson",
    reply=DeviceJoin,
    tag="devices",
)
async def device_join(request: web.Request) -> web.Response:
    ctx = lessons_context(request)
    device = await ctx.devices.authenticate(bearer_token(request))
    await request.app[RATE_LIMITS_KEY].mint.take(device_subject(device.id))
    now = ctx.lessons.clock()
    sessions = [
        s for s in await ctx.lessons.sessions_for_class(device.class_id) if s.closes_at > now
    ]
    session = next(
        (s for s in sessions if s.opens_at <= now and s.state is not SessionState.cancelled), None
    )
    if session is None:
        upcoming = next((s for s in sessions if s.state is not SessionState.cancelled), None)
        when = (
            f"; next lesson opens at {datetime.fromtimestamp(upcoming.opens_at, SHANGHAI):%Y-%m-%d %H:%M}"
            if upcoming
            else ""
        )
        raise SankeError(
            ErrorCode.lesson_not_open, f"no lesson is open for this classroom now{when}", 409
        )
    token = request.app[TOKENS_KEY].mint(
        subject=device_subject(device.id),
        role=Role.classroom,
        room=session.room_id,
        classroom_id=device.class_id,
        school_id=device.school,
        name=device.name or device.class_id,
        not_before=session.opens_at,
        expires=session.closes_at,
    )
    return web.json_response(DeviceJoin(token=token, session=session).model_dump(mode="json"))


def setup_device_routes(app: web.Application) -> None:
    r = app.router
    r.add_post("/api/v1/devices", register_device)
    r.add_get("/api/v1/devices", list_devices)
    r.add_delete("/api/v1/devices/{device_id}", revoke_device)
    r.add_get("/api/v1/device/schedule", device_schedule)
    r.add_get("/api/v1/device/schedule.ics", device_schedule_ics)
    r.add_post("/api/v1/device/calendar-link", device_calendar_link)
    r.add_post("/api/v1/device/join", device_join)
