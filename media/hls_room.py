"""When a room is packaged as HLS: from the teacher's camera appearing to the room closing.

The policy is not the SFU's: ``HlsHooks.should_package`` answers once per room. A packager
starts when the teacher's camera (its high layer) appears, with the low layer as the second
variant when the teacher sends one; it stops when the room closes. A teacher who publishes
again (a new camera producer) is a new *stream* (its own directory and names, the master
playlist rewritten to point at it), so a CDN never serves an old segment under a new name.
The files of a stream that ended are removed (a live window nobody can play any more);
``event`` playlists are kept.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.hls import HlsHooks, room_directory_name
from contracts.rooms import Role
from media.hls_packager import HlsPackager, HlsSettings
from media.hls_playlist import MASTER

if TYPE_CHECKING:
    from media.transport import Transport

log = logging.getLogger(__name__)


class RoomHls:
    def __init__(
        self,
        room_id: str,
        directory: Path,
        hooks: HlsHooks,
        transports: Callable[[], Iterable[Transport]],
        settings: HlsSettings | None = None,
    ) -> None:
        self.room_id = room_id
        self.directory = directory / room_directory_name(room_id)
        self.hooks = hooks
        self.settings = settings or HlsSettings()
        self._transports = transports
        self.wanted: bool | None = None
        self._asking: asyncio.Task[None] | None = None
        self.packager: HlsPackager | None = None
        self.streams = 0
        self.closed = False
        self._finishing: set[asyncio.Task[None]] = set()

    def update(self) -> None:
        """Match the packaging to who publishes now (the router calls it on every change)."""
        if self.closed:
            return
        teacher = next(
            (t for t in self._transports() if t.participant.role == Role.teacher and not t.closed),
            None,
        )
        camera = teacher.producer_group("video", "camera") if teacher else {}
        high, low = camera.get("high"), camera.get("low")
        audio = teacher.producer_group("audio").get("main") if teacher else None
        if self.wanted is None:
            if high is not None and self._asking is None:
                self._asking = asyncio.get_running_loop().create_task(self._ask())
            return
        packager = self.packager
        if packager is not None:
            current = packager.layers.get("high")
            if current is None or current.producer is not high or current.producer.closed:
                self._finish(packager)
                packager = self.packager = None
        if not self.wanted or high is None:
            return
        if packager is None:
            self.streams += 1
            stream = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{self.streams}"
            packager = self.packager = HlsPackager(
                self.directory, stream, self.room_id, high, low, audio, self.settings
            )
            log.info("HLS of %s: stream %s", self.room_id, stream)
            if self.streams == 1 and self.settings.playlist_type == "live":
                # a live window a previous process left (it stopped before its linger
                # ended): a room is hosted by one node at a time, so nobody plays it now
                threading.Thread(
                    target=_remove_others, args=(self.directory, stream), daemon=True
                ).start()
            return
        packager.set_layers(high, low)
        packager.set_audio(audio)

    async def _ask(self) -> None:
        try:
            self.wanted = await self.hooks.should_package(self.room_id)
        except Exception:
            log.exception("the HLS policy of %s failed: not packaging it", self.room_id)
            self.wanted = False
        self.update()

    def _finish(self, packager: HlsPackager) -> None:
        """The last segments and ENDLIST (players see the end); a live stream's files stay
        ``linger_seconds`` for players still fetching its last window, then go."""
        packager.detach()
        task = asyncio.get_running_loop().create_task(self._end(packager))
        self._finishing.add(task)
        task.add_done_callback(self._finishing.discard)

    async def _end(self, packager: HlsPackager) -> None:
        try:
            await asyncio.to_thread(packager.finish_blocking, False)
        except Exception:
            log.exception("ending the HLS stream %s failed", packager.stream)
        if self.settings.playlist_type == "live":
            asyncio.get_running_loop().call_later(
                self.settings.linger_seconds, _remove_in_thread, packager
            )

    async def close(self) -> None:
        """The room closed: the last segments and ENDLIST written (players see the end), then
        the live files removed."""
        self.closed = True
        if self._asking is not None and not self._asking.done():
            self._asking.cancel()
        if self.packager is not None:
            self._finish(self.packager)
            self.packager = None
        while self._finishing:
            await asyncio.gather(*self._finishing, return_exceptions=True)


def _remove_in_thread(packager: HlsPackager) -> None:
    threading.Thread(target=_remove_stream, args=(packager,), daemon=True).start()


def _remove_others(directory: Path, keep: str) -> None:
    try:
        entries = list(directory.iterdir())
    except OSError:
        return
    for entry in entries:
        if entry.is_dir() and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)


def _remove_stream(packager: HlsPackager) -> None:
    shutil.rmtree(packager.stream_directory, ignore_errors=True)
    master = packager.directory / MASTER
    try:
        if f"{packager.stream}/" in master.read_text():
            master.unlink()
            packager.directory.rmdir()  # when nothing else is left in it
    except OSError:
        pass
