"""Solve jobs and timetable versions: solving runs off the event loop, results in the store.

A job runs ``solve`` in a thread; the MIP parts run in spawned worker processes
(``workers`` > 0), so the event loop never waits on the solver. A job can be cancelled: the
cancel flag is checked between parts and the worker pool is terminated.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import ErrorCode, SankeError
from contracts.store.base import Store
from scheduler.domain import District
from scheduler.metrics import observe_solve
from scheduler.parts import SolveCancelled
from scheduler.solve import SolveOptions, solve
from scheduler.timetable import Progress, Timetable

DISTRICT_KEY = "kv:schedule:district"
DISTRICT_ID_KEY = "kv:schedule:district_id"
TIMETABLES = "h:schedule:timetables"
PUBLISHED_KEY = "kv:schedule:published"
PUBLISH_LOG = "l:schedule:publish_log"


class JobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    time_limit: float = Field(default=30.0, gt=0, le=600)
    resolve: bool = False  # warm start from the published timetable, keep its pairs


class JobStatus(BaseModel):
    id: str
    state: Literal["running", "done", "failed", "cancelled"]
    progress: Progress
    version: int | None = None
    error: str | None = None


class VersionInfo(BaseModel):
    version: int
    created: datetime
    served: int
    demanded: int
    gap_pct: float
    published: bool


class StoredTimetable(BaseModel):
    created: datetime
    timetable: Timetable


class TimetableRepo:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def district(self) -> District | None:
        raw = await self.store.get(DISTRICT_KEY)
        return District.model_validate_json(raw) if raw else None

    async def put_district(self, district: District) -> None:
        await self.put_district_json(district.model_dump_json(), district.id)

    async def district_json(self) -> str | None:
        """The stored district document (validated when it was stored)."""
        return await self.store.get(DISTRICT_KEY)

    async def district_id(self) -> str | None:
        known = await self.store.get(DISTRICT_ID_KEY)
        if known is None and (district := await self.district()) is not None:
            known = district.id  # stored before the id was kept on its own
            await self.store.set(DISTRICT_ID_KEY, known)
        return known

    async def put_district_json(self, document: str, district_id: str) -> None:
        """Store a district document that ``district_edits.apply`` produced (validated)."""
        await self.store.set(DISTRICT_KEY, document)
        await self.store.set(DISTRICT_ID_KEY, district_id)

    async def add(self, timetable: Timetable) -> int:
        existing = await self.store.hgetall(TIMETABLES)
        version = max((int(v) for v in existing), default=0) + 1
        stored = StoredTimetable(
            created=datetime.now(UTC), timetable=timetable.model_copy(update={"version": version})
        )
        await self.store.hset(TIMETABLES, str(version), stored.model_dump_json())
        return version

    async def get(self, version: int) -> StoredTimetable | None:
        raw = await self.store.hget(TIMETABLES, str(version))
        return StoredTimetable.model_validate_json(raw) if raw else None

    async def published_version(self) -> int | None:
        raw = await self.store.get(PUBLISHED_KEY)
        return int(raw) if raw else None

    async def publish(self, version: int) -> None:
        await self.store.set(PUBLISHED_KEY, str(version))
        await self.store.append(
            PUBLISH_LOG, f'{{"version": {version}, "at": "{datetime.now(UTC).isoformat()}"}}'
        )

    async def versions(self) -> list[VersionInfo]:
        published = await self.published_version()
        out = []
        for key, raw in (await self.store.hgetall(TIMETABLES)).items():
            st = StoredTimetable.model_validate_json(raw)
            s = st.timetable.stats
            out.append(
                VersionInfo(
                    version=int(key), created=st.created, served=s.served, demanded=s.demanded,
                    gap_pct=s.gap_pct, published=int(key) == published,
                )
            )  # fmt: skip
        return sorted(out, key=lambda v: v.version)


class Job:
    def __init__(self, job_id: str) -> None:
        self.id = job_id
        self.cancel = threading.Event()
        self.status = JobStatus(id=job_id, state="running", progress=Progress(phase="queued"))
        self.task: asyncio.Task[None] | None = None

    def on_progress(self, progress: Progress) -> None:
        self.status = self.status.model_copy(update={"progress": progress})


class JobRunner:
    def __init__(self, repo: TimetableRepo, workers: int) -> None:
        self.repo = repo
        self.workers = workers
        self.jobs: dict[str, Job] = {}

    def running(self) -> Job | None:
        return next((j for j in self.jobs.values() if j.status.state == "running"), None)

    def refuse_if_running(self) -> None:
        """One solve at a time: each takes the solver's worker processes and minutes of CPU."""
        if (job := self.running()) is not None:
            raise SankeError(
                ErrorCode.conflict,
                f"solve job {job.id} is still running: wait for it or cancel it first",
                409,
            )

    async def start(
        self, district: District, request: JobRequest, previous: Timetable | None
    ) -> Job:
        self.refuse_if_running()  # no await since the caller's check: still true
        job = Job(uuid.uuid4().hex[:12])
        self.jobs[job.id] = job
        options = SolveOptions(time_limit=request.time_limit, workers=self.workers)
        job.task = asyncio.create_task(self._run(job, district, options, previous))
        return job

    async def _run(
        self, job: Job, district: District, options: SolveOptions, previous: Timetable | None
    ) -> None:
        try:
            timetable = await asyncio.to_thread(
                solve,
                district,
                options,
                previous=previous,
                progress=job.on_progress,
                cancel=job.cancel,
            )
            version = await self.repo.add(timetable)
            observe_solve(timetable)
            job.status = job.status.model_copy(update={"state": "done", "version": version})
        except SolveCancelled:
            job.status = job.status.model_copy(
                update={"state": "cancelled", "progress": Progress(phase="cancelled")}
            )
        except Exception as exc:  # a failed solve is reported on the job, never kills the app
            job.status = job.status.model_copy(
                update={"state": "failed", "error": str(exc), "progress": Progress(phase="failed")}
            )

    async def close(self) -> None:
        for job in self.jobs.values():
            job.cancel.set()
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
