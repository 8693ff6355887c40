"""A process that records a lesson until it is killed (the crash test's victim).

``python recording_child.py DIRECTORY VIDEO AUDIO``: an SFU worker records an aiortc teacher;
once the recording has started it prints one JSON line (the part's working file and when its
first frame arrived), then a line per checkpoint (every 2 s), and records on until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from media_peers import Peer, load_clip, wait_for
from recording_probe import KeepEverything

from contracts.recording import RecordingCheckpoint
from contracts.rooms import Role
from media.recorder import RecorderSettings
from media.worker import Worker, WorkerSettings

CHECKPOINT_SECONDS = 2.0


class PrintedCheckpoints(KeepEverything):
    """The checkpoints go to stdout: the records of a killed process are the parent's."""

    async def checkpoint(self, checkpoint: RecordingCheckpoint) -> None:
        print(checkpoint.model_dump_json(), flush=True)


async def main(directory: Path, video: Path, audio: Path) -> None:
    settings = WorkerSettings(
        recordings_dir=directory,
        recorder=RecorderSettings(checkpoint_interval=CHECKPOINT_SECONDS),
    )
    worker = Worker(settings, recording=PrintedCheckpoints())
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(load_clip(audio, "audio"), [(load_clip(video, "video"), "video/H264")])
    await teacher.connect()

    def recorder_started() -> bool:
        router = worker.routers.get("room-1")
        recorder = router.recording.recorder if router and router.recording else None
        return recorder is not None and recorder.started_at is not None

    if not await wait_for(recorder_started, 30):
        raise SystemExit("the recording did not start")
    router = worker.routers["room-1"]
    assert router.recording is not None and router.recording.recorder is not None
    recorder = router.recording.recorder
    line = {"partial": str(recorder.partial_path), "started_at": recorder.started_at}
    print(json.dumps(line), flush=True)
    await asyncio.Event().wait()  # until SIGKILL


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])))
