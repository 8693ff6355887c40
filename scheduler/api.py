"""HTTP API for district coordinators under /api/v1/schedule (coordinator or admin token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from scheduler import csvio, ical
from scheduler.district_edits import Change, EditPair, ImportCsv, Rejected, ReplaceDistrict, apply
from scheduler.domain import District, check_references
from scheduler.jobs import JobRequest, JobRunner, StoredTimetable, TimetableRepo
from scheduler.offload import OFFLOAD_BYTES, Offloader
from scheduler.timetable import Assignment, Timetable, Unmet
from signaling.bodies import read_body
from signaling.errors import ErrorCode, SankeError
from signaling.http_auth import ValidationFailed, authorize, read_json_model
from signaling.models import Role
from signaling.nodes import NodeDirectory
from signaling.store.base import Store

RUNNER_KEY: web.AppKey[JobRunner] = web.AppKey("schedule_jobs", JobRunner)
# Run after a timetable is published (the lessons component materializes sessions).
PublishHook = Callable[[District, Timetable], Awaitable[BaseModel]]
PUBLISH_HOOKS_KEY: web.AppKey[list[PublishHook]] = web.AppKey("publish_hooks", list)
# Asked before publishing: a reason the coordinator must confirm first (None: go ahead).
PublishCheck = Callable[[District, Timetable], Awaitable[str | None]]
PUBLISH_CHECKS_KEY: web.AppKey[list[PublishCheck]] = web.AppKey("publish_checks", list)
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


class PairBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_id: str
    offering_id: str


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


async def status(request: web.Request) -> web.Response:
    """What the coordinator has: a district, timetable versions, the published one."""
    _auth(request)
    repo = _runner(request).repo
    district = await repo.district()
    return _json(
        ScheduleStatus(
            has_district=district is not None,
            district_id=district.id if district else None,
            versions=len(await repo.versions()),
            published=await repo.published_version(),
        )
    )


async def _edit(request: web.Request, change: Change) -> web.Response:
    """Apply ``change`` to the stored district (off the loop when large), then store it."""
    repo = _runner(request).repo
    stored = None
    if not isinstance(change, ReplaceDistrict):
        stored = await repo.district_json()
        if stored is None:
            raise SankeError(ErrorCode.not_found, "no district uploaded yet", 404)
    size = change.size + len(stored or "")
    result = await request.app[OFFLOADER_KEY].run(size, apply, stored, change)
    if isinstance(result, Rejected):
        if result.status == 422:
            raise ValidationFailed(result.details)
        raise SankeError(ErrorCode.invalid_request, result.message, result.status)
    if stored is not None and await repo.district_json() != stored:
        raise SankeError(
            ErrorCode.conflict, "the district changed while this change was checked: retry", 409
        )
    await repo.put_district_json(result.document)
    return web.json_response(result.reply)


async def put_district(request: web.Request) -> web.Response:
    _auth(request)
    return await _edit(request, ReplaceDistrict(await read_body(request, DISTRICT_MAX_BYTES)))


async def get_district(request: web.Request) -> web.Response:
    _auth(request)
    raw = await _runner(request).repo.district_json()  # stored validated: no need to parse
    if raw is None:
        raise SankeError(ErrorCode.not_found, "no district uploaded yet", 404)
    return web.Response(text=raw, content_type="application/json")


def _kind(request: web.Request) -> Literal["bells", "offerings", "demands"]:
    kind = request.match_info["kind"]
    for known in ("bells", "offerings", "demands"):
        if kind == known:
            return known
    raise SankeError(ErrorCode.not_found, f"unknown CSV {kind!r} (bells, offerings, demands)", 404)


async def put_csv(request: web.Request) -> web.Response:
    _auth(request)
    kind = _kind(request)
    return await _edit(request, ImportCsv(kind, await read_body(request, CSV_MAX_BYTES)))


async def get_csv(request: web.Request) -> web.Response:
    _auth(request)
    kind = _kind(request)
    district = await _district(request)
    text = {
        "bells": lambda: csvio.export_bells(district.schools),
        "offerings": lambda: csvio.export_offerings(district.offerings),
        "demands": lambda: csvio.export_demands(district.demands),
    }[kind]()
    return web.Response(text=text, content_type="text/csv", charset="utf-8")


async def start_job(request: web.Request) -> web.Response:
    _auth(request)
    body = await read_json_model(request, JobRequest)
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


async def get_job(request: web.Request) -> web.Response:
    _auth(request)
    job = _runner(request).jobs.get(request.match_info["job"])
    if job is None:
        raise SankeError(ErrorCode.not_found, "no such job", 404)
    return _json(job.status)


async def cancel_job(request: web.Request) -> web.Response:
    _auth(request)
    job = _runner(request).jobs.get(request.match_info["job"])
    if job is None:
        raise SankeError(ErrorCode.not_found, "no such job", 404)
    job.cancel.set()
    if job.task is not None:
        await job.task
    return _json(job.status)


async def list_versions(request: web.Request) -> web.Response:
    _auth(request)
    versions = await _runner(request).repo.versions()
    return web.json_response([v.model_dump(mode="json") for v in versions])


async def get_timetable(request: web.Request) -> web.Response:
    _auth(request)
    return _json((await _timetable(request)).timetable)


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


async def publish(request: web.Request) -> web.Response:
    """Publish a timetable version: lessons are created from the published one."""
    _auth(request)
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
    reports = [await hook(district, tt) for hook in request.app.get(PUBLISH_HOOKS_KEY, [])]
    return web.json_response(
        {"published": tt.version, "effects": [r.model_dump(mode="json") for r in reports]}
    )


async def ics(request: web.Request) -> web.Response:
    _auth(request)
    tt = (await _timetable(request)).timetable
    district = await _district(request)
    kind, key = request.match_info["kind"], request.match_info["key"].removesuffix(".ics")
    if kind == "classroom":
        data = ical.class_calendar(district, tt, key)
    elif kind == "teacher":
        data = ical.teacher_calendar(district, tt, key)
    elif kind == "school":
        data = ical.school_calendar(district, tt, key)
    else:
        raise SankeError(ErrorCode.not_found, "calendar kind is classroom, teacher or school", 404)
    return web.Response(body=data, content_type="text/calendar", charset="utf-8")


def _pair_route(field: Literal["pins", "bans"], add: bool) -> Handler:
    async def handler(request: web.Request) -> web.Response:
        _auth(request)
        body = await read_json_model(request, PairBody)
        return await _edit(request, EditPair(field, add, body.class_id, body.offering_id))

    return handler


def setup_scheduler_routes(
    app: web.Application, store: Store, *, workers: int = 2, offload_bytes: int = OFFLOAD_BYTES
) -> None:
    """Add /api/v1/schedule routes; ``workers`` spawned processes solve the MIP parts, and
    district edits over ``offload_bytes`` are parsed in a child process."""
    runner = JobRunner(TimetableRepo(store), workers)
    app[RUNNER_KEY] = runner
    app[OFFLOADER_KEY] = Offloader(offload_bytes)
    app[PUBLISH_HOOKS_KEY] = []
    app[PUBLISH_CHECKS_KEY] = []

    async def _close(_: web.Application) -> None:
        await runner.close()

    app.on_cleanup.append(_close)
    r = app.router
    r.add_get(f"{PREFIX}/status", status)
    r.add_put(f"{PREFIX}/district", put_district)
    r.add_get(f"{PREFIX}/district", get_district)
    r.add_put(f"{PREFIX}/district/csv/{{kind}}", put_csv)
    r.add_get(f"{PREFIX}/district/csv/{{kind}}", get_csv)
    r.add_post(f"{PREFIX}/pins", _pair_route("pins", True))
    r.add_delete(f"{PREFIX}/pins", _pair_route("pins", False))
    r.add_post(f"{PREFIX}/bans", _pair_route("bans", True))
    r.add_delete(f"{PREFIX}/bans", _pair_route("bans", False))
    r.add_post(f"{PREFIX}/jobs", start_job)
    r.add_get(f"{PREFIX}/jobs/{{job}}", get_job)
    r.add_delete(f"{PREFIX}/jobs/{{job}}", cancel_job)
    r.add_get(f"{PREFIX}/timetables", list_versions)
    r.add_get(f"{PREFIX}/timetables/{{version}}", get_timetable)
    r.add_get(f"{PREFIX}/timetables/{{version}}/explain", explain)
    r.add_post(f"{PREFIX}/timetables/{{version}}/publish", publish)
    r.add_get(f"{PREFIX}/timetables/{{version}}/ics/{{kind}}/{{key}}", ics)
