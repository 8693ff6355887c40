"""Parts a crash left behind: a ``….mp4.partial`` that nobody writes any more is finished when
the SFU starts again — what is readable of its fragments is remuxed with its index in front
(no decode), moved to its final name and reported like any finished part.

A part still being written is never touched: the file of a live part grows every fragment
(~2 s), so only one unchanged for ``STALE_SECONDS`` counts as left behind (a directory
shared by several nodes then stays safe).
"""

from __future__ import annotations

import calendar
import contextlib
import logging
import re
import time
from pathlib import Path

from contracts.recording import RecordingFinished
from media.recorder import PARTIAL, WRITER
from media.recording_mux import remux_faststart, sha256_file

log = logging.getLogger(__name__)

STALE_SECONDS = 120.0
FASTSTART = ".faststart" + PARTIAL
# what media.recording_room.part_name writes: <UTC time>-<participant>-part<n>.mp4, and
# <UTC time>-<participant>-part<n>-screen.mp4 for a screen share's part
PART_NAME = re.compile(r"^(\d{8}T\d{6}Z)-(.+)-part(\d+)(-screen)?\.mp4$")


def left_behind(directory: Path, now: float | None = None) -> list[Path]:
    """Working files of parts nobody writes any more (oldest first)."""
    if not directory.is_dir():
        return []
    now = time.time() if now is None else now
    found = [
        p
        for p in directory.rglob(f"*.mp4{PARTIAL}")
        if PART_NAME.match(p.name[: -len(PARTIAL)]) and now - p.stat().st_mtime >= STALE_SECONDS
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def writer_of(partial: Path) -> str | None:
    """The SFU node that wrote (or writes) this working file, as it noted next to it."""
    try:
        return partial.with_name(partial.name + WRITER).read_text().strip() or None
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def written_elsewhere(
    directory: Path, me: str, quiet_seconds: float, now: float | None = None
) -> list[tuple[Path, str]]:
    """Working files in a shared directory that another node noted as its own and that
    stopped growing ``quiet_seconds`` ago (a live part grows every fragment, ~2 s), with that
    node's id: the candidates whose writer may have died (oldest first)."""
    if not directory.is_dir():
        return []
    now = time.time() if now is None else now
    found: list[tuple[float, Path, str]] = []
    for p in directory.rglob(f"*.mp4{PARTIAL}"):
        if not PART_NAME.match(p.name[: -len(PARTIAL)]):
            continue
        writer = writer_of(p)
        try:
            changed = p.stat().st_mtime
        except FileNotFoundError:
            continue  # finished meanwhile
        if writer is not None and writer != me and now - changed >= quiet_seconds:
            found.append((changed, p, writer))
    return [(p, writer) for _, p, writer in sorted(found)]


def recover(directory: Path, partial: Path) -> RecordingFinished | None:
    """Finish one part a crash left (blocking: run it in a thread). None when nothing of it
    could be read (the working file is then kept, for a person to look at)."""
    final = partial.with_name(partial.name[: -len(PARTIAL)])
    match = PART_NAME.match(final.name)
    if match is None or final.exists():
        return None
    stamp, participant, part, screen = match.groups()
    started_at = float(calendar.timegm(time.strptime(stamp, "%Y%m%dT%H%M%SZ")))
    ended_at = partial.stat().st_mtime
    faststart = final.with_name(final.name + FASTSTART)
    try:
        duration = remux_faststart(partial, faststart, readable_only=True)
    except Exception:
        log.exception("the recording %s left by a crash cannot be read", partial)
        with contextlib.suppress(FileNotFoundError):
            faststart.unlink()
        return None
    faststart.replace(final)
    partial.unlink()
    with contextlib.suppress(FileNotFoundError):
        partial.with_name(partial.name + WRITER).unlink()
    return RecordingFinished(
        room_id=final.parent.name,
        participant_id=participant[:64],
        part=int(part),
        track="screen" if screen else "camera",
        file=str(final.relative_to(directory)),
        sha256=sha256_file(final),
        bytes=final.stat().st_size,
        started_at=started_at,
        ended_at=ended_at,
        duration_seconds=duration,
        recovered=True,
    )
