"""Leave, disconnect and room close free peer connections, consumers and tasks; IPv6 works."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
from typing import Any

import pytest
from aiortc import RTCPeerConnection
from media_peers import Peer, load_clip, wait_for

from contracts.rooms import Role
from media.worker import Worker


def live_peer_connections() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, RTCPeerConnection))


@pytest.mark.timeout(90)
async def test_leave_disconnect_and_close_free_everything(clips: dict[str, Any]) -> None:
    await asyncio.sleep(0)
    tasks_before = len(asyncio.all_tasks())
    pcs_before = live_peer_connections()
    worker = Worker()
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["low"], "video"), "video/H264")]
    )
    leaver, vanisher = (
        Peer(worker, "class-1", Role.classroom),
        Peer(worker, "class-2", Role.classroom),
    )
    peers = [teacher, leaver, vanisher]
    for p in peers:
        await p.connect()
    assert await wait_for(
        lambda subs=(leaver, vanisher): all(
            sum(r.frames for r in s.video("teacher")) > 10 for s in subs
        ),
        20,
    )
    sfu_teacher = worker.transport("room-1", "teacher")
    assert sfu_teacher is not None
    video = next(p for p in sfu_teacher.producers.values() if p.kind == "video")
    assert len(video.sinks) == 2 and worker.peer_connection_count() == 3
    assert len(asyncio.all_tasks()) > tasks_before

    # leave: the SFU frees the peer connection and the consumers fed by the teacher
    leaving = worker.transport("room-1", "class-1")
    assert leaving is not None
    await worker.leave("room-1", "class-1")
    assert leaving.pc.connectionState == "closed" and all(
        c.closed for c in leaving.consumers.values()
    )
    assert len(video.sinks) == 1 and worker.peer_connection_count() == 2
    await leaver.close()

    # disconnect without a word: the client's DTLS close frees its SFU side
    await vanisher.close()
    assert await wait_for(lambda: worker.transport("room-1", "class-2") is None, 10)
    assert video.sinks == []

    await teacher.close()
    await worker.close()
    assert worker.peer_connection_count() == 0 and worker.routers == {}
    del leaving, sfu_teacher, video, peers, teacher, leaver, vanisher, p
    assert await wait_for(lambda: len(asyncio.all_tasks()) <= tasks_before, 10), [
        t.get_coro() for t in asyncio.all_tasks()
    ]
    assert await wait_for(lambda: live_peer_connections() <= pcs_before, 10)


def only_ipv6(sdp: str) -> str:
    """Drop every IPv4 ICE candidate: only IPv6 pairs can connect."""

    def keep(line: str) -> bool:
        if not line.startswith("a=candidate:"):
            return True
        address = line.split()[4]
        return ipaddress.ip_address(address).version == 6

    return "\r\n".join(line for line in sdp.split("\r\n") if keep(line))


@pytest.mark.timeout(60)
async def test_ipv6_only_peers(clips: dict[str, Any]) -> None:
    import ifaddr

    if not any(
        isinstance(ip.ip, tuple) and ip.ip[0] != "::1" and ip.ip[2] == 0
        for a in ifaddr.get_adapters()
        for ip in a.ips
    ):
        pytest.skip("no IPv6 address besides ::1 on this host (aioice never gathers ::1)")
    worker = Worker()
    teacher = Peer(worker, "teacher", Role.teacher, sdp_filter=only_ipv6)
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["low"], "video"), "video/H264")]
    )
    viewer = Peer(worker, "viewer", Role.viewer, sdp_filter=only_ipv6)
    try:
        await teacher.connect()
        await viewer.connect()
        assert await wait_for(lambda: sum(r.frames for r in viewer.video("teacher")) > 30, 20)
        assert await wait_for(lambda: sum(r.frames for r in viewer.audio("teacher")) > 30, 5)
        for pid in ("teacher", "viewer"):
            t = worker.transport("room-1", pid)
            assert t is not None
            ice = t.pc.getTransceivers()[0].receiver.transport.transport
            remotes = ice.getRemoteCandidates()
            assert remotes and all(ipaddress.ip_address(c.ip).version == 6 for c in remotes)
    finally:
        await teacher.close()
        await viewer.close()
        await worker.close()
