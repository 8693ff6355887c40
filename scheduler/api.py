"""HTTP API for district coordinators under /api/v1/schedule (coordinator or admin token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.errors import ErrorCode, SankeError
from contracts.nodes import NodeDirectory
from contracts.rooms import Role
from contracts.store.base import Store
from scheduler.calendar_links import schedule_calendar, setup_calendar_link_routes
from scheduler.district_api import PREFIX, setup_district_routes
from scheduler.district_checks import check_references
from scheduler.domain import District
from scheduler.io import ical
from scheduler.jobs import JobRequest, JobRunner, JobStatus
from scheduler.offload import OFFLOAD_BYTES
from scheduler.repository import StoredTimetable, TimetableRepository
from scheduler.timetable import Assignment, Timetable, Unmet
from signaling.audit import audit
from signaling.http_auth import ValidationFailed, authorize, read_json_model
from signaling.openapi import documented

RUNNER_KEY: web.AppKey[JobRunner] = web.AppKey("schedule_jobs", JobRunner)
# Run after a timetable is published (the lessons component materializes sessions).
PublishHook = Callable[[District, Timetable], Awaitable[BaseModel]]
PUBLISH_HOOKS_KEY: web.AppKey[list[PublishHook]] = web.AppKey("publish_hooks", list)
# Asked before publishing: a reason the coordinator must confirm first (None: go ahead).
PublishCheck = Callable[[District, Timetable], Awaitable[str | None]]
PUBLISH_CHECKS_KEY: web.AppKey[list[PublishCheck]] = web.AppKey("publish_checks", list)


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: bool = Field(
        default=False,
        description="publish even a timetable that serves no demand or removes every future "
        "lesson (refused with 409 otherwise)",
    )


class Explanation(BaseModel):
    class_id: str
    version: int
    assignments: list[Assignment]
    unmet: list[Unmet]


def _auth(request: web.Request) -> None:
    authorize(request, Role.coordinator, Role.admin)


def _runner(request: web.Request) -> JobRunner:
    return request.app[RUNNER_KEY]


def _json(model: BaseModel, status: int = 200) -> web.Response:
    return web.Response(
        text=model.model_dump_json(), status=status, content_type="application/json"
    )


def _validated(district: District) -> District:
    try:
        check_references(district)
    except ValidationError as exc:
        raise ValidationFailed(exc) from None
    return district


async def _district(request: web.Request) -> District:
    district = await _runner(request).repo.district()
    if district is None:
        raise SankeError(ErrorCode.not_found, "no district uploaded yet", 404)
    return district


async def _timetable(request: web.Request) -> StoredTimetable:
    repo = _runner(request).repo
    key = request.match_info["version"]
    if key == "published":
        version = await repo.published_version()
        if version is None:
            raise SankeError(ErrorCode.not_found, "nothing published yet", 404)
    elif key.isdigit():
        version = int(key)
    else:
        raise SankeError(ErrorCode.invalid_request, "version must be a number or 'published'", 400)
    stored = await repo.get(version)
    if stored is None:
        raise SankeError(ErrorCode.not_found, f"no timetable version {version}", 404)
    return stored


class ScheduleStatus(BaseModel):
    has_district: bool
    district_id: str | None
    versions: int
    published: int | None


@documented(
    summary="What the coordinator has: district, versions, the published one",
    reply=ScheduleStatus,
    tag="schedule",
)
async def status(request: web.Request) -> web.Response:
    """What the coordinator has: a district, timetable versions, the published one."""
    _auth(request)
    repo = _runner(request).repo
    district_id = await repo.district_id()  # not the whole district: a province's is 18 MB
    return _json(
        ScheduleStatus(
            has_district=district_id is not None,
            district_id=district_id,
            versions=len(await repo.versions()),
            published=await repo.published_version(),
        )
    )


@documented(
    summary="Start a solve job", body=JobRequest, reply=JobStatus, status=202, tag="schedule"
)
async def start_job(request: web.Request) -> web.Response:
    _auth(request)
    body = await read_json_model(request, JobRequest)
    await _runner(request).refuse_if_running()
    district = _validated(await _district(request))
    if not district.policy.sfu_capacity:
        # The SFU nodes' own capacities, when the district does not set its own.
        nodes = await NodeDirectory(_runner(request).repo.store).capacity_by_region()
        if nodes:
            policy = district.policy.model_copy(update={"sfu_capacity": nodes})
            district = district.model_copy(update={"policy": policy})
    previous = None
    if body.resolve:
        repo = _runner(request).repo
        version = await repo.published_version()
        stored = await repo.get(version) if version is not None else None
        if stored is None:
            raise SankeError(ErrorCode.conflict, "re-solve needs a published timetable", 409)
        previous = stored.timetable
    job = await _runner(request).start(district, body, previous)
    return _json(job.status, 202)


@documented(summary="A solve job's progress", reply=JobStatus, tag="schedule")
async def get_job(request: web.Request) -> web.Response:
    """Any replica answers: the job lives in the store."""
    _auth(request)
    status = await _runner(request).status(request.match_info["job"])
    if status is None:
        raise SankeError(ErrorCode.not_found, "no such job", 404)
    return _json(status)


@documented(summary="Cancel a solve job", reply=JobStatus, tag="schedule")
async def cancel_job(request: web.Request) -> web.Response:
    """Any replica answers: the replica running the job sees the cancel on its heartbeat."""
    _auth(request)
    status = await _runner(request).cancel(request.match_info["job"])
    if status is None:
        raise SankeError(ErrorCode.not_found, "no such job", 404)
    return _json(status)


@documented(summary="Timetable versions", tag="schedule")
async def list_versions(request: web.Request) -> web.Response:
    _auth(request)
    versions = await _runner(request).repo.versions()
    return web.json_response([v.model_dump(mode="json") for v in versions])


@documented(
    summary="A timetable version (a number or 'published')", reply=Timetable, tag="schedule"
)
async def get_timetable(request: web.Request) -> web.Response:
    _auth(request)
    return _json((await _timetable(request)).timetable)


@documented(
    summary="Why a class got what it got",
    reply=Explanation,
    query={"class": "class id (required)"},
    tag="schedule",
)
async def explain(request: web.Request) -> web.Response:
    _auth(request)
    class_id = request.query.get("class")
    if not class_id:
        raise SankeError(ErrorCode.invalid_request, "query parameter 'class' is required", 400)
    tt = (await _timetable(request)).timetable
    assignments, unmet = tt.for_class(class_id)
    if not assignments and not unmet:
        raise SankeError(
            ErrorCode.not_found, f"class {class_id!r} has no demand in this timetable", 404
        )
    return _json(
        Explanation(
            class_id=class_id, version=tt.version or 0, assignments=assignments, unmet=unmet
        )
    )


@documented(
    summary="Publish a timetable version: its lessons are created",
    body=PublishRequest,
    tag="schedule",
)
async def publish(request: web.Request) -> web.Response:
    """Publish a timetable version: lessons are created from the published one."""
    claims = authorize(request, Role.coordinator, Role.admin)
    body = await read_json_model(request, PublishRequest)
    tt = (await _timetable(request)).timetable
    assert tt.version is not None
    district = await _district(request)
    if not body.confirm:
        reasons = (
            []
            if tt.assignments or not tt.stats.demanded
            else [f"version {tt.version} serves none of the {tt.stats.demanded} periods demanded"]
        )
        for check in request.app.get(PUBLISH_CHECKS_KEY, []):
            if (reason := await check(district, tt)) is not None:
                reasons.append(reason)
        if reasons:
            raise SankeError(
                ErrorCode.conflict,
                "; ".join(reasons) + ": check the district (bells, seasons, term), or publish "
                'anyway with {"confirm": true}',
                409,
            )
    await _runner(request).repo.publish(tt.version)
    await audit(
        request,
        claims,
        "timetable.published",
        str(tt.version),
        district=district.id,
        confirmed=body.confirm,
    )
    reports = [await hook(district, tt) for hook in request.app.get(PUBLISH_HOOKS_KEY, [])]
    return web.json_response(
        {"published": tt.version, "effects": [r.model_dump(mode="json") for r in reports]}
    )


@documented(summary="A class, teacher or school calendar (.ics)", tag="schedule")
async def ics(request: web.Request) -> web.Response:
    kind, key = request.match_info["kind"], request.match_info["key"].removesuffix(".ics")
    # A calendar subscription cannot send a header: a calendar link's token is in its URL.
    authorize(request, Role.coordinator, Role.admin, calendar=schedule_calendar(kind, key))
    tt = (await _timetable(request)).timetable
    district = await _district(request)
    if kind == "classroom":
        data = ical.class_calendar(district, tt, key)
    elif kind == "teacher":
        data = ical.teacher_calendar(district, tt, key)
    elif kind == "school":
        data = ical.school_calendar(district, tt, key)
    else:
        raise SankeError(ErrorCode.not_found, "calendar kind is classroom, teacher or school", 404)
    return web.Response(body=data, content_type="text/calendar", charset="utf-8")


class JobSettings(BaseModel):
    """How solve jobs are kept in the store (``scheduler/jobs.py``)."""

    model_config = ConfigDict(extra="forbid")

    node_id: str = "local"
    lease_seconds: float = Field(default=15.0, gt=0)
    retention_seconds: float = Field(default=7 * 86400.0, gt=0)
    keep_versions: int = Field(default=50, ge=1)


def setup_scheduler_routes(
    app: web.Application,
    store: Store,
    *,
    workers: int = 2,
    offload_bytes: int = OFFLOAD_BYTES,
    jobs: JobSettings | None = None,
) -> None:
    """Add /api/v1/schedule routes; ``workers`` spawned processes solve the MIP parts, and
    district edits over ``offload_bytes`` are parsed in a child process."""
    jobs = jobs or JobSettings()
    runner = JobRunner(
        TimetableRepository(store, jobs.keep_versions),
        workers,
        node_id=jobs.node_id,
        lease_seconds=jobs.lease_seconds,
        retention_seconds=jobs.retention_seconds,
    )
    app[RUNNER_KEY] = runner
    app[PUBLISH_HOOKS_KEY] = []
    app[PUBLISH_CHECKS_KEY] = []

    async def _start(_: web.Application) -> None:
        await runner.start_sweeping()

    async def _close(_: web.Application) -> None:
        await runner.close()

    app.on_startup.append(_start)
    app.on_cleanup.append(_close)
    r = app.router
    r.add_get(f"{PREFIX}/status", status)
    setup_district_routes(app, runner.repo, offload_bytes)
    r.add_post(f"{PREFIX}/jobs", start_job)
    r.add_get(f"{PREFIX}/jobs/{{job}}", get_job)
    r.add_delete(f"{PREFIX}/jobs/{{job}}", cancel_job)
    r.add_get(f"{PREFIX}/timetables", list_versions)
    r.add_get(f"{PREFIX}/timetables/{{version}}", get_timetable)
    r.add_get(f"{PREFIX}/timetables/{{version}}/explain", explain)
    r.add_post(f"{PREFIX}/timetables/{{version}}/publish", publish)
    r.add_get(f"{PREFIX}/timetables/{{version}}/ics/{{kind}}/{{key}}", ics)
    setup_calendar_link_routes(app)
