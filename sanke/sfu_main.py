"""``sanke sfu``: one SFU node process (store, worker, node loop, health and metrics)."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web
from prometheus_client import Gauge

from contracts.store import Store, open_store
from lessons.recordings import LessonRecordings
from lessons.records import RecordLog
from lessons.replay_catalogue import ReplayCatalogue
from media.heap import HeapTrimmer
from media.metrics import MediaObservability
from media.node import SfuNode
from media.recording_adoption import OrphanAdoption
from media.worker import Worker
from sanke.recording import lesson_hls, lesson_recordings, retention_sweep, worker_settings
from sanke.records_key import records_keys
from sanke.rtmp import rtmp_listener
from sanke.settings import Settings
from signaling.http_auth import json_errors
from signaling.metrics_http import metrics_body, require_metrics_token
from signaling.web_security import install_security_headers

log = logging.getLogger(__name__)

NODE_ROOMS = Gauge("sanke_sfu_node_rooms", "Lesson rooms hosted by this SFU node")
NODE_DRAINING = Gauge("sanke_sfu_node_draining", "1 while this SFU node drains")


def _http(node: SfuNode, metrics_token: str | None = None) -> web.Application:
    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "node_id": node.info.id})

    async def readyz(request: web.Request) -> web.Response:
        ready = not node.draining and await node.store.ping()
        return web.json_response(
            {
                "status": "ready" if ready else "draining",
                "node_id": node.info.id,
                "rooms": len(node.worker.routers),
            },
            status=200 if ready else 503,
        )

    async def metrics(request: web.Request) -> web.Response:
        require_metrics_token(request, metrics_token)
        NODE_ROOMS.set(len(node.worker.routers))
        NODE_DRAINING.set(1 if node.draining else 0)
        return metrics_body()

    app = web.Application(middlewares=[json_errors])
    install_security_headers(app)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)
    return app


def _recording(settings: Settings, store: Store) -> LessonRecordings | None:
    """A node records the rooms it hosts only where it was given a place for the files
    (SANKE_RECORDINGS_DIR: a cluster decides its storage); it signs their hashes into the
    shared chain, so it needs the records key every other process has."""
    if not settings.recordings_dir:
        log.info("SANKE_RECORDINGS_DIR is not set: this SFU node records no lesson")
        return None
    return lesson_recordings(settings, store, RecordLog(store, records_keys(settings)))


async def _recover(worker: Worker) -> None:
    try:
        await worker.recover_recordings()
    except Exception:  # a recordings disk that fails must not keep the node from serving
        log.exception("finishing the recordings a crash left failed")


async def run_sfu(settings: Settings) -> None:
    store = await open_store(settings.redis_url, settings.key_prefix)
    # a node packages HLS only where it was given a place for the files (SANKE_HLS_DIR)
    packages = bool(settings.hls_dir)
    worker = Worker(
        worker_settings(settings, hls=packages),
        _recording(settings, store),
        lesson_hls(settings, store) if packages else None,
    )
    node = SfuNode(
        store,
        worker,
        settings.node_id,
        address=settings.sfu_address,
        capacity=settings.sfu_capacity,
        region=settings.sfu_region,
    )
    observability = MediaObservability(worker)
    await observability.start()
    heap = HeapTrimmer(settings.heap_trim_seconds)
    heap.start()
    retention = None
    if worker.recording_hooks is not None:
        records = RecordLog(store, records_keys(settings))
        retention = retention_sweep(
            settings, worker.settings.recordings_dir, records, ReplayCatalogue(store)
        )
    if retention is not None:
        retention.start()
    hooks = worker.recording_hooks
    uploads = hooks.uploads if isinstance(hooks, LessonRecordings) else None
    if uploads is not None:
        uploads.start()  # the parts a failed upload left here, now and then every minute
    await node.start()
    # RTMP pushes for the rooms this node hosts (each node accepts only the keys it expects)
    rtmp = rtmp_listener(settings, worker, store)
    if rtmp is not None:
        await rtmp.start()
    recovery = asyncio.create_task(_recover(worker))  # serving does not wait for it
    # parts of nodes that died, in a directory shared with them (a ReadWriteMany volume)
    adoption = OrphanAdoption(worker, store, node.info.id) if hooks is not None else None
    if adoption is not None:
        adoption.start()
    runner = web.AppRunner(_http(node, settings.metrics_token), access_log=None)
    await runner.setup()
    for host in settings.host:
        await web.TCPSite(runner, host, settings.port).start()
    loop = asyncio.get_running_loop()
    draining: list[asyncio.Task[None]] = []

    def on_term() -> None:
        if not draining:
            log.info("SIGTERM: draining for up to %.0f s", settings.drain_grace_seconds)
            draining.append(loop.create_task(node.drain(settings.drain_grace_seconds)))

    def on_int() -> None:
        draining.append(loop.create_task(node.stop()))

    loop.add_signal_handler(signal.SIGTERM, on_term)
    loop.add_signal_handler(signal.SIGINT, on_int)
    try:
        await node.stopped.wait()
    finally:
        if not recovery.done():
            recovery.cancel()
        if adoption is not None:
            await adoption.stop()
        if retention is not None:
            await retention.stop()
        if uploads is not None:
            await uploads.stop()
        await heap.stop()
        await observability.stop()
        await runner.cleanup()
        if rtmp is not None:
            await rtmp.stop()
        await store.close()
