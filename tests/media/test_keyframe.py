"""A subscriber joining mid-lesson starts at a keyframe the SFU asked the publisher for."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiortc.contrib.media import MediaPlayer
from media_peers import Peer, wait_for

from contracts.rooms import Role
from media import aiortc_seams as seams
from media.worker import Worker


@pytest.mark.timeout(90)
async def test_late_subscriber_gets_a_keyframe_requested_upstream(clips: dict[str, Any]) -> None:
    worker = Worker()
    # A publisher that really encodes (aiortc's libx264: one IDR every 250 frames ~ 8.3 s),
    # so a quick first frame at 5 s can only come from a PLI relayed by the SFU.
    player = MediaPlayer(str(clips["high"]), loop=True)
    teacher = Peer(worker, "teacher", Role.teacher)
    sender = teacher.pc.addTransceiver(player.video, direction="sendonly").sender
    plis_at_publisher: list[float] = []
    seams.observe_sender_rtcp(
        sender, lambda e: plis_at_publisher.append(time.monotonic()) if e.kind == "pli" else None
    )
    early = Peer(worker, "class-early", Role.classroom)
    late = Peer(worker, "class-late", Role.classroom)
    try:
        await teacher.connect()
        await early.connect()
        assert await wait_for(lambda: sum(r.frames for r in early.video("teacher")) > 0, 15)
        await asyncio.sleep(5)
        joined = time.monotonic()
        await late.connect()
        assert await wait_for(lambda: any(r.first_at for r in late.video("teacher")), 5)
        first = min(r.first_at for r in late.video("teacher") if r.first_at)
        print(f"\nlate join: first decodable frame {first - joined:.2f} s after joining")
        assert first - joined < 1.0, f"first decodable frame after {first - joined:.2f} s"
        assert any(t >= joined for t in plis_at_publisher), "no PLI reached the publisher"
        # the early subscriber kept decoding throughout: nearly every frame the SFU got
        # (counted against what arrived, not a number: the publisher encodes in this
        # process, and a loaded machine encodes fewer frames)
        stats = await worker.stats()
        video = next(p for t in stats.rooms[0].transports for p in t.producers if p.kind == "video")
        decoded = sum(r.frames for r in early.video("teacher"))
        assert video.frames > 30 and decoded >= 0.8 * video.frames - 5, (decoded, video.frames)
        assert video.plis_sent >= 1 and video.keyframes >= 2
    finally:
        for p in (teacher, early, late):
            await p.close()
        player.video.stop()
        await worker.close()
