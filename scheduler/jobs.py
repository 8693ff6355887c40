"""Solve jobs: solving runs off the event loop, each result a new version in the repository.

A job runs ``solve`` in a thread; the MIP parts run in spawned worker processes
(``workers`` > 0), so the event loop never waits on the solver. A job can be cancelled: the
cancel flag is checked between parts and the worker pool is terminated.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import ErrorCode, SankeError
from scheduler.domain import District
from scheduler.metrics import observe_solve
from scheduler.repository import TimetableRepository
from scheduler.solver.parts import SolveCancelled
from scheduler.solver.solve import SolveOptions, solve
from scheduler.timetable import Progress, Timetable


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


class Job:
    def __init__(self, job_id: str) -> None:
        self.id = job_id
        self.cancel = threading.Event()
        self.status = JobStatus(id=job_id, state="running", progress=Progress(phase="queued"))
        self.task: asyncio.Task[None] | None = None

    def on_progress(self, progress: Progress) -> None:
        self.status = self.status.model_copy(update={"progress": progress})


class JobRunner:
    def __init__(self, repo: TimetableRepository, workers: int) -> None:
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
