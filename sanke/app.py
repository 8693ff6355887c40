"""The composition root: one aiohttp application from the components the settings ask for."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web

from contracts.hls import HlsHooks
from contracts.media import MediaPlane, NullMediaPlane
from contracts.recording import RecordingHooks
from contracts.store import Store, new_store
from contracts.store.watch import StoreWatch
from lessons.api import setup_lesson_routes
from lessons.context import LessonsContext
from lessons.devices import DeviceRegistry
from lessons.hls_api import setup_hls_routes
from lessons.hls_signing import UrlSigner
from lessons.recordings import LessonRecordings
from lessons.records import RecordLog
from lessons.replay_api import ReplayContext, setup_replay_routes
from lessons.replay_catalogue import ReplayCatalogue, recorded_files
from lessons.rtmp import RtmpSupervisor
from lessons.rtsp import RtspSupervisor
from lessons.service import LessonService
from lessons.sessions import SessionWindow
from lessons.source_api import setup_source_routes
from lessons.sources import SourceRegistry
from lessons.srt import SrtSupervisor
from lessons.whip_api import WhipContext, setup_whip_routes
from media.heap import HeapTrimmer
from sanke.recording import (
    lesson_hls,
    lesson_recordings,
    recording_store,
    retention_sweep,
    worker_settings,
)
from sanke.records_key import records_keys
from sanke.rtmp import RtmpListener, rtmp_listener
from sanke.settings import Settings
from scheduler.api import (
    PUBLISH_CHECKS_KEY,
    PUBLISH_HOOKS_KEY,
    JobSettings,
    setup_scheduler_routes,
)
from signaling.api import SignalingContext, setup_ops_routes, setup_signaling_routes
from signaling.audit import AUDIT_KEY
from signaling.bodies import BODY_IDLE_KEY, JSON_MAX_BYTES
from signaling.connection import Limits
from signaling.http_auth import TOKENS_KEY, json_errors
from signaling.hub import RoomHub
from signaling.ice import ice_servers_factory
from signaling.metrics_http import serve_metrics
from signaling.presence import Presence
from signaling.ratelimit import RATE_LIMITS_KEY, api_rate_limits
from signaling.remote_media import RemoteMediaPlane
from signaling.rights import Rights
from signaling.rooms import RoomRepository
from signaling.service import RoomService
from signaling.tokens import TokenService
from signaling.web_security import install_security_headers

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
SETTINGS_KEY: web.AppKey[Settings] = web.AppKey("settings", Settings)
STORE_KEY: web.AppKey[Store] = web.AppKey("store", Store)
SERVICE_KEY: web.AppKey[RoomService] = web.AppKey("service", RoomService)
LESSON_SERVICE_KEY: web.AppKey[LessonService] = web.AppKey("lesson_service", LessonService)
RTSP_KEY: web.AppKey[RtspSupervisor] = web.AppKey("rtsp", RtspSupervisor)
RTMP_KEY: web.AppKey[RtmpSupervisor] = web.AppKey("rtmp", RtmpSupervisor)
SRT_KEY: web.AppKey[SrtSupervisor] = web.AppKey("srt", SrtSupervisor)
RTMP_LISTENER_KEY: web.AppKey[RtmpListener] = web.AppKey("rtmp_listener", RtmpListener)

# What a process serves (docs/architecture.md, "Which process runs which"):
# - all: everything (``sanke serve``);
# - signaling: rooms over WebSocket and the pages; its lessons only observe joins and leaves
#   for attendance (no lessons or schedule API, no lesson clock);
# - scheduler: the schedule and lessons APIs, solve jobs, the lesson clock; no WebSockets.
Serves = Literal["all", "signaling", "scheduler"]


def default_media_plane(
    settings: Settings, recording: RecordingHooks | None = None, hls: HlsHooks | None = None
) -> MediaPlane:
    """The in-process SFU worker when media is enabled (imported only then: aiortc is big)."""
    if not settings.media:
        return NullMediaPlane()
    from media.worker import Worker

    return Worker(worker_settings(settings), recording, hls)


def media_observability(media: MediaPlane) -> Any:
    """Quality sampling and stream metrics when the media plane is a local worker."""
    if isinstance(media, RemoteMediaPlane | NullMediaPlane):
        return None
    from media.worker import Worker

    if not isinstance(media, Worker):
        return None
    from media.metrics import MediaObservability

    return MediaObservability(media)


async def recover_recordings(media: object) -> None:
    """A local SFU worker finishes the recording parts its last crash left."""
    if isinstance(media, RemoteMediaPlane | NullMediaPlane):
        return  # no local worker (and aiortc is not imported for nothing)
    from media.worker import Worker

    if not isinstance(media, Worker):
        return
    try:
        await media.recover_recordings()
    except Exception:  # a recordings disk that fails must not keep the server from starting
        log.exception("finishing the recordings a crash left failed")


def records_here(settings: Settings, media: MediaPlane) -> bool:
    """Whether lessons are recorded at all behind this media plane: the SFU nodes of a
    cluster decide for themselves (a node without a recordings directory refuses a switch);
    an in-process worker records where it was given a directory and hooks."""
    if isinstance(media, RemoteMediaPlane):
        return True
    if isinstance(media, NullMediaPlane):
        return False
    from media.worker import Worker

    return (
        isinstance(media, Worker)
        and media.settings.recordings_dir is not None
        and media.recording_hooks is not None
    )


def local_worker(local_node: Any, media: object) -> Any:
    """The SFU worker in this process, if there is one (None: media is elsewhere)."""
    if local_node is not None:
        return local_node.worker
    if isinstance(media, RemoteMediaPlane | NullMediaPlane):
        return None
    from media.worker import Worker

    return media if isinstance(media, Worker) else None


def recordings_directory(media: object) -> Path | None:
    """Where the in-process SFU worker writes its recordings (None: it records nothing)."""
    if isinstance(media, RemoteMediaPlane | NullMediaPlane):
        return None
    from media.worker import Worker

    if not isinstance(media, Worker) or media.recording_hooks is None:
        return None
    return media.settings.recordings_dir


def hls_origins(settings: Settings) -> tuple[str, ...]:
    """The CDN's origin when viewers fetch live HLS from one (the pages' CSP allows it)."""
    parsed = urlsplit(settings.hls_public_base)
    return (f"{parsed.scheme}://{parsed.netloc}",) if parsed.scheme and parsed.netloc else ()


def hls_here(media: object) -> Path | None:
    """Where the in-process SFU worker writes live HLS (None: it packages none)."""
    if isinstance(media, RemoteMediaPlane | NullMediaPlane):
        return None
    from media.worker import Worker

    if not isinstance(media, Worker) or media.hls_hooks is None:
        return None
    return media.settings.hls_dir


async def index_replays(
    catalogue: ReplayCatalogue, records: RecordLog, directory: Path | None
) -> None:
    """At start: the finished parts the records name that are on this process's disk join the
    replay library if they are not in it (recorded before it existed, or a failed catalogue
    write); then the storage metric. In the background: a long chain takes a while."""
    try:
        if directory is not None:
            recorded = await asyncio.to_thread(recorded_files, await records.raw())
            if added := await catalogue.index_recorded(recorded, directory):
                log.info("replay library: %d recorded parts indexed from the records", added)
        await catalogue.refresh_metrics()
    except Exception:  # the library is a view: it must not keep the server from starting
        log.exception("indexing the replay library from the records failed")


def offer_check() -> Callable[[str], None]:
    """The SFU's own check of a client's offer, for a WHIP offer checked before its source
    joins the room (the same clear errors as a page's offer gets)."""
    from media.sdp_check import check_sdp

    return lambda sdp: check_sdp(sdp, "offer")


def local_sfu_node(
    settings: Settings, store: Store, recording: RecordingHooks, hls: HlsHooks | None = None
) -> Any:
    from media.node import SfuNode
    from media.worker import Worker

    node_id = f"{settings.node_id}-sfu"
    media_settings = worker_settings(settings)
    # the id its heartbeat key has, noted next to each part it writes (recording_adoption)
    media_settings.recorder.node_id = node_id
    return SfuNode(
        store,
        Worker(media_settings, recording, hls),
        node_id,
        address=settings.sfu_address,
        capacity=settings.sfu_capacity,
        region=settings.sfu_region,
    )


def create_app(
    settings: Settings,
    *,
    store: Store | None = None,
    media: MediaPlane | None = None,
    serves: Serves = "all",
) -> web.Application:
    settings.check_secure()
    store = store if store is not None else new_store(settings.redis_url, settings.key_prefix)
    # Bodies are read by signaling.bodies.read_body with each route's limit; this one only
    # bounds request.read()/post(), which no route uses: the smallest limit.
    app = web.Application(middlewares=[json_errors], client_max_size=JSON_MAX_BYTES)
    app[BODY_IDLE_KEY] = settings.http_body_idle_seconds
    # A <video> of the replay library follows its redirect to the recordings bucket.
    bucket = recording_store(settings)
    bucket_origin = (bucket.origin(),) if bucket is not None else ()
    install_security_headers(app, media_origins=hls_origins(settings) + bucket_origin)
    app[SETTINGS_KEY] = settings
    app[STORE_KEY] = store
    app[TOKENS_KEY] = TokenService(
        settings.token_secret, settings.token_leeway_seconds, crypto=settings.crypto
    )
    app[RATE_LIMITS_KEY] = api_rate_limits(
        store, settings.rate_token_mints_per_minute, settings.rate_device_registrations_per_minute
    )
    hub = RoomHub(store)
    # One view per process of whether the store just came back (or came back empty).
    watch = StoreWatch(store)
    remote_media: RemoteMediaPlane | None = None
    local_node: Any = None
    records = RecordLog(store, records_keys(settings))
    recording: LessonRecordings | None = None
    if media is None:
        recording = lesson_recordings(settings, store, records)
        hls = lesson_hls(settings, store)
        if settings.redis_url:
            # Distributed: media goes to whichever SFU node hosts the room. An all-in-one
            # process on Redis is also one of those nodes, so several of them form a cluster.
            media = remote_media = RemoteMediaPlane(store, hub, settings.node_id, watch)
            if settings.media:
                local_node = local_sfu_node(settings, store, recording, hls)
        else:
            media = default_media_plane(settings, recording, hls)
    sweep = max(1.0, settings.heartbeat_seconds / 3)
    rights = Rights(store, sweep_seconds=sweep)
    service = RoomService(
        store,
        hub,
        media,
        settings.node_id,
        rights,
        recorded_kinds=settings.recorded_kinds() if records_here(settings, media) else (),
        audit=records,
    )
    observability = media_observability(local_node.worker if local_node is not None else media)
    heap = HeapTrimmer(settings.heap_trim_seconds if observability is not None else 0)
    app[SERVICE_KEY] = service
    limits = Limits(
        max_message_bytes=settings.ws_max_message_bytes,
        rate_per_second=settings.ws_rate_per_second,
        rate_burst=settings.ws_rate_burst,
        violations_before_close=settings.ws_rate_violations_before_close,
        heartbeat_seconds=settings.heartbeat_seconds,
        join_timeout_seconds=settings.join_timeout_seconds,
    )
    ice = ice_servers_factory(
        settings.ice_servers, settings.turn_secret, settings.turn_credential_ttl_seconds
    )
    signaling = serves != "scheduler"
    scheduling = serves != "signaling"
    (setup_signaling_routes if signaling else setup_ops_routes)(
        app,
        SignalingContext(
            service=service,
            limits=limits,
            ice_servers=ice,
            default_room_capacity=settings.room_max_participants,
            token_ttl_seconds=settings.token_ttl_seconds,
        ),
    )
    lessons = LessonService(
        service,
        records,
        SessionWindow(
            open_before_minutes=settings.lesson_open_before_minutes,
            close_after_minutes=settings.lesson_close_after_minutes,
            missed_after_minutes=settings.lesson_missed_after_minutes,
        ),
    )
    app[LESSON_SERVICE_KEY] = lessons
    app[AUDIT_KEY] = lessons.records  # coordinator actions go into the records chain
    service.observers.append(lessons)
    if scheduling:
        setup_lesson_routes(
            app, LessonsContext(lessons, DeviceRegistry(store, settings.crypto), lessons.records)
        )
        jobs = JobSettings(
            node_id=settings.node_id,
            lease_seconds=settings.schedule_job_lease_seconds,
            retention_seconds=settings.schedule_job_retention_seconds,
            keep_versions=settings.schedule_keep_versions,
        )
        setup_scheduler_routes(
            app,
            store,
            workers=settings.solver_workers,
            offload_bytes=settings.upload_offload_bytes,
            jobs=jobs,
        )
        app[PUBLISH_HOOKS_KEY].append(lessons.publish)
        app[PUBLISH_CHECKS_KEY].append(lessons.publish_refusal)
    sources = SourceRegistry(store, settings.crypto, settings.rtmp_server_url())
    if scheduling:
        setup_source_routes(app, sources)
    if signaling:
        # WHIP encoders join rooms: where the WebSockets are (the Ingress sends /whip there).
        setup_whip_routes(app, WhipContext(service, sources, offer_check(), clock=lessons.clock))
    # RTSP cameras are pulled where rooms are joined too (a lease picks one process a source).
    rtsp = RtspSupervisor(service, sources, clock=lessons.clock) if signaling else None
    if rtsp is not None:
        app[RTSP_KEY] = rtsp
    # RTMP pushes: expected by the SFU hosting the room (the same supervision as RTSP) and
    # accepted by the RTMP listener of a process with an SFU worker.
    rtmp = RtmpSupervisor(service, sources, clock=lessons.clock) if signaling else None
    if rtmp is not None:
        app[RTMP_KEY] = rtmp
    # SRT encoders: opened by the SFU hosting the room (a supervised ffmpeg), supervised alike.
    srt = SrtSupervisor(service, sources, clock=lessons.clock) if signaling else None
    if srt is not None:
        app[SRT_KEY] = srt
    rtmp_in = rtmp_listener(settings, local_worker(local_node, media), store)
    if rtmp_in is not None:
        app[RTMP_LISTENER_KEY] = rtmp_in
    serve_metrics(
        app,
        token=settings.metrics_token,
        port=settings.metrics_port,
        hosts=settings.metrics_host or settings.host,
    )
    hls_directory = hls_here(local_node.worker if local_node else media)
    if signaling and hls_directory is not None:
        # the files this process's SFU worker writes (a CDN or nginx in front: docs/hls.md)
        setup_hls_routes(
            app,
            hls_directory,
            UrlSigner(settings.hls_signing_key(), settings.hls_url_ttl_seconds),
            RoomRepository(store),
            settings.hls_room_kinds(),
            settings.hls_public_base,
        )
    if WEB_DIR.is_dir():
        app.router.add_static("/web", WEB_DIR, show_index=False, append_version=False)

        async def index(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound("/web/index.html")

        app.router.add_get("/", index)
    presence = Presence(service, interval=sweep, watch=watch)
    catalogue = ReplayCatalogue(store)
    written_here = recordings_directory(local_node.worker if local_node else media)
    retention = retention_sweep(settings, written_here, records, catalogue)
    # The replay library serves the files from where they are: this process's recordings, or
    # a directory it shares with the SFU nodes (SANKE_RECORDINGS_DIR on a shared volume).
    replay_files = written_here or (settings.recordings_path() if settings.recordings_dir else None)
    # Finished parts uploaded to a bucket (SANKE_RECORDINGS_S3_*): this process retries the
    # uploads of the parts it wrote, and its replay library redirects to the bucket.
    uploads = recording.uploads if recording is not None and written_here is not None else None
    if scheduling:
        context = ReplayContext(catalogue, replay_files, clock=lessons.clock, bucket=bucket)
        setup_replay_routes(app, context)

    async def lifecycle(app: web.Application) -> AsyncIterator[None]:
        await store.start()
        try:
            # After a records key rotation the signed head gets the new key's signature.
            if await lessons.records.reseal():
                log.info("teaching records head re-signed with the current records key")
        except Exception:
            log.exception("re-signing the teaching records head failed")
        if remote_media is not None:
            await remote_media.start()
        adoption = None
        if local_node is not None:
            await local_node.start()
            if recordings_directory(local_node.worker) is not None:
                from media.recording_adoption import OrphanAdoption

                # the parts of nodes that died, in a directory shared with them
                adoption = OrphanAdoption(local_node.worker, store, local_node.info.id)
                adoption.start()
        if rtmp_in is not None:
            await rtmp_in.start()
        await rights.start()  # every process applies revocations (docs/security.md)
        if signaling:
            await presence.start()
        if rtsp is not None:
            await rtsp.start()
        if rtmp is not None:
            await rtmp.start()
        if srt is not None:
            await srt.start()
        if scheduling:
            # The lesson clock: one tick at a time across replicas (the tick lock).
            await lessons.start(settings.lesson_tick_seconds)
        if observability is not None:
            await observability.start()
        heap.start()
        if retention is not None:
            retention.start()
        if uploads is not None:
            uploads.start()
        # with a bucket, a finished part on disk is one waiting for its upload: not listed
        indexed = replay_files if bucket is None else None
        indexing = asyncio.create_task(index_replays(catalogue, records, indexed))
        # in the background: a long part's remux must not hold up serving
        recovery = asyncio.create_task(
            recover_recordings(local_node.worker if local_node is not None else media)
        )
        if settings.demo and scheduling:
            from sanke.demo import load_demo

            await load_demo(app)
        yield
        if not recovery.done():
            recovery.cancel()
        if not indexing.done():
            indexing.cancel()
        if retention is not None:
            await retention.stop()
        if uploads is not None:
            await uploads.stop()
        await heap.stop()
        if observability is not None:
            await observability.stop()
        if scheduling:
            await lessons.stop()
        await rights.stop()
        if rtsp is not None:
            await rtsp.stop()
        if rtmp is not None:
            await rtmp.stop()
        if srt is not None:
            await srt.stop()
        if rtmp_in is not None:
            await rtmp_in.stop()
        if signaling:
            await presence.stop()
        await service.pending_removals.close()
        await hub.close()
        await media.close()
        if adoption is not None:
            await adoption.stop()
        if local_node is not None:
            await local_node.stop()
        await store.close()

    app.cleanup_ctx.append(lifecycle)
    return app
