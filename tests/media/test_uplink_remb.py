"""A publisher without transport-cc hears one REMB for all its video, moved by loss.

aiortc would send it a REMB per video receiver capped near what that receiver already gets
(the publisher never climbs). The SFU's own REMB covers every video stream of the
transport, starts where a school link is, falls when the uplink loses packets and grows
back when it stops.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest
from aiortc.rtp import RTCP_PSFB_APP, RtcpPsfbPacket, is_rtcp, unpack_remb_fci
from media_peers import Peer, load_clip, wait_for

from contracts.rooms import Role
from media import remb
from media.remb import LossBasedEstimate
from media.worker import Worker


def test_the_loss_rule_grows_holds_and_cuts() -> None:
    e = LossBasedEstimate(start_bps=1_000_000)
    e.update(None, 0.0)
    assert e.update(0.0, 1.0) == pytest.approx(1_080_000)  # < 2 %: 8 % a second
    assert e.update(0.05, 2.0) == pytest.approx(1_080_000)  # 2–10 %: hold
    assert e.update(0.20, 3.0) == pytest.approx(1_080_000 * 0.9)  # > 10 %: × (1 − loss/2)
    for t in range(4, 200):
        e.update(0.9, float(t))
    assert e.bps == remb.FLOOR_BPS
    for t in range(200, 400):
        e.update(0.0, float(t))
    assert e.bps == remb.CEILING_BPS
    # a long pause between updates does not compound into a jump
    assert LossBasedEstimate(1_000_000).update(0.0, 0.0) == 1_000_000


class RembLog:
    """The REMBs a publisher's senders receive, and a lossy uplink it can switch on."""

    def __init__(self, peer: Peer) -> None:
        self.rembs: list[tuple[int, tuple[int, ...]]] = []
        self.loss = 0.0
        self.senders = [t.sender for t in peer.pc.getTransceivers() if t.kind == "video"]
        for sender in self.senders:
            handle = sender._handle_rtcp_packet

            async def spy(packet: Any, handle: Any = handle) -> None:
                if isinstance(packet, RtcpPsfbPacket) and packet.fmt == RTCP_PSFB_APP:
                    bitrate, ssrcs = unpack_remb_fci(packet.fci)
                    self.rembs.append((bitrate, tuple(sorted(ssrcs))))
                await handle(packet)

            sender._handle_rtcp_packet = spy  # type: ignore[method-assign]
        dtls = self.senders[0].transport
        send = dtls._send_rtp

        async def lossy(data: bytes) -> None:
            if not is_rtcp(data) and random.random() < self.loss:
                return  # lost on the publisher's uplink
            await send(data)

        dtls._send_rtp = lossy

    def ssrcs(self) -> tuple[int, ...]:
        return tuple(sorted(s._ssrc for s in self.senders))


@pytest.mark.timeout(120)
async def test_one_remb_for_all_video_that_falls_with_loss_and_grows_back(
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
    classroom = Peer(worker, "class-1", Role.classroom)
    try:
        log = RembLog(teacher)
        await teacher.connect()
        await classroom.connect()
        both = log.ssrcs()
        assert await wait_for(lambda: len(log.rembs) >= 2, 10), log.rembs
        # one REMB for both layers, never aiortc's per-receiver one (a single SSRC, capped
        # near the ~0.5 Mbps these clips send)
        assert all(ssrcs == both for _, ssrcs in log.rembs), (both, log.rembs)
        assert log.rembs[-1][0] >= remb.START_BPS, log.rembs

        log.loss = 0.3
        before = len(log.rembs)
        assert await wait_for(
            lambda: any(b < 0.8 * remb.START_BPS for b, _ in log.rembs[before:]), 10
        ), log.rembs[before:]
        low = min(b for b, _ in log.rembs[before:])

        log.loss = 0.0
        restored = len(log.rembs)
        assert await wait_for(lambda: log.rembs[-1][0] > 1.2 * low, 10), log.rembs[restored:]
        assert all(ssrcs == both for _, ssrcs in log.rembs)
    finally:
        await teacher.close()
        await classroom.close()
        await worker.close()
        await asyncio.sleep(0)
