"""Two video layers: a subscriber whose REMB is capped is switched to low; a pin is obeyed."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from media_peers import Peer, load_clip, wait_for

from contracts.rooms import Role
from media import aiortc_seams as seams
from media.layers import LayerChooser
from media.worker import Worker


async def report_capped_remb(peer: Peer, bps: int) -> None:
    """The subscriber's receivers report ``bps`` instead of aiortc's own estimate."""
    while True:
        for t in peer.pc.getTransceivers():
            if t.kind == "video":
                seams.disable_remb(t.receiver)
                ssrcs = [s.source for s in t.receiver.getSynchronizationSources()]
                if ssrcs:
                    await seams.send_remb(t.receiver, bps, ssrcs)
        await asyncio.sleep(0.3)


async def consumer(worker: Worker, sub: str) -> Any:
    stats = await worker.stats()
    t = next(t for t in stats.rooms[0].transports if t.participant_id == sub)
    return next(c for c in t.consumers if c.kind == "video")


@pytest.mark.timeout(90)
async def test_capped_subscriber_gets_low_and_pinned_subscriber_gets_low(
    clips: dict[str, Any],
) -> None:
    worker = Worker()
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(
        None,
        [
            (load_clip(clips["high"], "video"), "video/H264"),
            (load_clip(clips["low"], "video"), "video/H264"),
        ],
    )
    free, capped, pinned = (
        Peer(worker, f"class-{n}", Role.classroom) for n in ("free", "capped", "pinned")
    )
    remb_task: asyncio.Task[None] | None = None
    try:
        await teacher.connect()
        for p in (free, capped, pinned):
            await p.connect()
        await worker.set_layer("room-1", "class-pinned", "low")
        remb_task = asyncio.get_running_loop().create_task(report_capped_remb(capped, 250_000))
        assert await wait_for(
            lambda: capped.video("teacher") and capped.video("teacher")[0].last_size == (320, 180),
            20,
        )
        assert await wait_for(
            lambda: pinned.video("teacher") and pinned.video("teacher")[0].last_size == (320, 180),
            10,
        )
        assert await wait_for(
            lambda: free.video("teacher") and free.video("teacher")[0].frames > 60, 10
        )
        assert free.video("teacher")[0].last_size == (640, 360)
        c = await consumer(worker, "class-capped")
        assert c.layer == "low" and c.remb_bps is not None and c.remb_bps <= 250_001
        assert (await consumer(worker, "class-free")).layer == "high"
        p = await consumer(worker, "class-pinned")
        assert p.layer == "low"
        # the switch happened at a keyframe of the low layer: no decode errors, frames flow on
        # (half a second of 30 fps; a loaded machine decodes it later, so up to 5 s)
        before = capped.video("teacher")[0].frames
        assert await wait_for(lambda: capped.video("teacher")[0].frames - before > 15, 5)
        # unpinning lets the SFU choose again: it probes up at once, and high comes back
        await worker.set_layer("room-1", "class-pinned", "auto")
        assert await wait_for(lambda: pinned.video("teacher")[0].last_size == (640, 360), 20)
    finally:
        if remb_task is not None:
            remb_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await remb_task
        for peer in (teacher, free, capped, pinned):
            await peer.close()
        await worker.close()


def test_chooser_hysteresis_and_probing() -> None:
    rates = {"high": 800_000.0, "low": 120_000.0}
    ch = LayerChooser()
    assert ch.choose("high", rates, None, now=0) == "high"
    assert ch.choose("high", rates, 1_250_000, now=1) == "high"  # 1.5 x what it receives
    assert ch.choose("high", rates, 650_000, now=2) == "high"  # within the keep margin
    assert ch.choose("high", rates, 250_000, now=3) == "low"
    assert ch.choose("low", rates, 250_000, now=4) == "low"  # no probe before the hold
    assert ch.choose("low", rates, 60_000, now=5) == "audio"  # below low's rate: audio only
    assert ch.choose("audio", rates, 170_000, now=6) == "low"  # 1.2 x headroom to go up
    assert ch.choose("low", rates, 190_000, now=6 + 15.5) == "high"  # probe after the hold
    assert ch.choose("high", rates, 200_000, now=23) == "high"  # the estimate lags: wait
    assert ch.choose("high", rates, 230_000, now=25) == "high"  # it grew by 10 %: go on
    assert ch.choose("high", rates, 650_000, now=30) == "high"  # caught up: the probe held
    assert ch.probe_since is None and ch.hold == 15
    assert ch.choose("high", rates, 250_000, now=31) == "low"  # a real cap again
    assert ch.choose("low", rates, 190_000, now=47) == "high"  # probe
    assert ch.choose("high", rates, 195_000, now=51) == "low"  # stalled: the probe failed
    assert ch.hold == 30  # ... so the next one waits twice as long
    assert ch.choose("low", rates, 190_000, now=51 + 20) == "low"
    assert ch.choose("high", rates, 100, pinned="low", now=60) == "low"  # a pin wins
