"""A surviving node finishes a part only when its writer is dead (no heartbeat key) and the
working file has gone quiet; a part another survivor claimed is left to it; its own parts and a live node's are
left alone (media/recording_adoption.py)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

from recording_probe import KeepEverything
from support.clips import make_clip

from contracts.nodes import NodeDirectory, NodeInfo
from contracts.store import MemoryStore
from media.recorder import PARTIAL, WRITER
from media.recording_adoption import ADOPT_KEY, OrphanAdoption
from media.worker import Worker, WorkerSettings

NAME = "famous-1/20261102T010203Z-teacher-part1.mp4"


def _fragmented(tmp_path: Path, target: Path) -> None:
    """A working file as a recorder leaves it: fragmented MP4, no index at the end."""
    clip = make_clip(tmp_path, "clip.ts", seconds=3)
    target.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", str(clip), "-c", "copy",
         "-f", "mp4", "-movflags", "frag_keyframe+empty_moov+default_base_moof", str(target)],
        check=True,
    )  # fmt: skip


async def test_only_a_dead_nodes_quiet_part_is_adopted_and_by_one_node(tmp_path: Path) -> None:
    recordings = tmp_path / "recordings"
    partial = recordings / (NAME + PARTIAL)
    _fragmented(tmp_path, partial)
    writer = partial.with_name(partial.name + WRITER)
    writer.write_text("sfu-a")
    store = MemoryStore()
    await store.start()
    hooks = KeepEverything()
    b = Worker(WorkerSettings(recordings_dir=recordings), hooks)
    c = Worker(WorkerSettings(recordings_dir=recordings), KeepEverything())
    try:
        survivor = OrphanAdoption(b, store, "sfu-b", quiet_seconds=10)
        other = OrphanAdoption(c, store, "sfu-c", quiet_seconds=10)
        mine = OrphanAdoption(b, store, "sfu-a", quiet_seconds=10)
        # still growing (changed just now): nobody touches it
        assert await survivor.adopt() == 0
        quiet = time.time() - 30
        os.utime(partial, (quiet, quiet))
        # its writer is alive (a paused encoder): left alone
        await NodeDirectory(store).register(NodeInfo(id="sfu-a", address="127.0.0.1", capacity=2))
        assert await survivor.adopt() == 0
        assert await mine.adopt() == 0  # a node never adopts its own
        await NodeDirectory(store).unregister("sfu-a")  # its heartbeat expired
        # another survivor claimed it first: this one leaves it
        key = ADOPT_KEY.format(file=NAME + PARTIAL)
        await store.set(key, "sfu-c", 60)
        assert await survivor.adopt() == 0 and partial.exists()
        await store.delete(key)
        assert await survivor.adopt() == 1
        assert await other.adopt() == 0  # finished already
    finally:
        await b.close()
        await c.close()
        await store.close()
    (part,) = hooks.parts
    assert part.file == NAME and part.recovered and part.part == 1
    assert (recordings / NAME).is_file() and not partial.exists() and not writer.exists()
    assert 2.0 < part.duration_seconds < 4.0
