"""An RTSP camera (or a 录播 host's RTSP output) as a Producer's origin: pulled, never decoded.

A thread per stream opens the URL with PyAV (FFmpeg's RTSP demuxer: TCP-interleaved or UDP
transport, basic/digest credentials in the URL), demuxes H.264 access units, makes them
Annex B with SPS/PPS in front of every IDR (``media.annexb``) and hands them to the event
loop, which calls the producer's ``on_frame``. The hand-over is bounded: at most
``QUEUE_FRAMES`` frames wait for the loop; past that the pull drops frames up to the next
IDR and tells the producer (``on_gap``), so a stalled loop never piles up memory.

A camera that goes away (unplugged, rebooted, the network dropped) is reopened with a
backoff of 1 s doubling to 30 s; its picture resumes at its first IDR. FFmpeg's I/O is
bounded by PyAV's open/read timeouts, so a camera that accepts and then sends nothing (or
garbage) costs one thread waiting, never the loop.

What a browser cannot decode is refused, with a status and a log line naming the camera
setting to change: H.265/HEVC, MJPEG (or anything but H.264), and H.264 with B-frames
(WebRTC receivers play frames in arrival order). A refused camera is retried at the longest
backoff, so fixing its setting brings the lesson's picture back.

A camera's audio (AAC, G.711, whatever FFmpeg decodes) is the one transcode allowed: decoded
and encoded to Opus (48 kHz, 20 ms frames) in the same thread, a few percent of a core, and
given to its own producer (``RtspAudio``). Audio that fails is dropped; the video goes on.

A camera cannot make a keyframe on demand over RTSP: ``request_keyframe`` says so, and a
classroom waits for the camera's next IDR (its GOP setting, 1–2 s, bounds that wait).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import av

from contracts.media import PullState, PullStatus
from media.annexb import AnnexBWriter, annexb_units
from media.frames import H264_SLICE, h264_is_b_slice
from media.ingest_audio import IngestAudio, OpusTranscoder
from media.origin import InboundStats, OnFrame

log = logging.getLogger(__name__)

QUEUE_FRAMES = 64  # frames waiting for the event loop, at most (~2 s at 30 fps)
OPEN_TIMEOUT = 10.0  # seconds: connect, DESCRIBE, SETUP, PLAY
READ_TIMEOUT = 5.0  # seconds without a packet: the camera went away
BACKOFF_MIN = 1.0
BACKOFF_MAX = 30.0
VIDEO_CLOCK = 90000
FRAME_STEP = VIDEO_CLOCK // 30  # a reconnect's picture continues one frame after the last

HEVC = (
    "the camera sends H.265 (HEVC), which browsers cannot decode: set its video encoding to "
    "H.264 (Hikvision: Video Encoding H.264, not H.265/H.265+; Dahua: Encode Mode H.264, "
    "Smart Codec off)"
)
MJPEG = (
    "the camera sends {codec}, which Sanke does not pass to classrooms: set its video "
    "encoding to H.264 (main stream and sub-stream)"
)
SUB_STREAM = (
    "the camera's sub-stream sends {codec}, which classrooms cannot receive (WebRTC carries "
    "the camera's H.264 as is, never transcoded): set the sub-stream's (子码流) video encoding "
    "to H.264 (Hikvision: Sub Stream, Video Encoding H.264; Dahua: Sub Stream 1, Encode Mode "
    "H.264); until then classrooms get the main stream only"
)
B_FRAMES = (
    "the camera sends H.264 B-frames, which classrooms play out of order (stutter): turn "
    "them off (profile Baseline, or Main/High with B-frames 0 / GOP structure IP only; "
    "Hikvision: SVC off and no B-frames; a 录播 host: encoder B-frame count 0)"
)
UNAUTHORIZED = (
    "the camera refused the username or password (RTSP 401): check the source's credentials "
    "and that the camera's RTSP authentication is basic or digest"
)


def redacted(url: str) -> str:
    """The URL without its password, for logs and statuses."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ""
    return urlunsplit((parts.scheme, user + host, parts.path, parts.query, ""))


class Refused(Exception):
    """The camera sends what classrooms cannot play; its operator must change a setting."""


def _unauthorized(exc: BaseException) -> bool:
    text = str(exc)
    return "401" in text or "Unauthorized" in text or "unauthorized" in text


def _b_frame(units: list[bytes]) -> bool:
    return any(u and u[0] & 0x1F == H264_SLICE and h264_is_b_slice(u[:16]) for u in units[:4])


RtspAudio = IngestAudio  # a camera's audio: the ingests' Opus origin


class _Transcoder(OpusTranscoder):
    """A camera's audio stream to Opus packets (the thread's; PyAV objects stay in it)."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream.codec_context)
        self.stream = stream


class RtspPull:
    """One RTSP stream as a ``FrameOrigin``: a thread reads it while the producer lives."""

    def __init__(
        self,
        url: str,
        layer: Literal["high", "low"],
        transport: Literal["tcp", "udp"] = "tcp",
        *,
        open_timeout: float = OPEN_TIMEOUT,
        read_timeout: float = READ_TIMEOUT,
        backoff: tuple[float, float] = (BACKOFF_MIN, BACKOFF_MAX),
        audio: RtspAudio | None = None,
    ) -> None:
        self.url = url
        self.audio = audio
        self._audio_ts = 0  # 48 kHz, continuous over reconnects
        self.layer = layer
        self.transport = transport
        self.open_timeout, self.read_timeout = open_timeout, read_timeout
        self.backoff = backoff
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frame: OnFrame = lambda codec, data, timestamp: None
        self._on_gap: Callable[[], None] = lambda: None
        self._pending = 0
        self._dropping = False
        self._gap = False
        self.state: PullState = "connecting"
        self.message: str | None = None
        self.codec: str | None = None
        self.frames = 0
        self.dropped = 0
        self.reconnects = 0
        self.connected_since: float | None = None
        self._next_ts = 0  # where the next connection's timestamps start (90 kHz)
        # told on the event loop when the state changes (the transport: a layer is usable)
        self.on_state: Callable[[PullState], None] | None = None

    # --- FrameOrigin ---------------------------------------------------------------

    def start(
        self,
        on_frame: OnFrame,
        on_gap: Callable[[], None],
        on_cut: Callable[[], None],
        downstream_loss: Callable[[], int],
        on_link_loss: Callable[[int], None],
    ) -> None:
        self._on_frame, self._on_gap = on_frame, on_gap
        self._loop = asyncio.get_running_loop()
        self._thread = threading.Thread(target=self._run, name=f"rtsp-{self.layer}", daemon=True)
        self._thread.start()

    async def request_keyframe(self) -> bool:
        return False  # RTSP has no keyframe request: the camera's next IDR comes on its GOP

    def forget_missing(self) -> None:
        return None

    async def inbound(self) -> InboundStats:
        return InboundStats(packets=self.frames, packets_lost=self.dropped)

    # --- control -------------------------------------------------------------------

    def close(self) -> None:
        """Stop reading; the thread ends within the read timeout (FFmpeg's I/O returns)."""
        self._stop.set()
        self._set("stopped", None)

    def status(self) -> PullStatus:
        with self._lock:
            return PullStatus(
                layer=self.layer,
                state=self.state,
                message=self.message,
                codec=self.codec,
                frames=self.frames,
                dropped=self.dropped,
                reconnects=self.reconnects,
                connected_since=self.connected_since,
            )

    def _set(self, state: PullState, message: str | None) -> None:
        with self._lock:
            if self.state == "stopped":
                return
            changed = state != self.state
            self.state, self.message = state, message
            self.connected_since = time.time() if state == "connected" else None
        loop, on_state = self._loop, self.on_state
        if changed and on_state is not None and loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(on_state, state)

    # --- the reading thread --------------------------------------------------------

    def _run(self) -> None:
        delay = self.backoff[0]
        first = True
        while not self._stop.is_set():
            if not first:
                with self._lock:
                    self.reconnects += 1
            first = False
            delivered = False
            try:
                delivered = self._read_once()
                if not self._stop.is_set():
                    self._set("reconnecting", "the camera ended the stream")
                    log.info("RTSP %s ended; reconnecting", redacted(self.url))
            except Refused as exc:
                self._set("refused", str(exc))
                log.warning("RTSP %s refused: %s", redacted(self.url), exc)
                delay = self.backoff[1]
            except Exception as exc:
                if self._stop.is_set():
                    break
                if _unauthorized(exc):
                    self._set("unauthorized", UNAUTHORIZED)
                    log.warning("RTSP %s: %s", redacted(self.url), UNAUTHORIZED)
                else:
                    message = f"the camera cannot be read: {exc}"[:500]
                    self._set("reconnecting", message.replace(self.url, redacted(self.url)))
                    log.info("RTSP %s failed: %r; reconnecting", redacted(self.url), exc)
            if delivered:
                delay = self.backoff[0]
            self._stop.wait(delay)
            if not delivered:
                delay = min(self.backoff[1], delay * 2)

    def _read_once(self) -> bool:
        """One connection, until the camera goes away or the pull stops; whether it
        delivered a frame (a connection that did restarts the backoff)."""
        container = self._open()
        delivered = False
        try:
            if not container.streams.video:
                raise Refused("the camera's stream has no video")
            stream = container.streams.video[0]
            codec = str(stream.codec_context.name)
            with self._lock:
                self.codec = codec
            if codec == "hevc":
                raise Refused(HEVC)
            if codec != "h264":
                text = SUB_STREAM if self.layer == "low" else MJPEG
                raise Refused(text.format(codec=codec.upper()))
            transcoder = self._transcoder(container)
            writer = AnnexBWriter(stream.codec_context.extradata)
            time_base = stream.time_base
            first_pts: int | None = None
            base = self._next_ts
            last_pts: int | None = None
            need_idr = True
            streams = [stream] if transcoder is None else [stream, transcoder.stream]
            for packet in container.demux(*streams):
                if self._stop.is_set():
                    break
                if packet.size == 0:
                    continue
                if transcoder is not None and packet.stream is transcoder.stream:
                    transcoder = self._transcode(transcoder, packet)
                    continue
                data, idr = writer.access_unit(bytes(packet))
                if not data:
                    continue
                pts = packet.pts
                if pts is not None and packet.dts is not None and pts != packet.dts:
                    raise Refused(B_FRAMES)
                if pts is not None and last_pts is not None and pts < last_pts:
                    raise Refused(B_FRAMES)
                if not idr and _b_frame(annexb_units(data)):
                    raise Refused(B_FRAMES)
                if pts is None:
                    pts = last_pts + FRAME_STEP if last_pts is not None else 0
                    ticks = pts
                else:
                    ticks = int(pts * time_base * VIDEO_CLOCK)
                last_pts = pts
                if need_idr and not idr:
                    continue  # a decoder starts at an IDR
                need_idr = False
                if first_pts is None:
                    first_pts = ticks
                timestamp = (base + ticks - first_pts) & 0xFFFFFFFF
                self._next_ts = timestamp + FRAME_STEP
                if not delivered:  # connected: a picture again (not just an open stream)
                    self._set("connected", None)
                self._hand(data, timestamp, idr)
                delivered = True
        finally:
            container.close()
            self._closed()
        return delivered

    def _open(self) -> Any:
        """The camera's stream as a PyAV container (``media.srt_origin`` opens another)."""
        options = {"rtsp_transport": self.transport, "timeout": str(int(self.read_timeout * 1e6))}
        if self.transport == "udp":
            options["reorder_queue_size"] = "64"
        return av.open(self.url, options=options, timeout=(self.open_timeout, self.read_timeout))

    def _closed(self) -> None:
        """The connection's container was closed."""
        return None

    def _transcoder(self, container: Any) -> _Transcoder | None:
        if self.audio is None or not container.streams.audio:
            return None
        try:
            return _Transcoder(container.streams.audio[0])
        except Exception as exc:
            log.warning("RTSP %s: its audio cannot be transcoded: %r", redacted(self.url), exc)
            return None

    def _transcode(self, transcoder: _Transcoder, packet: Any) -> _Transcoder | None:
        """The packet's Opus frames to the loop; a failing audio stream is dropped (None)."""
        try:
            frames = transcoder.packets(packet)
        except Exception as exc:
            log.warning("RTSP %s: dropping its audio: %r", redacted(self.url), exc)
            return None
        for data in frames:
            self._hand_audio(data, self._audio_ts & 0xFFFFFFFF)
            self._audio_ts += transcoder.frame_samples
        return transcoder

    def _hand_audio(self, data: bytes, timestamp: int) -> None:
        loop, audio = self._loop, self.audio
        if loop is None or audio is None or loop.is_closed():
            return
        with self._lock:
            if self._pending >= QUEUE_FRAMES:
                self.dropped += 1
                return
            self._pending += 1
        try:
            loop.call_soon_threadsafe(self._deliver_audio, audio, data, timestamp)
        except RuntimeError:
            self._stop.set()

    def _deliver_audio(self, audio: RtspAudio, data: bytes, timestamp: int) -> None:
        with self._lock:
            self._pending -= 1
        if not self._stop.is_set():
            audio.deliver(data, timestamp)

    def _hand(self, data: bytes, timestamp: int, idr: bool) -> None:
        """To the event loop, bounded: a full hand-over drops frames up to the next IDR."""
        loop = self._loop
        if loop is None or loop.is_closed():
            self._stop.set()
            return
        with self._lock:
            if self._dropping and not idr:
                self.dropped += 1
                return
            if self._pending >= QUEUE_FRAMES:
                self._dropping = self._gap = True
                self.dropped += 1
                return
            self._dropping = False
            self._pending += 1
        try:
            loop.call_soon_threadsafe(self._deliver, data, timestamp)
        except RuntimeError:  # the loop closed meanwhile
            self._stop.set()

    def _deliver(self, data: bytes, timestamp: int) -> None:
        with self._lock:
            self._pending -= 1
            self.frames += 1
            gap, self._gap = self._gap, False
        if self._stop.is_set():
            return
        if gap:
            self._on_gap()
        self._on_frame("H264", data, timestamp)
