"""An RTMP push (OBS, a 录播 host) as the teacher of the lesson its classroom has open now.

The same supervision as an RTSP camera (``lessons.rtsp``): while the source's classroom
has a lesson whose room is open, the source is that room's teacher (``publish_only``) and
the SFU hosting the room *expects* its push (``MediaPlane.pull`` with the stream key's
SHA-256; ``media.rtmp_server`` accepts a publish whose key hashes to it). Outside an open
lesson no SFU expects the key, so a push is refused with an RTMP error status; the SFU tells
the refusal (``SourceRegistry.refused_push``) and the source's status shows it as its last
error. When the lesson ends, or the source is deleted, the participant leaves and the SFU
closes the push's connection.

The SFU's push status (waiting for the encoder, connected, reconnecting after the encoder
went away, refused with the encoder setting to change) becomes the source's status.
"""

from __future__ import annotations

from typing import ClassVar

from contracts.media import PullRequest
from lessons.rtsp import RtspSupervisor
from lessons.sources import Source, SourceKind


class RtmpSupervisor(RtspSupervisor):
    kind: ClassVar[SourceKind] = SourceKind.rtmp
    lease_prefix: ClassVar[str] = "kv:rtmp-push:"
    device: ClassVar[tuple[str, str]] = ("the encoder", "the encoder")

    def _pull_request(self, source: Source) -> PullRequest | None:
        digest = source.stream_key_sha256
        return PullRequest(push_key_sha256=digest) if digest is not None else None
