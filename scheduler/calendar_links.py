"""Calendar links: subscription URLs of a class's, teacher's or school's published calendar.

A calendar app cannot send an ``Authorization`` header, so the token of a subscription sits
in its URL, where history, bookmarks and proxy logs keep it. A coordinator's own token
there would be a coordinator's rights for a day; a calendar link's token instead reads the
one calendar it names, for a term (``signaling.tokens.CALENDAR_LINK_TTL_SECONDS``), and
is refused on every other route and in every room (``TokenService.verify``).
"""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contracts.rooms import Role
from scheduler.district_api import PREFIX
from signaling.audit import audit
from signaling.http_auth import TOKENS_KEY, authorize, read_json_model
from signaling.openapi import documented
from signaling.ratelimit import RATE_LIMITS_KEY

CalendarKind = Literal["classroom", "teacher", "school"]


def schedule_calendar(kind: str, key: str) -> str:
    """The name a calendar link's token carries for one published calendar."""
    return f"schedule:{kind}/{key}"


class CalendarLinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: CalendarKind
    key: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


class CalendarLink(BaseModel):
    url: str
    expires: int


@documented(
    summary="A subscription link to a published calendar: its token reads only that calendar",
    body=CalendarLinkRequest,
    reply=CalendarLink,
    status=201,
    tag="schedule",
)
async def create_calendar_link(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    limits = request.app.get(RATE_LIMITS_KEY)  # absent in a bare scheduler app (tests)
    if limits is not None:
        await limits.mint.take(claims.sub)
    body = await read_json_model(request, CalendarLinkRequest)
    token, expires = request.app[TOKENS_KEY].mint_calendar_link(
        subject=claims.sub,
        role=Role.coordinator,
        calendar=schedule_calendar(body.kind, body.key),
        school_id=claims.school_id,
    )
    await audit(request, claims, "calendar_link.minted", f"{body.kind}/{body.key}")
    url = f"{PREFIX}/timetables/published/ics/{body.kind}/{body.key}.ics?token={token}"
    return web.json_response(CalendarLink(url=url, expires=expires).model_dump(), status=201)


def setup_calendar_link_routes(app: web.Application) -> None:
    app.router.add_post(f"{PREFIX}/calendar-links", create_calendar_link)
