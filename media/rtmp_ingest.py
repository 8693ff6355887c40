"""A pushed RTMP stream (OBS, a 录播 host) as a Producer's origin: passed through, never decoded.

The SFU expects a push for a participant (``MediaPlane.pull`` with the stream key's
SHA-256: the key itself never reaches the SFU but from the encoder): ``RtmpIngest`` waits
in the worker's ``PushTable`` under that digest. When ``media.rtmp_server`` accepts a
publish whose key hashes to it, the connection's FLV tags come here: the AVC sequence
header's SPS/PPS are kept and put in front of every IDR, the length-prefixed NAL units
become Annex B (``media.annexb``), RTMP's millisecond timestamps the 90 kHz RTP clock
(continuous over a reconnect, as an RTSP camera's).

What classrooms cannot play is refused, naming the encoder setting: H.265 or any codec but
H.264, and B-frames (a non-zero composition time offset, or a B slice). AAC audio is the
one transcode (``media.ingest_audio``), in a thread of its own with a bounded queue.

An encoder cannot make a keyframe on demand over RTMP: a classroom waits for its next IDR
(the keyframe interval, 1–2 s, bounds that wait).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import av

from contracts.media import PullState, PullStatus
from media.annexb import AnnexBWriter, annexb_units
from media.flv import AVC_NALU, AVC_SEQUENCE_HEADER, AudioTag, VideoTag
from media.frames import H264_SLICE, h264_is_b_slice
from media.ingest_audio import IngestAudio, OpusTranscoder, aac_decoder
from media.origin import InboundStats, OnFrame

log = logging.getLogger(__name__)

VIDEO_CLOCK = 90000
FRAME_STEP = VIDEO_CLOCK // 30
AUDIO_QUEUE = 50  # AAC frames waiting for the transcoding thread (~1 s); past it, dropped

B_FRAMES = (
    "the encoder sends H.264 B-frames, which classrooms play out of order (stutter): turn "
    "them off (OBS: Settings → Output → Streaming, x264 options bframes=0 or Profile "
    "baseline; NVENC/QuickSync: Max B-frames 0; ffmpeg: -bf 0; a 录播 host: B-frames 0 / "
    "GOP structure IP only)"
)
NOT_H264 = (
    "the encoder sends {codec} video, which classrooms cannot play: set its video encoder "
    "to H.264 (OBS: Settings → Output → Video Encoder x264 or NVENC H.264, not HEVC/AV1)"
)


class Refused(Exception):
    """The encoder sends what classrooms cannot play; its operator must change a setting."""


class PushConnection(Protocol):
    """The server's side of one publish, as the ingest sees it."""

    def cut(self, reason: str) -> None:
        """Send the encoder an error status with ``reason`` and close the connection."""


class PushTable:
    """The pushes the SFU expects, by the stream key's SHA-256 (hex)."""

    def __init__(self) -> None:
        self._by_digest: dict[str, RtmpIngest] = {}

    def expect(self, ingest: RtmpIngest) -> None:
        old = self._by_digest.get(ingest.key_sha256)
        self._by_digest[ingest.key_sha256] = ingest
        if old is not None and old is not ingest:
            old.close()

    def withdraw(self, ingest: RtmpIngest) -> None:
        if self._by_digest.get(ingest.key_sha256) is ingest:
            del self._by_digest[ingest.key_sha256]

    def get(self, key_sha256: str) -> RtmpIngest | None:
        return self._by_digest.get(key_sha256)

    def __len__(self) -> int:
        return len(self._by_digest)


class RtmpIngest:
    """A participant's expected push as a ``FrameOrigin`` (its video; ``audio`` its Opus)."""

    def __init__(self, key_sha256: str, table: PushTable, audio: IngestAudio | None) -> None:
        self.key_sha256 = key_sha256
        self.table = table
        self.audio = audio
        self.layer = "high"
        self._on_frame: OnFrame = lambda codec, data, timestamp: None
        self._on_gap: Callable[[], None] = lambda: None
        self._connection: PushConnection | None = None
        self._writer: AnnexBWriter | None = None
        self._first_ms: int | None = None
        self._base = 0
        self._next_ts = 0
        self._need_idr = True
        self._audio = _AudioThread(self)
        self.state: PullState = "connecting"
        self.message: str | None = "waiting for the encoder to push"
        self.codec: str | None = None
        self.frames = 0
        self.dropped = 0
        self.pushes = 0
        self.connected_since: float | None = None
        self.closed = False
        # at the first frame ever delivered: until a push, classrooms get no video track
        self.on_first: Callable[[], None] = lambda: None
        table.expect(self)

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

    async def request_keyframe(self) -> bool:
        return False  # RTMP has no keyframe request: the encoder's next IDR is on its GOP

    def forget_missing(self) -> None:
        return None

    async def inbound(self) -> InboundStats:
        return InboundStats(packets=self.frames, packets_lost=self.dropped)

    # --- control (the transport's) ----------------------------------------------------

    def close(self) -> None:
        """The participant left (the lesson ended, the source was deleted): the push ends."""
        if self.closed:
            return
        self.closed = True
        self.table.withdraw(self)
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.cut("the lesson's publish ended (the lesson is over or the source gone)")
        self._audio.close()
        self._set("stopped", None)

    def status(self) -> PullStatus:
        return PullStatus(
            layer="high",
            state=self.state,
            message=self.message,
            codec=self.codec,
            frames=self.frames,
            dropped=self.dropped,
            reconnects=max(0, self.pushes - 1),
            connected_since=self.connected_since,
        )

    def _set(self, state: PullState, message: str | None) -> None:
        if self.state == "stopped":
            return
        self.state, self.message = state, message
        self.connected_since = time.time() if state == "connected" else None

    # --- the server's (on the loop) -------------------------------------------------

    def begin(self, connection: PushConnection) -> None:
        """A publish with this key was accepted; it replaces an older one."""
        old, self._connection = self._connection, connection
        if old is not None:
            old.cut("another publish with this stream key replaced this one")
        self.pushes += 1
        self._writer = None
        self._first_ms = None
        self._base = self._next_ts
        self._need_idr = True
        self._audio.reset()
        self._set("connected", None)

    def end(self, connection: PushConnection, message: str | None) -> None:
        """The publish ended (the encoder stopped, went away, or was refused)."""
        if connection is not self._connection:
            return
        self._connection = None
        if self.state == "refused":
            return  # it stays refused, with the setting to change, until the next push
        self._set("reconnecting", message or "the encoder stopped pushing; waiting for it")

    def refuse(self, connection: PushConnection, message: str) -> None:
        if connection is self._connection:
            self._set("refused", message)

    def video(self, tag: VideoTag, timestamp_ms: int) -> None:
        """One video message; raises ``Refused`` for what classrooms cannot play."""
        self.codec = tag.codec
        if tag.codec != "h264":
            raise Refused(NOT_H264.format(codec=tag.codec))
        if tag.packet_type == AVC_SEQUENCE_HEADER:
            self._writer = AnnexBWriter(tag.payload)
            return
        if tag.packet_type != AVC_NALU or self._writer is None:
            return  # end of sequence, or NAL units before any sequence header
        if tag.composition_ms != 0:
            raise Refused(B_FRAMES)
        data, idr = self._writer.access_unit(tag.payload)
        if not data:
            return
        if not idr and _b_frame(annexb_units(data)):
            raise Refused(B_FRAMES)
        if self._need_idr and not idr:
            return  # a decoder starts at an IDR
        self._need_idr = False
        if self._first_ms is None:
            self._first_ms = timestamp_ms
        timestamp = (self._base + (timestamp_ms - self._first_ms) * 90) & 0xFFFFFFFF
        self._next_ts = timestamp + FRAME_STEP
        self.frames += 1
        if self.frames == 1:
            self.on_first()
        self._on_frame("H264", data, timestamp)

    def audio_tag(self, tag: AudioTag) -> None:
        if self.audio is not None:
            self._audio.submit(tag)

    def deliver_audio(self, data: bytes, timestamp: int) -> None:
        if self.audio is not None and not self.closed:
            self.audio.deliver(data, timestamp)


def _b_frame(units: list[bytes]) -> bool:
    return any(u and u[0] & 0x1F == H264_SLICE and h264_is_b_slice(u[:16]) for u in units[:4])


class _AudioThread:
    """AAC → Opus off the loop: one thread, a bounded queue, Opus frames back to the loop."""

    def __init__(self, ingest: RtmpIngest) -> None:
        self.ingest = ingest
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()
        self._transcoder: OpusTranscoder | None = None
        self._generation = 0
        self._timestamp = 0  # 48 kHz, continuous over pushes
        self._failed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def reset(self) -> None:
        with self._lock:
            self._generation += 1
            self._failed = False

    def submit(self, tag: AudioTag) -> None:
        if self._failed:
            return
        if tag.codec != "aac":
            self._failed = True
            log.warning("RTMP push sends %s audio; only AAC is taken: no audio", tag.codec)
            return
        with self._lock:
            if self._pending >= AUDIO_QUEUE:
                self.ingest.dropped += 1
                return
            self._pending += 1
            generation = self._generation
        if self._pool is None:
            self._loop = asyncio.get_running_loop()
            self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rtmp-aac")
        self._pool.submit(self._work, tag, generation)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    def _work(self, tag: AudioTag, generation: int) -> None:
        with self._lock:
            self._pending -= 1
            if generation != self._generation:
                return
        try:
            if tag.sequence_header:
                self._transcoder = OpusTranscoder(aac_decoder(tag.payload))
                return
            if self._transcoder is None or not tag.payload:
                return
            packet: Any = av.Packet(tag.payload)
            frames = self._transcoder.packets(packet)
        except Exception as exc:
            log.warning("RTMP push: dropping its audio: %r", exc)
            self._transcoder = None
            self._failed = True
            return
        loop = self._loop
        for data in frames:
            timestamp = self._timestamp & 0xFFFFFFFF
            self._timestamp += self._transcoder.frame_samples
            if loop is not None and not loop.is_closed():
                try:
                    loop.call_soon_threadsafe(self.ingest.deliver_audio, data, timestamp)
                except RuntimeError:
                    return
