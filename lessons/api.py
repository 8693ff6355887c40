"""HTTP API of lessons: sessions, cancel/move, session tokens, statistics, records."""

from __future__ import annotations

import calendar
from datetime import date, datetime, timedelta

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from lessons.audit_api import setup_audit_routes
from lessons.context import LESSONS_KEY, LessonsContext, lessons_context
from lessons.device_api import setup_device_routes
from lessons.models import LessonSession, SessionState
from lessons.records import ClassroomAttendance, RecordsHead, VerifyReport
from lessons.sessions import SHANGHAI, local_date, week_start
from lessons.stats import StatsReport, compute, to_csv
from signaling.audit import audit
from signaling.http_auth import TOKENS_KEY, authorize, read_json_model
from signaling.openapi import documented
from signaling.ratelimit import RATE_LIMITS_KEY


class SessionList(BaseModel):
    sessions: list[LessonSession]


class SessionDetail(BaseModel):
    session: LessonSession
    attendance: list[ClassroomAttendance]
    late_minutes: float | None
    # seconds of the lesson its hardware teacher source (camera, encoder) had no picture:
    # the classrooms saw "主讲画面重连中" meanwhile
    teacher_source_outage_seconds: float = 0.0


class CancelRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200)


class MoveRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    starts_at: datetime = Field(description="new start; a naive time is Asia/Shanghai")
    reason: str = Field(min_length=1, max_length=200)


class SessionTokens(BaseModel):
    session_id: str
    not_before: float
    expires: float
    teacher: str
    observer: str
    classrooms: dict[str, str]


@documented(
    summary="List lesson sessions (filters: from, to, school, class_id, state)",
    reply=SessionList,
    query={
        "from": "first day (YYYY-MM-DD)",
        "to": "last day (YYYY-MM-DD)",
        "school": "a school id (master or remote)",
        "class_id": "a remote class",
        "state": "scheduled, live, ended, missed or cancelled",
    },
    tag="lessons",
)
async def list_sessions(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    q = request.query
    start, end = _date_param(q.get("from")), _date_param(q.get("to"))
    sessions = []
    for s in await lessons_context(request).lessons.sessions.all():
        day = date.fromisoformat(s.date) if s.date else local_date(s.starts_at)
        if (start and day < start) or (end and day > end):
            continue
        if q.get("school") and q["school"] not in {s.master_school, *(r.school for r in s.remotes)}:
            continue
        if q.get("class_id") and q["class_id"] not in {r.class_id for r in s.remotes}:
            continue
        if q.get("state") and s.state.value != q["state"]:
            continue
        sessions.append(s)
    sessions.sort(key=lambda s: (s.starts_at, s.id))
    return web.json_response(SessionList(sessions=sessions).model_dump(mode="json"))


@documented(summary="One session with its attendance", reply=SessionDetail, tag="lessons")
async def get_session(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    lessons = lessons_context(request).lessons
    session = await lessons.get(request.match_info["session_id"])
    detail = SessionDetail(
        session=session,
        attendance=await lessons.attendance(session),
        teacher_source_outage_seconds=await lessons.source_outage(session),
        late_minutes=(
            round(max(0.0, session.teacher_joined_at - session.starts_at) / 60, 2)
            if session.teacher_joined_at is not None
            else None
        ),
    )
    return web.json_response(detail.model_dump(mode="json"))


@documented(
    summary="Cancel a lesson; its remote classrooms are told",
    body=CancelRequest,
    reply=LessonSession,
    tag="lessons",
)
async def cancel_session(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    body = await read_json_model(request, CancelRequest)
    session = await lessons_context(request).lessons.cancel(
        request.match_info["session_id"], body.reason
    )
    await audit(
        request,
        claims,
        "session.cancelled",
        session.id,
        school=session.master_school,
        reason=body.reason,
    )
    return web.json_response(session.model_dump(mode="json"))


@documented(
    summary="Move a lesson once (make-up lesson); returns the new session",
    body=MoveRequest,
    reply=LessonSession,
    status=201,
    tag="lessons",
)
async def move_session(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    body = await read_json_model(request, MoveRequest)
    starts = body.starts_at if body.starts_at.tzinfo else body.starts_at.replace(tzinfo=SHANGHAI)
    session_id = request.match_info["session_id"]
    makeup = await lessons_context(request).lessons.move(
        session_id, starts.timestamp(), body.reason
    )
    await audit(
        request,
        claims,
        "session.moved",
        session_id,
        school=makeup.master_school,
        moved_to=makeup.id,
        starts_at=makeup.starts_at,
        reason=body.reason,
    )
    return web.json_response(makeup.model_dump(mode="json"), status=201)


@documented(
    summary="Join tokens for a session (teacher, observer, each remote classroom)",
    reply=SessionTokens,
    status=201,
    tag="lessons",
)
async def session_tokens(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    await request.app[RATE_LIMITS_KEY].mint.take(claims.sub)
    session = await lessons_context(request).lessons.get(request.match_info["session_id"])
    _require_joinable(session)
    tokens = request.app[TOKENS_KEY]

    def mint(
        subject: str,
        role: Role,
        name: str,
        school_id: str | None = None,
        classroom_id: str | None = None,
    ) -> str:
        return tokens.mint(
            subject=subject,
            role=role,
            room=session.room_id,
            name=name,
            school_id=school_id,
            classroom_id=classroom_id,
            not_before=session.opens_at,
            expires=session.closes_at,
        )

    reply = SessionTokens(
        session_id=session.id,
        not_before=session.opens_at,
        expires=session.closes_at,
        teacher=mint(
            f"teacher:{session.teacher}",
            Role.teacher,
            name=session.teacher,
            school_id=session.master_school,
            classroom_id=session.master_classroom,
        ),
        observer=mint(f"observer:{session.id}", Role.observer, name="巡课"),
        classrooms={
            r.class_id: mint(
                f"class:{r.class_id}",
                Role.classroom,
                classroom_id=r.class_id,
                school_id=r.school,
                name=r.class_id,
            )
            for r in session.remotes
        },
    )
    await audit(
        request,
        claims,
        "session.tokens_minted",
        session.id,
        school=session.master_school,
        classrooms=len(reply.classrooms),
    )
    return web.json_response(reply.model_dump(), status=201)


def _require_joinable(session: LessonSession) -> None:
    if session.state is SessionState.cancelled:
        raise SankeError(ErrorCode.room_closed, "this lesson was cancelled", 409)
    if session.recorded:
        raise SankeError(ErrorCode.room_closed, "this lesson is over", 409)


@documented(
    summary="开课率 and attendance statistics (JSON or CSV)",
    reply=StatsReport,
    query={
        "period": "week, month or term",
        "date": "a day of the week or month (YYYY-MM-DD)",
        "from": "first day (YYYY-MM-DD)",
        "to": "last day (YYYY-MM-DD)",
        "group_by": "school, county, city, province or none",
        "school": "one school",
        "region": "a region prefix (province/city/county codes)",
        "format": "csv for a CSV file",
    },
    tag="lessons",
)
async def statistics(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    q = request.query
    lessons = lessons_context(request).lessons
    start, end = _period(q.get("period", "term"), q.get("date"), q.get("from"), q.get("to"))
    places = await lessons.school_places()
    group_by = q.get("group_by", "school")
    if group_by not in ("school", "county", "city", "province", "none"):
        raise SankeError(
            ErrorCode.invalid_request, "group_by is school, county, city, province or none", 422
        )
    depth = {"province": 1, "city": 2, "county": 3}.get(group_by)
    groups: dict[str, str] | None = None
    if group_by != "none":
        groups = {
            sid: sid if depth is None else "/".join(p.region.split("/")[:depth])
            for sid, p in places.items()
        }
    if q.get("school"):
        wanted = {q["school"]}
    elif q.get("region"):
        wanted = {
            sid
            for sid, p in places.items()
            if (p.region + "/").startswith(q["region"].rstrip("/") + "/")
        }
    else:
        wanted = set(places)
    sessions = [
        s
        for s in await lessons.sessions.all()
        if {s.master_school, *(r.school for r in s.remotes)} & wanted or not places
    ]
    if groups is not None:
        groups = {sid: g for sid, g in groups.items() if sid in wanted}
    attendance = {
        s.id: await lessons.attendance(s)
        for s in sessions
        if s.state in (SessionState.ended, SessionState.live)
    }
    by_id = {s.id: s for s in sessions}
    outages = {sid: await lessons.source_outage(by_id[sid]) for sid in attendance}
    report = compute(sessions, attendance, start, end, groups, lessons.clock(), outages)
    if q.get("format") == "csv":
        return web.Response(
            text=to_csv(report),
            content_type="text/csv",
            charset="utf-8",
            headers={"Content-Disposition": f'attachment; filename="kaikelv-{start}-{end}.csv"'},
        )
    return web.json_response(report.model_dump(mode="json"))


@documented(summary="The teaching records log (JSON lines)", tag="records")
async def export_records(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    lines = await lessons_context(request).records.raw()
    return web.Response(
        text="".join(line + "\n" for line in lines), content_type="application/x-ndjson"
    )


@documented(
    summary="The records' signed head (count, newest hash): keep copies apart from the store "
    "as anchors for `sanke records verify --anchor`",
    reply=RecordsHead,
    tag="records",
)
async def records_head(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    head = await lessons_context(request).records.head()
    if head is None:
        raise SankeError(ErrorCode.not_found, "no records yet", 404)
    return web.json_response(head.model_dump())


@documented(
    summary="Verify the teaching records chain and its signed head",
    reply=VerifyReport,
    tag="records",
)
async def verify_records(request: web.Request) -> web.Response:
    authorize(request, Role.coordinator)
    report = await lessons_context(request).records.verify()
    return web.json_response(report.model_dump())


def _date_param(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise SankeError(
            ErrorCode.invalid_request, f"not a date (YYYY-MM-DD): {value!r}", 422
        ) from None


def _period(kind: str, anchor: str | None, start: str | None, end: str | None) -> tuple[date, date]:
    if start or end:
        s, e = _date_param(start) or date.min, _date_param(end) or date.max
        return s, e
    day = _date_param(anchor) or datetime.now(SHANGHAI).date()
    if kind == "week":
        monday = week_start(day)
        return monday, monday + timedelta(days=6)
    if kind == "month":
        return day.replace(day=1), day.replace(day=calendar.monthrange(day.year, day.month)[1])
    if kind == "term":
        return date.min, date.max
    raise SankeError(
        ErrorCode.invalid_request, "period is week, month or term (or give from/to)", 422
    )


def setup_lesson_routes(app: web.Application, context: LessonsContext) -> None:
    app[LESSONS_KEY] = context
    r = app.router
    r.add_get("/api/v1/lessons", list_sessions)
    r.add_get("/api/v1/lessons/stats", statistics)
    r.add_get("/api/v1/lessons/{session_id}", get_session)
    r.add_post("/api/v1/lessons/{session_id}/cancel", cancel_session)
    r.add_post("/api/v1/lessons/{session_id}/move", move_session)
    r.add_post("/api/v1/lessons/{session_id}/tokens", session_tokens)
    setup_device_routes(app)
    setup_audit_routes(app)
    r.add_get("/api/v1/records", export_records)
    r.add_get("/api/v1/records/verify", verify_records)
    r.add_get("/api/v1/records/head", records_head)
