"""HTTP API for district coordinators under /api/v1/schedule (coordinator or admin token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

from scheduler import csvio, ical
from scheduler.domain import Ban, District, Pin, check_references
from scheduler.jobs import JobRequest, JobRunner, StoredTimetable, TimetableRepo
from scheduler.timetable import Assignment, Timetable, Unmet
from signaling.audit import audit
from signaling.errors import ErrorCode, SankeError
from signaling.http_auth import ValidationFailed, authorize, read_json_model
from signaling.models import Role
from signaling.nodes import NodeDirectory
from signaling.store.base import Store

RUNNER_KEY: web.AppKey[JobRunner] = web.AppKey("schedule_jobs", JobRunner)
# Run after a timetable is published (the lessons component materializes sessions).
PublishHook = Callable[[District, Timetable], Awaitable[BaseModel]]
PUBLISH_HOOKS_KEY: web.AppKey[list[PublishHook]] = web.AppKey("publish_hooks", list)
PREFIX = "/api/v1/schedule"
Handler = Callable[[web.Request], Awaitable[web.Response]]
MAX_BODY = 32 << 20  # a province district is a few MB of JSON


class PairBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    class_id: str
    offering_id: str


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


async def put_district(request: web.Request) -> web.Response:
    _auth(request)
    district = _validated(await read_json_model(request, District, MAX_BODY))
    await _runner(request).repo.put_district(district)
    return web.json_response(
        {"id": district.id, "schools": len(district.schools), "offerings": len(district.offerings),
         "demands": len(district.demands)}
    )  # fmt: skip


async def get_district(request: web.Request) -> web.Response:
    _auth(request)
    return _json(await _district(request))


def _kind(request: web.Request) -> Literal["bells", "offerings", "demands"]:
    kind = request.match_info["kind"]
    for known in ("bells", "offerings", "demands"):
        if kind == known:
            return known
    raise SankeError(ErrorCode.not_found, f"unknown CSV {kind!r} (bells, offerings, demands)", 404)


async def put_csv(request: web.Request) -> web.Response:
    _auth(request)
    kind = _kind(request)
    district = await _district(request)
    raw = await request.content.read(MAX_BODY + 1)
    if len(raw) > MAX_BODY:
        raise SankeError(ErrorCode.invalid_request, "CSV too large", 413)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SankeError(ErrorCode.invalid_request, "CSV must be UTF-8", 400) from None
    try:
        if kind == "bells":
            district = district.model_copy(update={"schools": csvio.import_bells(text)})
        elif kind == "offerings":
            district = district.model_copy(update={"offerings": csvio.import_offerings(text)})
        else:
            district = district.model_copy(update={"demands": csvio.import_demands(text)})
    except ValidationError as exc:
        raise ValidationFailed(exc) from None
    await _runner(request).repo.put_district(_validated(district))
    return web.json_response({"kind": kind, "replaced": True})


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
    claims = authorize(request, Role.coordinator, Role.admin)
    tt = (await _timetable(request)).timetable
    assert tt.version is not None
    district = await _district(request)
    await _runner(request).repo.publish(tt.version)
    await audit(request, claims, "timetable.published", str(tt.version), district=district.id)
    reports = [await hook(district, tt) for hook in request.app.get(PUBLISH_HOOKS_KEY, [])]
    return web.json_response(
        {"published": tt.version, "effects": [r.model_dump(mode="json") for r in reports]}
    )


async def ics(request: web.Request) -> web.Response:
    # A calendar subscription cannot send a header: the token may come as ?token=.
    authorize(request, Role.coordinator, Role.admin, from_url=True)
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
        district = await _district(request)
        pairs = [
            p
            for p in getattr(district, field)
            if (p.class_id, p.offering_id) != (body.class_id, body.offering_id)
        ]
        if add:
            pairs.append(
                (Pin if field == "pins" else Ban)(
                    class_id=body.class_id, offering_id=body.offering_id
                )
            )
        district = _validated(district.model_copy(update={field: pairs}))
        await _runner(request).repo.put_district(district)
        return web.json_response({field: [p.model_dump() for p in pairs]})

    return handler


def setup_scheduler_routes(app: web.Application, store: Store, *, workers: int = 2) -> None:
    """Add /api/v1/schedule routes; ``workers`` spawned processes solve the MIP parts."""
    runner = JobRunner(TimetableRepo(store), workers)
    app[RUNNER_KEY] = runner
    app[PUBLISH_HOOKS_KEY] = []

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
