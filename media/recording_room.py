"""When a room is recorded: from the teacher's camera appearing to the room closing.

The policy (which rooms are kept) is not the SFU's: ``RecordingHooks.should_record`` answers
once per room (sanke asks the room's kind). A part starts when the teacher's camera (its high
layer) appears, ends when the teacher leaves or the room closes; a new part starts when the
teacher publishes again (a new producer). Finished parts go to ``RecordingHooks.finished``.

The teacher's screen share (the producer of source ``screen``) is recorded as its own track
while a camera part is written: a video-only file per share (``…-part<n>-screen.mp4``, its own
part numbers), finished when the share stops or when the camera part ends (the switch, the
teacher leaving, the room closing); a share started again is a new screen part.

The per-lesson switch (``set_on``, the teacher's or a coordinator's): off finishes the part
being written (its remux and hash, as when the teacher leaves), on again opens a new part.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable, Coroutine, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.recording import RecordedTrack, RecordingCheckpoint, RecordingHooks
from contracts.rooms import Role
from media.recorder import PARTIAL, Recorder, RecorderSettings

if TYPE_CHECKING:
    from media.transport import Transport

log = logging.getLogger(__name__)

_UNSAFE = re.compile(r"[^\w.\-]")
_PART = re.compile(r"^\d{8}T\d{6}Z-.+-part(\d+)(-screen)?\.mp4$")


def part_name(
    room_id: str, participant_id: str, part: int, at: float, track: RecordedTrack = "camera"
) -> str:
    """``<room>/<UTC time>-<participant>-part<n>.mp4`` (a screen share's part:
    ``…-part<n>-screen.mp4``), safe as a path whatever the ids hold."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(at))
    room = _UNSAFE.sub("_", room_id)
    who = _UNSAFE.sub("_", participant_id)
    suffix = "-screen" if track == "screen" else ""
    return f"{room}/{stamp}-{who}-part{part}{suffix}.mp4"


class RoomRecording:
    def __init__(
        self,
        room_id: str,
        directory: Path,
        hooks: RecordingHooks,
        transports: Callable[[], Iterable[Transport]],
        settings: RecorderSettings | None = None,
    ) -> None:
        self.room_id = room_id
        self.directory = directory
        self.hooks = hooks
        self.settings = settings or RecorderSettings()
        self._transports = transports
        self.wanted: bool | None = None  # the policy's answer, once asked
        self.on = True  # the per-lesson switch (signaling decides who may turn it)
        self._asking: asyncio.Task[None] | None = None
        self.recorder: Recorder | None = None
        self.parts = 0
        self.screen_recorder: Recorder | None = None  # the screen share, while a part runs
        self.screen_parts = 0
        self.closed = False
        self._finishing: set[asyncio.Task[None]] = set()  # parts finishing, checkpoints

    def update(self) -> None:
        """Match the recording to who publishes now (the router calls it on every change)."""
        if self.closed:
            return
        teacher = next(
            (t for t in self._transports() if t.participant.role == Role.teacher and not t.closed),
            None,
        )
        video = teacher.producer_group("video", "camera").get("high") if teacher else None
        audio = teacher.producer_group("audio").get("main") if teacher else None
        screen = teacher.producer_group("video", "screen").get("high") if teacher else None
        if self.wanted is None:
            if video is not None and self._asking is None:
                self._asking = asyncio.get_running_loop().create_task(self._ask())
            return
        recorder = self.recorder
        if recorder is not None and (
            not self.on or recorder.video is not video or recorder.video.closed
        ):
            self._finish(recorder)
            recorder = self.recorder = None
        sharing = self.screen_recorder
        if sharing is not None and (
            recorder is None or sharing.video is not screen or sharing.video.closed
        ):
            # the share stopped, or the camera part it goes with ended
            self._finish(sharing)
            self.screen_recorder = None
        if not self.wanted or not self.on or video is None or teacher is None:
            return
        if recorder is None:
            self.parts, name = self._free(teacher.id, self.parts + 1, "camera")
            recorder = self.recorder = Recorder(
                self.directory,
                name,
                self.room_id,
                teacher.id,
                self.parts,
                video,
                audio,
                self.settings,
                on_checkpoint=self._checkpoint,
            )
            log.info("recording %s: part %d to %s", self.room_id, self.parts, name)
        recorder.set_audio(audio)
        if screen is not None and self.screen_recorder is None:
            self.screen_parts, name = self._free(teacher.id, self.screen_parts + 1, "screen")
            self.screen_recorder = Recorder(
                self.directory,
                name,
                self.room_id,
                teacher.id,
                self.screen_parts,
                screen,
                None,  # video only: the teacher's voice is in the camera's part
                self.settings,
                on_checkpoint=self._checkpoint,
                track="screen",
            )
            log.info("recording %s: screen part %d to %s", self.room_id, self.screen_parts, name)

    def set_on(self, on: bool) -> None:
        """Stop (the part being written is finished) or restart (a new part) the recording.
        Signaling allows it only in a room the policy records, so turning it on also answers
        a policy that said no because the room's switch was off when it was asked."""
        self.on = on
        if on and self.wanted is False:
            self.wanted = True
        self.update()

    def _free(self, participant_id: str, part: int, track: RecordedTrack) -> tuple[int, str]:
        """The first part number from ``part`` on whose name is not taken (the room was
        opened again within the same second), and that name; past the parts of this track
        already in the room's directory (written before, by this node or by another that
        shares it: after a failover the survivor's part is the second)."""
        part = max(part, self._last_part_on_disk(track) + 1)
        name = part_name(self.room_id, participant_id, part, time.time(), track)
        while self._taken(name):
            part += 1
            name = part_name(self.room_id, participant_id, part, time.time(), track)
        return part, name

    def _last_part_on_disk(self, track: RecordedTrack) -> int:
        room = Path(part_name(self.room_id, "x", 1, 0.0, track)).parent
        try:
            names = [p.name for p in (self.directory / room).iterdir()]
        except OSError:
            return 0
        found = [0]
        for name in names:
            match = _PART.match(name.removesuffix(PARTIAL))
            if match is not None and (match.group(2) is not None) == (track == "screen"):
                found.append(int(match.group(1)))
        return max(found)

    def _taken(self, name: str) -> bool:
        final = self.directory / name
        return final.exists() or final.with_name(final.name + PARTIAL).exists()

    async def _ask(self) -> None:
        try:
            self.wanted = await self.hooks.should_record(self.room_id)
        except Exception:
            log.exception("the recording policy of %s failed: not recording it", self.room_id)
            self.wanted = False
        self.update()

    def _checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        self._track(self._report_checkpoint(checkpoint))

    async def _report_checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        try:
            await self.hooks.checkpoint(checkpoint)
        except Exception:
            log.exception("a checkpoint of %s was not put in the records", checkpoint.file)

    def _track(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    def _finish(self, recorder: Recorder) -> None:
        recorder.detach()  # no frame more, now; the writing ends off the loop
        self._track(self._finish_part(recorder))

    async def _finish_part(self, recorder: Recorder) -> None:
        try:
            finished = await recorder.finish()
        except Exception:
            log.exception("finishing the recording %s failed", recorder.name)
            return
        if finished is None:
            return
        log.info(
            "recorded %s: %.1f s, %d bytes, %d frames dropped",
            finished.file,
            finished.duration_seconds,
            finished.bytes,
            finished.dropped_frames,
        )
        try:
            await self.hooks.finished(finished)
        except Exception:
            log.exception("recording %s is finished but was not put in the records", finished.file)

    async def close(self) -> None:
        """The room closed: finish the part being written and wait for every part."""
        self.closed = True
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
        for recorder in (self.recorder, self.screen_recorder):
            if recorder is not None:
                self._finish(recorder)
        self.recorder = self.screen_recorder = None
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)
