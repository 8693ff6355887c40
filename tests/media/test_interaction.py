"""专递课堂 rules at the SFU: back-channels to the teacher, stage, mute, invisible observers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from media_peers import Peer, load_clip, wait_for

from contracts.rooms import Role
from media.worker import Worker


def frames(peer: Peer, source: str, kind: str) -> int:
    got = peer.video(source) if kind == "video" else peer.audio(source)
    return sum(r.frames for r in got)


async def grows(peer: Peer, source: str, kind: str, seconds: float = 1.5) -> int:
    """How many frames arrive in ``seconds`` (for what must NOT flow)."""
    before = frames(peer, source, kind)
    await asyncio.sleep(seconds)
    return frames(peer, source, kind) - before


async def keeps_flowing(peer: Peer, source: str, kind: str, count: int) -> bool:
    """``count`` more frames arrive within 5 s (for what must flow: 1–2 s of media, with
    slack for a loaded machine, where decoding falls behind)."""
    before = frames(peer, source, kind)
    return await wait_for(lambda: frames(peer, source, kind) - before >= count, 5)


@pytest.mark.timeout(120)
async def test_stage_and_mute_decide_who_hears_a_classroom(clips: dict[str, Any]) -> None:
    worker = Worker()
    audio, video = load_clip(clips["opus"], "audio"), load_clip(clips["low"], "video")
    teacher = Peer(worker, "teacher", Role.teacher)
    a = Peer(worker, "class-a", Role.classroom)
    b = Peer(worker, "class-b", Role.classroom)
    observer = Peer(worker, "observer", Role.observer)
    for p in (teacher, a, b, observer):
        p.publish(audio, [(video, "video/H264")])  # the observer's tracks must be refused
    peers = (teacher, a, b, observer)
    try:
        for p in peers:
            await p.connect()
        # the teacher gets every classroom's back-channel; everyone gets the teacher
        assert await wait_for(
            lambda: (
                all(
                    frames(teacher, c, k) > 20
                    for c in ("class-a", "class-b")
                    for k in ("audio", "video")
                )
                and all(
                    frames(p, "teacher", k) > 20
                    for p in (a, b, observer)
                    for k in ("audio", "video")
                )
            ),
            30,
        )
        # off stage: classroom A reaches neither B nor the observer
        assert frames(b, "class-a", "audio") == 0 and frames(b, "class-a", "video") == 0
        assert frames(observer, "class-a", "audio") == 0
        # the observer is invisible: nobody gets a track of it
        for p in (teacher, a, b):
            assert all(t.participant_id != "observer" for m in p.tracks_msgs for t in m.tracks)
        obs = worker.transport("room-1", "observer")
        assert obs is not None and obs.producers == {}

        await worker.set_stage("room-1", "class-a", True)
        assert await wait_for(lambda: frames(b, "class-a", "audio") > 20, 15)
        assert await wait_for(lambda: frames(b, "class-a", "video") > 10, 15)

        await worker.set_muted("room-1", "class-a", True)
        await asyncio.sleep(0.5)  # what was already in flight
        assert await grows(b, "class-a", "audio") <= 5
        assert await grows(teacher, "class-a", "audio") <= 5
        assert await keeps_flowing(b, "class-a", "video", 10)  # only audio is muted
        assert await keeps_flowing(teacher, "class-b", "audio", 40)  # the others are untouched

        await worker.set_muted("room-1", "class-a", False)
        assert await wait_for(lambda: frames(teacher, "class-a", "audio") > 0, 1)
        assert await keeps_flowing(teacher, "class-a", "audio", 40)

        await worker.set_stage("room-1", "class-a", False)
        await asyncio.sleep(0.5)
        assert await grows(b, "class-a", "audio") <= 5
        assert await keeps_flowing(teacher, "class-a", "audio", 40)  # the teacher still hears A
        stats = await worker.stats()
        b_stats = next(t for t in stats.rooms[0].transports if t.participant_id == "class-b")
        assert {c.kind: c.paused for c in b_stats.consumers if c.source_id == "class-a"} == {
            "audio": True,
            "video": True,
        }
    finally:
        for p in peers:
            await p.close()
        await worker.close()
