"""A Producer whose frames do not come from an RTP receiver, delivering to a sink that is not
a browser: the seams an ingest source and a recorder plug into (contracts of media/origin.py
and media/sinks.py), driven with a real H264 clip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from support.clips import load_clip, make_clip

from media.frames import EncodedFrame
from media.origin import InboundStats, OnFrame
from media.producer import PLI_INTERVAL, Producer


class ClipOrigin:
    """What an ingest source is to a producer: frames pushed in, keyframes asked of it."""

    def __init__(self) -> None:
        self.on_frame: OnFrame | None = None
        self.on_gap: Callable[[], None] | None = None
        self.keyframe_requests = 0

    def start(
        self,
        on_frame: OnFrame,
        on_gap: Callable[[], None],
        on_cut: Callable[[], None],
        downstream_loss: Callable[[], int],
        on_link_loss: Callable[[int], None],
    ) -> None:
        self.on_frame, self.on_gap = on_frame, on_gap

    async def request_keyframe(self) -> bool:
        self.keyframe_requests += 1
        return True

    def forget_missing(self) -> None:
        return None

    async def inbound(self) -> InboundStats:
        return InboundStats(packets=7, packets_lost=1, jitter_s=0.002)


class Recording:
    """What a recorder is to a producer: it wants frames once started, keeps them in order."""

    fraction_lost = 0
    fraction_lost_at = 0.0

    def __init__(self) -> None:
        self.frames: list[EncodedFrame] = []
        self.waiting_for_keyframe = True

    def on_frame(self, producer: Producer, frame: EncodedFrame) -> None:
        if self.waiting_for_keyframe and not frame.keyframe:
            return
        self.waiting_for_keyframe = False
        self.frames.append(frame)

    def on_gap(self, producer: Producer) -> None:
        self.waiting_for_keyframe = True

    def on_cut(self, producer: Producer) -> None:
        self.waiting_for_keyframe = True

    def wants(self, producer: Producer) -> bool:
        return True


async def test_frames_from_a_non_rtp_origin_reach_a_non_browser_sink(tmp_path: Path) -> None:
    clip = load_clip(make_clip(tmp_path, "camera.ts", size="640x360", seconds=2), "video")
    origin, recording = ClipOrigin(), Recording()
    producer = Producer("camera-1", "video", "high", origin, source="camera")
    producer.sinks.append(recording)
    assert origin.on_frame is not None and origin.on_gap is not None

    for packet in clip.packets:
        origin.on_frame("H264", packet.data, packet.pts)
    keyframes = [f for f in recording.frames if f.keyframe]
    assert len(recording.frames) == len(clip.packets) == producer.frames
    assert len(keyframes) == producer.keyframes >= 2  # a keyframe every second
    assert (producer.width, producer.height) == (640, 360)  # from the SPS, never decoded
    assert [f.data for f in recording.frames] == [p.data for p in clip.packets]

    # A gap: the sink waits for the next keyframe, and one is asked of the origin, once
    # however many gaps come within the PLI interval.
    before = len(recording.frames)
    for _ in range(3):
        origin.on_gap()
    await asyncio.sleep(0.05)
    assert origin.keyframe_requests == 1
    delta = next(p for p in clip.packets if not p.keyframe)
    origin.on_frame("H264", delta.data, 99_000)
    assert len(recording.frames) == before  # a delta frame after a gap is not usable
    await asyncio.sleep(PLI_INTERVAL + 0.1)
    assert origin.keyframe_requests == 1

    stats = await producer.stats()
    assert (stats.packets, stats.packets_lost, stats.jitter) == (7, 1, 0.002)
    assert stats.consumers == 1
    producer.close()
