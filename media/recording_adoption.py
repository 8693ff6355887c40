"""A part whose SFU node died, finished by a node that survived it.

With a recordings directory shared by the nodes (a ReadWriteMany volume), a node killed
mid-lesson leaves its part's working file (``….mp4.partial``) and, next to it, its own id
(``….partial.node``). Every ``interval`` seconds each node looks for working files another
node wrote; one whose writer's heartbeat key has expired (nodes register with a 3 s TTL,
contracts.nodes) and that has not grown for ``quiet_seconds`` (a live part grows every ~2 s,
so a node cut off from Redis but still writing is left alone) is claimed — one node wins,
through a key set only if absent — and finished like a crash's leftover at start
(media/recording_recovery.py: remuxed from what is readable, hashed, reported), so the
lesson's first part is in the records and the library minutes before that node comes back, if
it ever does. The lesson itself goes on as a second part on the node the room moved to.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from contracts.nodes import NodeDirectory
from contracts.store import Store
from media.recording_recovery import recover, written_elsewhere
from media.worker import Worker

log = logging.getLogger(__name__)

ADOPT_KEY = "kv:recording-adopt:{file}"
ADOPT_TTL_SECONDS = 600.0
DEFAULT_INTERVAL_SECONDS = 5.0
DEFAULT_QUIET_SECONDS = 10.0


class OrphanAdoption:
    def __init__(
        self,
        worker: Worker,
        store: Store,
        node_id: str,
        *,
        interval: float = DEFAULT_INTERVAL_SECONDS,
        quiet_seconds: float = DEFAULT_QUIET_SECONDS,
    ) -> None:
        self.worker = worker
        self.store = store
        self.nodes = NodeDirectory(store)
        self.node_id = node_id
        self.interval = interval
        self.quiet_seconds = quiet_seconds
        self._task: asyncio.Task[None] | None = None

    async def adopt(self) -> int:
        """Finish the parts of dead nodes found now; how many."""
        directory, hooks = self.worker.settings.recordings_dir, self.worker.recording_hooks
        if directory is None or hooks is None:
            return 0
        candidates = await asyncio.to_thread(
            written_elsewhere, directory, self.node_id, self.quiet_seconds
        )
        adopted = 0
        for partial, writer in candidates:
            if await self.nodes.node(writer) is not None:
                continue  # alive: a quiet part (a paused encoder) is its own business
            name = partial.relative_to(directory).as_posix()
            key = ADOPT_KEY.format(file=name)
            if not await self.store.set(key, self.node_id, ADOPT_TTL_SECONDS, nx=True):
                continue  # another survivor took it
            finished = await asyncio.to_thread(recover, directory, partial)
            if finished is None:
                continue
            log.warning(
                "finished %s, left by node %s that died (%.1f s)",
                finished.file,
                writer,
                finished.duration_seconds,
            )
            try:
                await hooks.finished(finished)
            except Exception:
                log.exception("adopted %s but it was not put in the records", finished.file)
            adopted += 1
        return adopted

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="rec-adoption")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.adopt()
            except Exception:  # a failing disk or store: the next round tries again
                log.exception("adopting the recordings of dead nodes failed")
