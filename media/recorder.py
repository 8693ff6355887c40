"""A Recorder: one part of a lesson's recording, a FrameSink on the teacher's camera (its high
layer) and microphone producers — or, for the screen share (``track="screen"``), on the screen
producer alone: a video-only file of its own.

It gets the same shared encoded frames a browser's Consumer gets (never decoded) and hands
them to its own writer thread through a bounded queue, so the SFU never waits for the disk:
when the queue is full (a slow disk) video is dropped up to the next keyframe and audio
packet by packet, and the drops are counted; memory never grows.

Keyframe cadence: Chromium sends an IDR only when asked, so while recording the recorder asks
the camera for one when the last is ~2 s old (through the producer's throttled PLI path).
Each keyframe starts an MP4 fragment: a crash loses at most the fragment being written.

Timing: each track's RTP timestamps give the spacing of its frames; where a track starts on
the part's timeline comes from the arrival time of its first frame (RTP timestamps start at
0 per producer and RTCP sender reports are not reachable through the SFU's seams), so audio
and video are aligned to within the arrival jitter of those first frames (tens of ms).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from contracts.recording import RecordedTrack, RecordingCheckpoint, RecordingFinished
from media.aac import AUDIO_RATE
from media.instruments import RECORDING_DROPPED_FRAMES, RECORDING_PARTS, RECORDINGS_WRITING
from media.recording_mux import (
    VIDEO_CLOCK,
    FragmentedMp4Writer,
    remux_faststart,
    sha256_file,
)

if TYPE_CHECKING:
    from media.frames import EncodedFrame
    from media.producer import Producer

log = logging.getLogger(__name__)

PARTIAL = ".partial"  # a file being written: never listed, never served
# Next to a working file: the id of the SFU node writing it, so that another node sharing the
# directory can tell a part whose writer died (media/recording_recovery.py, ``orphaned``).
WRITER = ".node"
RTP_WRAP = 1 << 32


class RecorderSettings(BaseModel):
    keyframe_interval: float = Field(
        default=2.0, gt=0.2, le=60, description="ask for a keyframe when the last is this old"
    )
    queue_frames: int = Field(
        default=600, ge=8, description="frames waiting for the disk before dropping (~7 s)"
    )
    checkpoint_interval: float = Field(
        default=60.0, ge=1, description="seconds between hashes of the file written so far"
    )
    node_id: str | None = Field(
        default=None, max_length=128, description="written next to a working file: its writer"
    )


@dataclass(slots=True)
class _Queued:
    video: bool
    data: bytes
    position: int  # video: 90 kHz, audio: 48 kHz samples, from the part's start
    keyframe: bool = False


class Timeline:
    """One track's frames on the part's timeline: first arrival, then RTP spacing (unwrapped)."""

    def __init__(self, clock: int, start: float, arrival: float, timestamp: int) -> None:
        self._base = round((arrival - start) * clock)
        self._last = timestamp
        self._unwrapped = 0

    def position(self, timestamp: int) -> int:
        step = (timestamp - self._last) % RTP_WRAP
        if step >= RTP_WRAP // 2:
            step -= RTP_WRAP  # a frame from just before the last one (reordered)
        self._last = timestamp
        self._unwrapped += step
        return self._base + self._unwrapped


class Recorder:
    # a sink without a network link (media/sinks.py)
    fraction_lost = 0
    fraction_lost_at = -math.inf

    def __init__(
        self,
        directory: Path,
        name: str,
        room_id: str,
        participant_id: str,
        part: int,
        video: Producer,
        audio: Producer | None,
        settings: RecorderSettings | None = None,
        on_checkpoint: Callable[[RecordingCheckpoint], None] = lambda checkpoint: None,
        track: RecordedTrack = "camera",
    ) -> None:
        self.directory = directory
        self.track: RecordedTrack = track  # "screen": video only, no audio track at all
        self.name = name  # the final file, relative to ``directory``
        self.room_id, self.participant_id, self.part = room_id, participant_id, part
        self.settings = settings or RecorderSettings()
        self.video: Producer = video
        self.audio: Producer | None = None
        self.closed = False
        self.need_keyframe = True
        self.dropped = 0
        self.keyframes = 0
        self.keyframes_asked = 0
        self._queue: queue.Queue[_Queued | None] = queue.Queue(self.settings.queue_frames)
        self._writer: FragmentedMp4Writer | None = None
        self._thread: threading.Thread | None = None
        self._failed = False
        self._start: float | None = None  # monotonic arrival of the first keyframe
        self.started_at: float | None = None  # its wall clock
        self._video_line: Timeline | None = None
        self._audio_line: Timeline | None = None
        self._last_keyframe_at = -math.inf
        self._asked_at = -math.inf
        self.width: int | None = None
        self.height: int | None = None
        self._loop = asyncio.get_running_loop()
        self._on_checkpoint = on_checkpoint
        self._prefix = hashlib.sha256()  # of the working file's bytes hashed so far
        self._hashed = 0
        video.sinks.append(self)
        self.set_audio(audio)
        video.request_keyframe()  # the part starts at a keyframe

    @property
    def partial_path(self) -> Path:
        return self.directory / (self.name + PARTIAL)

    @property
    def writer_path(self) -> Path:
        return self.directory / (self.name + PARTIAL + WRITER)

    def set_audio(self, audio: Producer | None) -> None:
        """The teacher's microphone (again, or a new one after a republish)."""
        if self.track == "screen":
            audio = None  # the teacher's voice is in the camera's part
        if audio is self.audio:
            return
        if self.audio is not None and self in self.audio.sinks:
            self.audio.sinks.remove(self)
        self.audio, self._audio_line = audio, None
        if audio is not None and not self.closed:
            audio.sinks.append(self)

    # --- FrameSink ------------------------------------------------------------------

    def on_frame(self, producer: Producer, frame: EncodedFrame) -> None:
        if self.closed or self._failed:
            return
        now = time.monotonic()
        if producer is self.video:
            self._on_video(producer, frame, now)
        elif producer is self.audio and self._start is not None:
            if self._audio_line is None:
                self._audio_line = Timeline(AUDIO_RATE, self._start, now, frame.timestamp)
            self._put(_Queued(False, frame.data, self._audio_line.position(frame.timestamp)))

    def _on_video(self, producer: Producer, frame: EncodedFrame, now: float) -> None:
        if frame.codec != "H264":
            return  # an MP4 of this recorder holds H264 only (VP8 publishers: not recorded)
        if frame.keyframe:
            self._last_keyframe_at = now
            self.keyframes += 1
        elif (
            now - self._last_keyframe_at >= self.settings.keyframe_interval
            and now - self._asked_at >= self.settings.keyframe_interval / 4
        ):
            # Asked again while none comes: Chromium ignores a request within 300 ms of
            # the last, and a keyframe can be lost upstream.
            self._asked_at = now
            self.keyframes_asked += 1
            producer.request_keyframe()
        if self.need_keyframe:
            if not frame.keyframe:
                return
            self.need_keyframe = False
        if self._start is None:
            if frame.width is None or frame.height is None:
                self.need_keyframe = True
                return
            try:
                self._open(frame, now)
            except OSError:
                # No place to write (a read-only disk, no permission): the lesson goes on.
                log.exception("recording %s cannot start", self.name)
                self._failed = True
                return
        assert self._video_line is not None
        position = self._video_line.position(frame.timestamp)
        if not self._put(_Queued(True, frame.data, position, frame.keyframe)):
            self.need_keyframe = True  # what follows cannot be decoded without the dropped one

    def _open(self, frame: EncodedFrame, now: float) -> None:
        assert frame.width is not None and frame.height is not None
        self._start, self.started_at = now, time.time()
        self.width, self.height = frame.width, frame.height
        self._video_line = Timeline(VIDEO_CLOCK, now, now, frame.timestamp)
        self.partial_path.parent.mkdir(parents=True, exist_ok=True)
        if self.settings.node_id:
            self.writer_path.write_text(self.settings.node_id)
        first, width, height = frame.data, frame.width, frame.height
        self._thread = threading.Thread(
            target=self._write, args=(first, width, height), name=f"rec-{self.name}", daemon=True
        )
        self._thread.start()
        RECORDINGS_WRITING.inc()

    def _put(self, item: _Queued) -> bool:
        try:
            self._queue.put_nowait(item)
            return True
        except queue.Full:
            self.dropped += 1
            RECORDING_DROPPED_FRAMES.labels("video" if item.video else "audio").inc()
            return False

    def on_gap(self, producer: Producer) -> None:
        # The producer asks for the keyframe itself (this sink wants its frames).
        if producer is self.video:
            self.need_keyframe = True

    def on_cut(self, producer: Producer) -> None:
        if producer is self.video:
            self.need_keyframe = True

    def wants(self, producer: Producer) -> bool:
        return not self.closed

    # --- the writer thread ------------------------------------------------------------

    def _write(self, first: bytes, width: int, height: int) -> None:
        try:
            writer = self._writer = FragmentedMp4Writer(
                self.partial_path, first, width, height, audio=self.track == "camera"
            )
            due = time.monotonic() + self.settings.checkpoint_interval
            while (item := self._queue.get()) is not None:
                if item.video:
                    writer.video(item.data, item.position, item.keyframe)
                else:
                    writer.audio(item.data, item.position)
                if time.monotonic() >= due:
                    due += self.settings.checkpoint_interval
                    self._checkpoint()
            writer.close()
        except Exception:
            self._failed = True
            log.exception("recording %s failed", self.name)

    def _checkpoint(self) -> None:
        """Hash what was appended to the working file since the last checkpoint (it only
        grows: fragments are appended, nothing before them is rewritten)."""
        with self.partial_path.open("rb") as f:
            f.seek(self._hashed)
            while chunk := f.read(1 << 20):
                self._prefix.update(chunk)
                self._hashed += len(chunk)
        checkpoint = RecordingCheckpoint(
            room_id=self.room_id,
            participant_id=self.participant_id,
            part=self.part,
            track=self.track,
            file=self.name,
            bytes=self._hashed,
            sha256=self._prefix.copy().hexdigest(),
        )
        self._loop.call_soon_threadsafe(self._on_checkpoint, checkpoint)

    # --- finishing ----------------------------------------------------------------------

    def detach(self) -> None:
        """Take no more frames (the producers may live on: a new part takes over)."""
        self.closed = True
        for producer in (self.video, self.audio):
            if producer is not None and self in producer.sinks:
                producer.sinks.remove(self)

    async def finish(self) -> RecordingFinished | None:
        """Write the last fragment, remux it with its index in front, hash it, move it to its
        final name. None when nothing was recorded."""
        self.detach()
        if self._thread is None:
            return None
        ended_at = time.time()
        try:
            finished = await asyncio.to_thread(self._finish_blocking, ended_at)
        except Exception:
            RECORDING_PARTS.labels("failed").inc()
            raise
        finally:
            RECORDINGS_WRITING.dec()
        if finished is None:
            RECORDING_PARTS.labels("failed").inc()
        else:
            RECORDING_PARTS.labels("faststart" if finished.faststart else "fragmented").inc()
        return finished

    def _finish_blocking(self, ended_at: float) -> RecordingFinished | None:
        assert self._thread is not None and self.started_at is not None
        self._queue.put(None)
        self._thread.join()
        writer = self._writer
        if writer is None or writer.video_frames == 0:
            for path in (self.partial_path, self.writer_path):
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
            return None
        final = self.directory / self.name
        faststart = final.with_name(final.name + ".faststart" + PARTIAL)
        try:
            remux_faststart(self.partial_path, faststart)
            faststart.replace(final)
            self.partial_path.unlink()
            remuxed = True
        except Exception:
            # The fragmented file still plays (and seeks, slowly): better than nothing.
            log.exception("faststart remux of %s failed: keeping it fragmented", self.name)
            with contextlib.suppress(FileNotFoundError):
                faststart.unlink()
            self.partial_path.replace(final)
            remuxed = False
        with contextlib.suppress(FileNotFoundError):
            self.writer_path.unlink()  # after the working file is gone: never orphaned meanwhile
        return RecordingFinished(
            room_id=self.room_id,
            participant_id=self.participant_id,
            part=self.part,
            track=self.track,
            file=self.name,
            sha256=sha256_file(final),
            bytes=final.stat().st_size,
            started_at=self.started_at,
            ended_at=ended_at,
            duration_seconds=writer.duration_seconds,
            width=self.width,
            height=self.height,
            video_frames=writer.video_frames,
            audio_frames=writer.audio_frames,
            dropped_frames=self.dropped,
            faststart=remuxed,
        )
