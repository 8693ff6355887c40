"""The RTMP listener of a process that hosts an SFU worker (``sanke serve``, ``sanke sfu``).

It accepts the pushes the local worker expects (``media.rtmp_server``); a push it refuses
is told to the store, so that the source whose key it was shows it as its last error
(``lessons.sources.SourceRegistry.refused_push``) whichever process serves the API.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from contracts.store import Store
from lessons.sources import SourceRegistry
from sanke.settings import Settings

log = logging.getLogger(__name__)


class RtmpListener:
    def __init__(self, settings: Settings, worker: Any, store: Store) -> None:
        from media.rtmp_server import RtmpServer, RtmpSettings

        self.registry = SourceRegistry(store, settings.crypto, settings.rtmp_server_url())
        self._tasks: set[asyncio.Task[None]] = set()
        self.server = RtmpServer(
            worker.pushes,
            RtmpSettings(
                port=settings.rtmp_port,
                hosts=settings.host,
                max_connections=settings.rtmp_max_connections,
                max_bitrate_bps=settings.rtmp_max_bitrate_kbps * 1000,
            ),
            on_refused=self._refused,
        )

    @property
    def port(self) -> int:
        return self.server.port

    async def start(self) -> None:
        try:
            await self.server.start()
        except OSError as exc:  # a port taken must not keep the lessons' SFU from serving
            log.error("RTMP port %d cannot be bound (%s): no RTMP ingest", self.port, exc)

    async def stop(self) -> None:
        await self.server.stop()
        for task in list(self._tasks):
            task.cancel()

    def _refused(self, key_sha256: str, why: str) -> None:
        if len(self._tasks) >= 100:
            return  # the store is slow: a refusal's status can wait for the encoder's retry
        task = asyncio.get_running_loop().create_task(self._tell(key_sha256, why))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tell(self, key_sha256: str, why: str) -> None:
        try:
            await self.registry.refused_push(key_sha256, why)
        except Exception as exc:
            log.info("an RTMP refusal was not recorded: %r", exc)


def rtmp_listener(settings: Settings, worker: Any, store: Store) -> RtmpListener | None:
    """The listener for a local worker, if RTMP is on (``SANKE_RTMP_PORT`` not 0)."""
    if worker is None or not settings.rtmp_port:
        return None
    return RtmpListener(settings, worker, store)
