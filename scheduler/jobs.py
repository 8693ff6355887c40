"""Solve jobs in the store: any replica answers any poll and any cancel.

A job runs ``solve`` in a thread of the process that got the POST (its owner); the MIP parts
run in spawned worker processes, so the event loop never waits on the solver. Everything
else about the job lives in the store (keys in ``scheduler/repository.py``):

- its status (request, progress, owner, result version or error), written by the owner on
  every heartbeat while it runs and once when it ends, then kept for the retention;
- a **lease** the owner renews on every heartbeat: a replica that reads a running job whose
  lease is gone (its owner was killed, lost its node, hung) marks it ``failed`` with that
  reason, so no job stays ``running`` for ever; every replica also sweeps the running job;
- the district's **running** key, claimed with ``SET NX`` and renewed with the lease: one
  solve per district at a time, across replicas (a second POST gets 409 naming the job);
- a **cancel** flag any replica sets; the owner's heartbeat sees it and stops the solve.

When the time limit left unmet demands ``not_explained`` (a province: the largest parts solve
right up to the limit), the job is ``done`` with its version at the limit, and then works out
those reasons after the result (``explaining`` true, progress in phase ``explain``), replacing
them in the stored version; the district's running key is free meanwhile. Cancelling stops
that too, and an owner that dies leaves the rest ``not_explained`` (the status says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import ErrorCode, SankeError
from scheduler.domain import District
from scheduler.gc_pause import gc_paused
from scheduler.metrics import observe_solve
from scheduler.repository import (
    RUNNING_JOB_KEY,
    TimetableRepository,
    job_cancel_key,
    job_key,
    job_lease_key,
)
from scheduler.solver.parts import SolveCancelled
from scheduler.solver.solve import SolveOptions, solve_keeping_late
from scheduler.solver.unmet import UnmetExplainer
from scheduler.timetable import Progress, Timetable, Unmet

log = logging.getLogger(__name__)
KEEP_LOCAL = 20  # finished jobs a process still holds in memory


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
    # The replica that runs (or ran) it, the district it solves, when it was asked for.
    node: str | None = None
    district_id: str | None = None
    created: datetime | None = None
    # Done, and still working out the reasons of unmet demands the time limit left
    # ``not_explained``: the stored version's unmet list is replaced when it finishes.
    explaining: bool = False


class Job:
    """A job this process runs: the solve thread's cancel flag and its latest progress."""

    def __init__(self, status: JobStatus) -> None:
        self.id = status.id
        self.cancel = threading.Event()
        self.status = status
        self.task: asyncio.Task[None] | None = None
        self.written = ""  # the status JSON last written to the store

    def on_progress(self, progress: Progress) -> None:
        # The solve thread; the heartbeat on the event loop writes it to the store.
        self.status = self.status.model_copy(update={"progress": progress})


class JobRunner:
    def __init__(
        self,
        repo: TimetableRepository,
        workers: int,
        *,
        node_id: str = "local",
        lease_seconds: float = 15.0,
        retention_seconds: float = 7 * 86400.0,
    ) -> None:
        self.repo = repo
        self.store = repo.store
        self.workers = workers
        self.node_id = node_id
        self.lease = lease_seconds
        self.retention = retention_seconds
        # Progress reaches pollers within a beat; a lease outlives three missed beats.
        self.beat = min(1.0, lease_seconds / 3)
        self.jobs: dict[str, Job] = {}  # the jobs this process runs (or ran)
        self._sweeper: asyncio.Task[None] | None = None

    # --- reading (any replica) ---------------------------------------------------------

    async def status(self, job_id: str) -> JobStatus | None:
        if (local := self.jobs.get(job_id)) is not None:
            return local.status  # fresher than the store's copy, which lags by a beat
        raw = await self.store.get(job_key(job_id))
        if raw is None:
            return None
        status = JobStatus.model_validate_json(raw)
        if (status.state == "running" or status.explaining) and not await self.store.exists(
            job_lease_key(job_id)
        ):
            status = await self._expired(status)
        return status

    async def _expired(self, status: JobStatus) -> JobStatus:
        if status.state != "running":  # done: its late explanations stopped with the owner
            stopped = status.model_copy(
                update={
                    "explaining": False,
                    "progress": status.progress.model_copy(
                        update={
                            "phase": "done",
                            "message": f"replica {status.node} stopped while explaining unmet "
                            "demand after the result: the rest stay not_explained",
                        }
                    ),
                }
            )
            await self.store.set(job_key(status.id), stopped.model_dump_json(), ttl=self.retention)
            return stopped
        failed = status.model_copy(
            update={
                "state": "failed",
                "progress": Progress(phase="failed", message=status.progress.message),
                "error": f"lease expired: replica {status.node} stopped renewing it mid-solve "
                f"(killed or hung); start the solve again",
            }
        )
        await self.store.set(job_key(status.id), failed.model_dump_json(), ttl=self.retention)
        await self._release(status.id)
        log.warning("solve job %s failed: %s", status.id, failed.error)
        return failed

    async def running(self) -> JobStatus | None:
        """The district's running job, if any (one whose owner died is failed on the way)."""
        job_id = await self.store.get(RUNNING_JOB_KEY)
        if job_id is None:
            return None
        status = await self.status(job_id)
        if status is None or status.state != "running":
            await self._release(job_id)
            return None
        return status

    async def refuse_if_running(self) -> None:
        """One solve per district at a time: each takes the solver's worker processes and
        minutes of CPU, and two would race to publish versions of the same district."""
        if (status := await self.running()) is not None:
            raise _conflict(status.id)

    # --- running (the owner) -----------------------------------------------------------

    async def start(
        self, district: District, request: JobRequest, previous: Timetable | None
    ) -> Job:
        job_id = uuid.uuid4().hex[:12]
        await self.refuse_if_running()  # fails a job whose owner died, freeing the key
        if not await self.store.set(RUNNING_JOB_KEY, job_id, ttl=self.lease, nx=True):
            holder = await self.store.get(RUNNING_JOB_KEY)
            raise _conflict(holder or "?")  # another replica claimed it since we looked
        status = JobStatus(
            id=job_id,
            state="running",
            progress=Progress(phase="queued"),
            node=self.node_id,
            district_id=district.id,
            created=datetime.now(UTC),
        )
        job = Job(status)
        self.jobs[job_id] = job
        await self.store.set(job_lease_key(job_id), self.node_id, ttl=self.lease)
        await self._write(job)
        options = SolveOptions(time_limit=request.time_limit, workers=self.workers)
        job.task = asyncio.create_task(self._run(job, district, options, previous))
        return job

    async def _run(
        self, job: Job, district: District, options: SolveOptions, previous: Timetable | None
    ) -> None:
        stop = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(job, stop))
        late: tuple[int, Timetable, UnmetExplainer] | None = None
        try:
            solved = await asyncio.to_thread(
                solve_keeping_late,
                district,
                options,
                previous=previous,
                progress=job.on_progress,
                cancel=job.cancel,
            )
            timetable = solved.timetable
            version = await self.repo.add(timetable)
            observe_solve(timetable)
            if solved.late is not None:
                late = (version, timetable, solved.late)
            job.status = job.status.model_copy(
                update={"state": "done", "version": version, "explaining": late is not None}
            )
        except SolveCancelled:
            job.status = job.status.model_copy(
                update={"state": "cancelled", "progress": Progress(phase="cancelled")}
            )
        except Exception as exc:  # a failed solve is reported on the job, never kills the app
            job.status = job.status.model_copy(
                update={"state": "failed", "error": str(exc), "progress": Progress(phase="failed")}
            )
        finally:
            await _stop(beat, stop)
            await self._finish(job, keep_lease=late is not None)
        if late is not None:
            await self._explain_late(job, *late)

    async def _explain_late(
        self, job: Job, version: int, timetable: Timetable, explainer: UnmetExplainer
    ) -> None:
        """The reasons the time limit cut short, after the result: the stored version's
        unmet list is replaced once they are all worked out."""
        stop = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(job, stop, claim=False))
        progress = job.status.progress

        def on_slice(done: int, total: int) -> None:
            job.on_progress(
                progress.model_copy(
                    update={
                        "phase": "explain",
                        "message": f"explaining after the result: {done} of {total} "
                        "unmet demands the time limit left not_explained",
                    }
                )
            )

        try:
            unmet = await asyncio.to_thread(
                _explain_with_gc_paused, explainer, on_slice, job.cancel.is_set
            )
            if unmet is None:
                message = (
                    f"explaining stopped: {explainer.unexplained} unmet demands stay not_explained"
                )
            else:
                await self.repo.replace_unmet(
                    version, timetable.model_copy(update={"unmet": unmet})
                )
                message = "every unmet demand explained (after the result)"
        except Exception as exc:  # the result stands; only its late reasons are missing
            log.exception("explaining solve job %s after its result", job.id)
            message = f"explaining after the result failed: {exc}"
        finally:
            await _stop(beat, stop)
        job.status = job.status.model_copy(
            update={
                "explaining": False,
                "progress": progress.model_copy(update={"phase": "done", "message": message}),
            }
        )
        await self._finish(job)

    async def _heartbeat(self, job: Job, stop: asyncio.Event, claim: bool = True) -> None:
        while True:
            await asyncio.sleep(self.beat)
            if stop.is_set():
                return
            try:
                await self.store.set(job_lease_key(job.id), self.node_id, ttl=self.lease)
                if claim and await self.store.get(RUNNING_JOB_KEY) in (job.id, None):
                    await self.store.set(RUNNING_JOB_KEY, job.id, ttl=self.lease)
                if await self.store.get(job_cancel_key(job.id)) is not None:
                    job.cancel.set()
                await self._write(job)
            except Exception:  # a store hiccup: the next beat tries again
                log.exception("heartbeat of solve job %s", job.id)

    async def _write(self, job: Job) -> None:
        text = job.status.model_dump_json()
        if text != job.written:
            ttl = None if job.status.state == "running" or job.status.explaining else self.retention
            await self.store.set(job_key(job.id), text, ttl=ttl)
            job.written = text

    async def _finish(self, job: Job, keep_lease: bool = False) -> None:
        await self._write(job)
        if not keep_lease:  # kept while explaining after the result: pollers see it alive
            await self.store.delete(job_lease_key(job.id))
            await self.store.delete(job_cancel_key(job.id))
        await self._release(job.id)
        # A replica runs for months: forget all but the last few finished jobs (the store
        # keeps their statuses for the retention).
        finished = [k for k, j in self.jobs.items() if j.status.state != "running"]
        for k in finished[:-KEEP_LOCAL]:
            del self.jobs[k]

    async def _release(self, job_id: str) -> None:
        # Not atomic with the read; the key only moves on after ``job_id`` ended or its
        # lease (and so this key's TTL) ran out, so a newer job's claim is not removed.
        if await self.store.get(RUNNING_JOB_KEY) == job_id:
            await self.store.delete(RUNNING_JOB_KEY)

    # --- cancelling (any replica) ------------------------------------------------------

    async def cancel(self, job_id: str) -> JobStatus | None:
        """Ask the owner to stop the job; its status once it stopped (or after a lease and
        a few seconds: the reply then says it still runs)."""
        status = await self.status(job_id)
        if status is not None and status.explaining:  # the result stands; stop explaining it
            if (local := self.jobs.get(job_id)) is not None:
                local.cancel.set()
            else:
                await self.store.set(job_cancel_key(job_id), "1", ttl=self.retention)
            return status
        if status is None or status.state != "running":
            return status
        local = self.jobs.get(job_id)
        if local is not None:
            local.cancel.set()
            if local.task is not None:
                await local.task
            return local.status
        await self.store.set(job_cancel_key(job_id), "1", ttl=self.retention)
        end = time.monotonic() + self.lease + 5
        while time.monotonic() < end:
            await asyncio.sleep(min(0.2, self.beat))
            status = await self.status(job_id)
            if status is None or status.state != "running":
                break
        return status

    # --- lifecycle ---------------------------------------------------------------------

    async def start_sweeping(self) -> None:
        """Fail a running job whose owner died even when nobody polls it."""

        async def sweep() -> None:
            while True:
                await asyncio.sleep(self.lease / 2)
                try:
                    await self.running()
                except Exception:
                    log.exception("sweeping solve jobs")

        self._sweeper = asyncio.create_task(sweep(), name="schedule-job-sweep")

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        for job in self.jobs.values():
            job.cancel.set()
        tasks = [j.task for j in self.jobs.values() if j.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)


async def _stop(beat: asyncio.Task[None], stop: asyncio.Event) -> None:
    """Stop a heartbeat without waiting on its cancellation alone: one that lands inside a
    store command has been seen swallowed there under load (the beat went on renewing the
    lease and the job waited for it for ever), so the beat also ends by itself at ``stop``."""
    stop.set()
    beat.cancel()
    await asyncio.wait({beat}, timeout=5.0)


def _explain_with_gc_paused(
    explainer: UnmetExplainer, on_slice: Callable[[int, int], None], stop: Callable[[], bool]
) -> list[Unmet] | None:
    with gc_paused():  # as the solve itself: the heap it leaves behind is large
        return explainer.explain_late(on_slice, stop)


def _conflict(job_id: str) -> SankeError:
    return SankeError(
        ErrorCode.conflict,
        f"solve job {job_id} is still running: wait for it or cancel it first",
        409,
        headers={"Location": f"/api/v1/schedule/jobs/{job_id}"},
    )
