"""An HLS packager: a FrameSink on the teacher camera's high and low layer producers and on
the microphone; the layers become the two variants of one master playlist (adaptive bitrate
with no transcode), the sound AAC (encoded once, muxed into both).

Like the recorder (media/recorder.py) it gets the shared encoded frames on the event loop and
only queues them (bounded: a full queue drops video up to the next keyframe and audio packet
by packet, counted); one writer thread per packaged room muxes, encodes the audio, writes
segments and playlists. Keyframe cadence: each layer is asked for a keyframe when its last is
``keyframe_interval`` old (Chromium sends one only when asked), through the producer's
throttled PLI path, so segments are cut every ~1–2 s.

Timeline: the stream starts at the first keyframe of either layer; each track is placed by
the arrival of its first frame, then spaced by its own RTP timestamps (media/recorder.py's
``Timeline``), so both variants and the audio share one clock and a player switching variant
lands at the same time.
"""

from __future__ import annotations

import logging
import math
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field

from media.aac import AUDIO_RATE, OpusToAac
from media.hls_playlist import MASTER, VariantInfo, master_playlist, write_atomically
from media.hls_variant import HlsVariant, PlaylistType
from media.instruments import HLS_DROPPED_FRAMES, HLS_SEGMENT_DELAY, HLS_SEGMENTS, HLS_STREAMS
from media.recorder import Timeline
from media.recording_mux import VIDEO_CLOCK

if TYPE_CHECKING:
    from media.frames import EncodedFrame
    from media.producer import Producer

log = logging.getLogger(__name__)

Layer = Literal["high", "low"]
# Audio this far behind the newest video (no microphone, DTX) is caught up with silence, so
# the muxer's interleaving never holds the video back waiting for sound.
AUDIO_LAG_FILL_SECONDS = 0.3
# The master playlist waits this long for every layer's first segment before it lists fewer.
MASTER_WAIT_SECONDS = 5.0


class HlsSettings(BaseModel):
    segment_seconds: float = Field(
        default=1.0, ge=0.5, le=10, description="a segment is cut at the first keyframe this late"
    )
    keyframe_interval: float = Field(
        default=1.0,
        gt=0.2,
        le=10,
        description="ask a layer for a keyframe when its last is this old",
    )
    window: int = Field(default=6, ge=3, le=60, description="segments in a live media playlist")
    playlist_type: PlaylistType = Field(
        default="live", description="live: a sliding window; event: every segment kept"
    )
    queue_frames: int = Field(default=600, ge=8, description="frames waiting before dropping")
    linger_seconds: float = Field(
        default=60, ge=0, description="a live stream's files stay this long after it ends"
    )


@dataclass(slots=True)
class _Item:
    layer: Layer | None  # None: audio
    data: bytes
    position: int  # video: 90 kHz, audio: 48 kHz samples, from the stream's start
    keyframe: bool = False
    size: tuple[int, int] | None = None
    arrived: float = 0.0
    fps: float | None = None  # the layer's measured frame rate, on keyframes


class _Layer:
    """The packager's view of one camera layer on the event loop."""

    def __init__(self, producer: Producer) -> None:
        self.producer = producer
        self.need_keyframe = True
        self.line: Timeline | None = None
        self.last_keyframe_at = -math.inf
        self.asked_at = -math.inf


class HlsPackager:
    # a sink without a network link (media/sinks.py)
    fraction_lost = 0
    fraction_lost_at = -math.inf

    def __init__(
        self,
        directory: Path,
        stream: str,
        room_id: str,
        high: Producer,
        low: Producer | None,
        audio: Producer | None,
        settings: HlsSettings | None = None,
    ) -> None:
        """``directory``: the room's (the master playlist's); ``stream``: this packager's
        subdirectory (a teacher who publishes again is a new stream, its names never reused)."""
        self.directory = directory
        self.stream = stream
        self.room_id = room_id
        self.settings = settings or HlsSettings()
        self.layers: dict[Layer, _Layer] = {}
        self.audio: Producer | None = None
        self._audio_line: Timeline | None = None
        self.closed = False
        self.dropped = 0
        self.keyframes_asked = 0
        self._start: float | None = None
        self.started_at: float | None = None
        self._queue: queue.Queue[_Item | None] = queue.Queue(self.settings.queue_frames)
        self._thread: threading.Thread | None = None
        self.failed = False
        self.variants: dict[Layer, HlsVariant] = {}  # the writer thread's
        self.segment_latencies: list[float] = []  # last frame's arrival → its segment on disk
        self._published: list[VariantInfo] = []
        self._fps: dict[Layer, float] = {}  # the writer thread's
        self.set_layers(high, low)
        self.set_audio(audio)

    @property
    def stream_directory(self) -> Path:
        return self.directory / self.stream

    # --- producers -------------------------------------------------------------------

    def set_layers(self, high: Producer, low: Producer | None) -> None:
        for name, producer in (("high", high), ("low", low)):
            layer: Layer = "high" if name == "high" else "low"
            current = self.layers.get(layer)
            if current is not None and current.producer is producer:
                continue
            if current is not None:
                if self in current.producer.sinks:
                    current.producer.sinks.remove(self)
                del self.layers[layer]
            if producer is not None and not self.closed:
                self.layers[layer] = _Layer(producer)
                producer.sinks.append(self)
                producer.request_keyframe()  # the stream starts at a keyframe

    def set_audio(self, audio: Producer | None) -> None:
        if audio is self.audio:
            return
        if self.audio is not None and self in self.audio.sinks:
            self.audio.sinks.remove(self)
        self.audio, self._audio_line = audio, None
        if audio is not None and not self.closed:
            audio.sinks.append(self)

    def producers(self) -> list[Producer]:
        found = [layer.producer for layer in self.layers.values()]
        return found + ([self.audio] if self.audio is not None else [])

    # --- FrameSink (the event loop) ----------------------------------------------------

    def on_frame(self, producer: Producer, frame: EncodedFrame) -> None:
        if self.closed or self.failed:
            return
        now = time.monotonic()
        if producer is self.audio:
            if self._start is None:
                return
            if self._audio_line is None:
                self._audio_line = Timeline(AUDIO_RATE, self._start, now, frame.timestamp)
            position = self._audio_line.position(frame.timestamp)
            self._put(_Item(None, frame.data, position, arrived=now))
            return
        for name, layer in self.layers.items():
            if layer.producer is producer:
                self._on_video(name, layer, frame, now)
                return

    def _on_video(self, name: Layer, layer: _Layer, frame: EncodedFrame, now: float) -> None:
        if frame.codec != "H264":
            return  # fMP4 HLS here holds H264 only (a VP8 publisher is not packaged)
        if frame.keyframe:
            layer.last_keyframe_at = now
        elif (
            now - layer.last_keyframe_at >= self.settings.keyframe_interval
            and now - layer.asked_at >= self.settings.keyframe_interval / 4
        ):
            layer.asked_at = now
            self.keyframes_asked += 1
            layer.producer.request_keyframe()
        if layer.need_keyframe:
            if not frame.keyframe or frame.width is None or frame.height is None:
                return
            layer.need_keyframe = False
        if self._start is None:
            self._open(now)
        if layer.line is None:
            assert self._start is not None
            layer.line = Timeline(VIDEO_CLOCK, self._start, now, frame.timestamp)
        size = (frame.width, frame.height) if frame.width and frame.height else None
        fps = layer.producer.clock.current_fps(now) if frame.keyframe else None
        position = layer.line.position(frame.timestamp)
        item = _Item(name, frame.data, position, frame.keyframe, size, now, fps)
        if not self._put(item):
            layer.need_keyframe = True  # what follows cannot be decoded without the dropped one

    def _open(self, now: float) -> None:
        self._start, self.started_at = now, time.time()
        self._thread = threading.Thread(target=self._write, name=f"hls-{self.room_id}", daemon=True)
        self._thread.start()
        HLS_STREAMS.inc()

    def _put(self, item: _Item) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            HLS_DROPPED_FRAMES.inc()
            return False

    def on_gap(self, producer: Producer) -> None:
        self._resume(producer)

    def on_cut(self, producer: Producer) -> None:
        self._resume(producer)

    def _resume(self, producer: Producer) -> None:
        for layer in self.layers.values():
            if layer.producer is producer:
                layer.need_keyframe = True

    def wants(self, producer: Producer) -> bool:
        return not self.closed

    # --- the writer thread -------------------------------------------------------------

    def _write(self) -> None:
        aac = OpusToAac(self._to_variants)
        newest_video = 0
        try:
            while (item := self._queue.get()) is not None:
                if item.layer is None:
                    aac.opus(item.data, item.position)
                    continue
                variant = self.variants.get(item.layer)
                if variant is None:
                    if item.size is None:
                        continue
                    variant = self.variants[item.layer] = self._variant(item)
                if item.fps:
                    self._fps[item.layer] = item.fps
                newest_video = max(newest_video, item.position)
                lag = newest_video * AUDIO_RATE // VIDEO_CLOCK - aac.written
                if lag > AUDIO_LAG_FILL_SECONDS * AUDIO_RATE:
                    aac.fill_to(newest_video * AUDIO_RATE // VIDEO_CLOCK - AUDIO_RATE // 10)
                before = (variant.width, variant.height)
                if variant.video(item.data, item.position, item.keyframe, item.size):
                    delay = time.monotonic() - item.arrived
                    self.segment_latencies.append(delay)
                    del self.segment_latencies[:-100]
                    HLS_SEGMENT_DELAY.observe(delay)
                    HLS_SEGMENTS.labels(item.layer).inc()
                    self._write_master()
                elif (variant.width, variant.height) != before:
                    self._write_master()  # a new resolution: RESOLUTION says it
            aac.flush()
        except Exception:
            self.failed = True
            log.exception("HLS packaging of %s failed", self.room_id)
        finally:
            for variant in self.variants.values():
                try:
                    variant.close()
                except Exception:
                    log.exception("closing the HLS variant %s failed", variant.name)

    def _variant(self, item: _Item) -> HlsVariant:
        assert item.size is not None and item.layer is not None
        return HlsVariant(
            self.stream_directory / item.layer,
            item.layer,
            item.data,
            *item.size,
            audio=self.audio is not None or "high" in self.layers,
            segment_seconds=self.settings.segment_seconds,
            window=self.settings.window,
            playlist_type=self.settings.playlist_type,
        )

    def _to_variants(self, packet: Any) -> None:
        data, pts = bytes(packet), int(packet.pts)
        for variant in self.variants.values():
            variant.audio(data, pts)

    def _write_master(self) -> None:
        """Rewritten when a variant appears or what it declares changes (a new resolution,
        a bitrate past what BANDWIDTH says): players reload the master only when they start."""
        infos = []
        for name, variant in self.variants.items():
            fps = self._fps.get(name)
            info = variant.info(round(fps, 3) if fps else None)
            if info is not None:
                infos.append(info)
        if not infos or not self._changed(infos):
            return
        expected = set(self.layers)  # a snapshot of the loop's (a dict's keys: atomic)
        waited = time.monotonic() - (self._start or 0.0)
        if len(infos) < len(expected) and waited < MASTER_WAIT_SECONDS:
            return  # a player reads the master once: wait for every layer's first segment
        self._published = infos
        write_atomically(self.directory / MASTER, master_playlist(self.stream, infos))

    def _changed(self, infos: list[VariantInfo]) -> bool:
        old = {v.name: v for v in self._published}
        for info in infos:
            before = old.get(info.name)
            if before is None or (before.width, before.height) != (info.width, info.height):
                return True
            if info.peak_bps > before.peak_bps or info.peak_bps < before.peak_bps * 0.7:
                return True
        return False

    # --- finishing ---------------------------------------------------------------------

    def detach(self) -> None:
        self.closed = True
        for producer in self.producers():
            if self in producer.sinks:
                producer.sinks.remove(self)

    def finish_blocking(self, remove: bool) -> None:
        """The last segments and every playlist's ENDLIST; ``remove``: the stream's files too
        (a live window nobody can play any more)."""
        self.detach()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
            HLS_STREAMS.dec()
        if remove:
            shutil.rmtree(self.stream_directory, ignore_errors=True)
