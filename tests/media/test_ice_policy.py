"""The SFU sends STUN only where its policy allows, or where the client proved it is.

Real UDP sockets listen at the addresses a client signals (in its offer and trickled, IPv4
and IPv6): whatever the SFU sends there arrives, so "received nothing" is observed, not
assumed. A positive control (an allowed address) shows the observation works.
"""

from __future__ import annotations

import asyncio
import re
import socket
from typing import Any

import pytest
from aioice import stun
from media_peers import Peer, load_clip, wait_for
from pydantic import ValidationError

from contracts.media import IceCandidate
from contracts.rooms import Role
from media.ice_policy import IcePolicy
from media.worker import Worker, WorkerSettings
from sanke.settings import Settings


class Listener(asyncio.DatagramProtocol):
    """A UDP socket that keeps every datagram it receives."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, Any]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.got.append((data, addr))

    @property
    def stun_requests(self) -> int:
        return sum(1 for data, _ in self.got if data[:2] == b"\x00\x01")

    @classmethod
    async def on(cls, host: str) -> tuple[Listener, int]:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            cls, local_addr=(host, 0), family=family
        )
        protocol.transport = transport
        port: int = transport.get_extra_info("sockname")[1]
        return protocol, port

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


def host_addresses(sdp: str) -> tuple[str, str]:
    """The client's own IPv4 and IPv6 host addresses, as its offer lists them."""
    hosts = re.findall(r"a=candidate:\S+ 1 udp \d+ (\S+) \d+ typ host", sdp)
    v4 = next(h for h in hosts if ":" not in h)
    v6 = next((h for h in hosts if ":" in h), "::1")
    return v4, v6


def with_candidates(sdp: str, lines: list[str], end: bool) -> str:
    """The offer with extra candidates in its first media section (and end-of-candidates)."""
    out, added = [], False
    for line in sdp.split("\r\n"):
        if line == "a=end-of-candidates":
            if not added:
                out.extend(lines)
                added = True
            if end:
                out.append(line)
            continue
        out.append(line)
    assert added, "the offer has no end-of-candidates line"
    return "\r\n".join(out)


def candidate(foundation: int, host: str, port: int, priority: int = 2130706431) -> str:
    return f"candidate:{foundation} 1 udp {priority} {host} {port} typ host"


async def publisher(worker: Worker, clips: dict[str, Any], pid: str = "teacher") -> Peer:
    peer = Peer(worker, pid, Role.teacher)
    peer.publish(None, [(load_clip(clips["high"], "video"), "video/H264")])
    await worker.join(peer.participant, peer._send)
    await peer.pc.setLocalDescription(await peer.pc.createOffer())
    return peer


async def answer(peer: Peer, sdp: str) -> None:
    from aiortc import RTCSessionDescription

    await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
    peer._answered.set()


def remote_types(worker: Worker, pid: str) -> list[tuple[str, str]]:
    """(type, address) of every remote candidate the SFU's ICE agent knows for ``pid``."""
    t = worker.transport("room-1", pid)
    assert t is not None
    ice = t.pc.getTransceivers()[0].receiver.transport.transport
    return [(c.type, c.ip) for c in ice.getRemoteCandidates()]


def test_policy_defaults_parsing_and_mapped_addresses() -> None:
    default = IcePolicy()
    assert not default.may_check("10.1.2.3", 50000)  # nothing is checked before it checks us
    assert not default.refuses("10.1.2.3") and not default.refuses("fd00::7")
    for address in ("169.254.169.254", "224.0.0.251", "255.255.255.255", "0.0.0.0", "fe80::1"):
        assert default.refuses(address), address
    campus = IcePolicy(allow=["10.0.0.0/8", "fd00::/8"], deny=["10.9.0.0/16"])
    assert campus.may_check("10.1.2.3", 50000) and campus.may_check("fd00::7", 50000)
    assert not campus.may_check("10.9.0.1", 50000)  # deny wins
    assert not campus.may_check("10.1.2.3", 53)  # never a well-known port
    assert not campus.may_check("::ffff:10.9.0.1", 50000)  # an IPv4-mapped address is IPv4
    assert campus.refuses("::ffff:10.9.0.1")
    assert not campus.may_check("printer.local", 50000)  # names are never resolved
    with pytest.raises(ValidationError):
        IcePolicy(allow=["10.0.0.0/33"])
    settings = Settings(ice_remote_allow="10.0.0.0/8, fd00::/8", ice_remote_deny="")  # type: ignore[arg-type]
    policy = settings.ice_policy()
    assert policy.may_check("10.0.0.1", 40000) and not policy.refuses("169.254.1.1")


@pytest.mark.timeout(60)
async def test_signalled_candidates_outside_the_policy_never_get_a_stun_check(
    clips: dict[str, Any],
) -> None:
    listeners: list[Listener] = []

    async def listen(host: str) -> tuple[Listener, int]:
        listener, port = await Listener.on(host)
        listeners.append(listener)
        return listener, port

    worker: Worker | None = None
    teacher = viewer = None
    try:
        probe = Peer(Worker(), "probe", Role.teacher)  # only to learn this machine's addresses
        probe.pc.addTransceiver("audio")
        await probe.pc.setLocalDescription(await probe.pc.createOffer())
        v4, v6 = host_addresses(probe.pc.localDescription.sdp)
        await probe.pc.close()
        # the client's own addresses are allowed: the SFU may check them first
        policy = IcePolicy(allow=[f"{v4}/32", f"{v6}/128"])
        worker = Worker(WorkerSettings(ice=policy))
        teacher = await publisher(worker, clips)
        control, control_port = await listen(v4)  # allowed: it must hear the SFU
        in_offer = [await listen("127.0.0.1"), await listen("::1")]
        trickled = [await listen("127.0.0.1"), await listen("::1")]
        lines = [f"a={candidate(1, '127.0.0.1', in_offer[0][1], 2130706432)}"]
        lines.append(f"a={candidate(2, '::1', in_offer[1][1], 2130706432)}")
        lines.append(f"a={candidate(3, v4, control_port)}")
        # no end-of-candidates: the trickled ones below still count
        offer = with_candidates(teacher.pc.localDescription.sdp, lines, end=False)
        sfu_answer = await worker.offer("room-1", "teacher", offer)
        for i, (_listener, port) in enumerate(trickled):
            host = "127.0.0.1" if i == 0 else "::1"
            await worker.candidate(
                "room-1",
                "teacher",
                IceCandidate(candidate=candidate(10 + i, host, port), sdp_mid="0"),
            )
        # the SFU checks while the client has not even seen the answer
        assert await wait_for(lambda: control.stun_requests > 0, 10), "the control heard nothing"
        await answer(teacher, sfu_answer)
        viewer = Peer(worker, "viewer", Role.viewer)
        await viewer.connect()
        assert await wait_for(lambda: sum(r.frames for r in viewer.video("teacher")) >= 10, 20)
        await asyncio.sleep(0.5)
        heard = {f"{i}": len(listener.got) for i, (listener, _) in enumerate(in_offer + trickled)}
        assert heard == {"0": 0, "1": 0, "2": 0, "3": 0}, heard
        known = remote_types(worker, "teacher")
        assert not any(ip in ("127.0.0.1", "::1") for _, ip in known), known
    finally:
        for listener in listeners:
            listener.close()
        for peer in (teacher, viewer):
            if peer is not None:
                await peer.close()
        if worker is not None:
            await worker.close()


@pytest.mark.timeout(60)
async def test_by_default_a_lan_classroom_connects_through_its_own_checks_only(
    clips: dict[str, Any],
) -> None:
    worker = Worker()  # the default policy: no address is checked before it checked us
    teacher = viewer = None
    listeners: list[Listener] = []
    try:
        teacher = await publisher(worker, clips)
        v4, v6 = host_addresses(teacher.pc.localDescription.sdp)
        ports = []
        for host in (v4, v6, "127.0.0.1"):
            listener, port = await Listener.on(host)
            listeners.append(listener)
            ports.append(port)
        lines = [
            f"a={candidate(20 + i, host, port, 2130706433)}"
            for i, (host, port) in enumerate(zip((v4, v6, "127.0.0.1"), ports, strict=True))
        ]
        # with end-of-candidates: the SFU must wait for the client's checks, not give up
        offer = with_candidates(teacher.pc.localDescription.sdp, lines, end=True)
        await answer(teacher, await worker.offer("room-1", "teacher", offer))
        viewer = Peer(worker, "viewer", Role.viewer)
        await viewer.connect()
        assert await wait_for(lambda: sum(r.frames for r in viewer.video("teacher")) >= 10, 20)
        assert [len(listener.got) for listener in listeners] == [0, 0, 0]
        # what the SFU knows of the teacher: only what checked it (peer-reflexive)
        known = remote_types(worker, "teacher")
        assert known and all(kind == "prflx" for kind, _ in known), known
    finally:
        for listener in listeners:
            listener.close()
        for peer in (teacher, viewer):
            if peer is not None:
                await peer.close()
        await worker.close()


def ice_credentials(sdp: str) -> tuple[str, str]:
    ufrag = re.search(r"a=ice-ufrag:(\S+)", sdp)
    pwd = re.search(r"a=ice-pwd:(\S+)", sdp)
    assert ufrag and pwd
    return ufrag.group(1), pwd.group(1)


async def binding_answered(source: str, target: tuple[str, int], sfu: str, client: str) -> bool:
    """Send the SFU an authenticated ICE check from ``source``: is it answered?"""
    sfu_ufrag, sfu_pwd = ice_credentials(sfu)
    client_ufrag, _ = ice_credentials(client)
    request = stun.Message(message_method=stun.Method.BINDING, message_class=stun.Class.REQUEST)
    request.attributes["USERNAME"] = f"{sfu_ufrag}:{client_ufrag}"
    request.attributes["PRIORITY"] = 1853824767
    request.attributes["ICE-CONTROLLING"] = 1
    request.add_message_integrity(sfu_pwd.encode())
    request.add_fingerprint()
    listener, _ = await Listener.on(source)
    try:
        assert listener.transport is not None
        for _ in range(5):
            listener.transport.sendto(bytes(request), target)
            await asyncio.sleep(0.1)
        return any(data[:2] == b"\x01\x01" for data, _ in listener.got)
    finally:
        listener.close()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("deny_loopback", [False, True])
async def test_checks_from_a_denied_address_are_not_even_answered(
    clips: dict[str, Any], deny_loopback: bool
) -> None:
    policy = IcePolicy(deny=["127.0.0.0/8"]) if deny_loopback else IcePolicy()
    worker = Worker(WorkerSettings(ice=policy))
    teacher = None
    try:
        teacher = await publisher(worker, clips)
        client_sdp = teacher.pc.localDescription.sdp
        sfu_sdp = await worker.offer("room-1", "teacher", client_sdp)
        found = re.search(r"a=candidate:\S+ 1 udp \d+ (\d+\.\d+\.\d+\.\d+) (\d+) typ host", sfu_sdp)
        assert found
        target = (found.group(1), int(found.group(2)))
        answered = await binding_answered("127.0.0.1", target, sfu_sdp, client_sdp)
        assert answered is not deny_loopback
    finally:
        if teacher is not None:
            await teacher.close()
        await worker.close()


async def test_the_sfu_asks_no_stun_server_for_its_own_address() -> None:
    """aiortc's default STUN server (stun.l.google.com) is unreachable from Chinese school
    networks: gathering would wait out its timeout on every join. The SFU's answer carries
    host candidates only, and its ICE connection has no STUN server."""
    from aiortc import RTCPeerConnection, RTCSessionDescription

    from contracts.rooms import Participant, Role
    from media.worker import Worker

    worker = Worker()
    client = RTCPeerConnection()
    try:
        client.addTransceiver("audio", direction="sendonly")
        await client.setLocalDescription(await client.createOffer())
        participant = Participant(
            id="p-1", room_id="room-1", subject="t", role=Role.teacher, node_id="test"
        )

        async def send(message: object) -> None:
            return None

        await worker.join(participant, send)
        answer = await worker.offer("room-1", "p-1", client.localDescription.sdp)
        candidates = [line for line in answer.splitlines() if line.startswith("a=candidate:")]
        assert candidates and all(" typ host" in line for line in candidates), candidates
        transport = worker.transport("room-1", "p-1")
        assert transport is not None
        dtls = transport.pc.getTransceivers()[0].receiver.transport
        assert dtls.transport.iceGatherer._connection.stun_server is None
        await client.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
    finally:
        await client.close()
        await worker.close()
