"""An SRT encoder (a 录播 host, OBS, a hardware encoder) as the teacher of the lesson its
classroom has open now: the same supervision as an RTSP camera (``lessons.rtsp``). While the
lesson is open, the SFU hosting its room opens the source's SRT URL (``media.srt_origin``: a
supervised ffmpeg remuxing to MPEG-TS, listening for the encoder's call or calling it); when
the lesson ends, or the source is deleted, the pull and its ffmpeg stop."""

from __future__ import annotations

from typing import ClassVar

from contracts.media import PullRequest
from lessons.rtsp import RtspSupervisor
from lessons.sources import Source, SourceKind


class SrtSupervisor(RtspSupervisor):
    kind: ClassVar[SourceKind] = SourceKind.srt
    lease_prefix: ClassVar[str] = "kv:srt-pull:"
    device: ClassVar[tuple[str, str]] = ("the encoder", "the encoder")

    def _pull_request(self, source: Source) -> PullRequest | None:
        return source.srt.pull_request() if source.srt is not None else None
