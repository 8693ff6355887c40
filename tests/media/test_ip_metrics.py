"""IPv6 monitoring: per school, media connections and bytes by the IP version of the ICE pair.

Real aiortc peers: the teacher's school reaches the SFU over IPv6 only, a classroom's school
over IPv4 only (each offers candidates of one family); the Prometheus scrape says so.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from media_peers import Peer, load_clip, wait_for
from prometheus_client import CollectorRegistry

from contracts.addresses import ip_version
from contracts.rooms import Role
from media.ip_metrics import IpVersionCollector
from media.quality import QualityMonitor
from media.worker import Worker


def only(version: int) -> Callable[[str], str]:
    """An SDP filter keeping the candidates of one IP version."""

    def keep(sdp: str) -> str:
        lines = []
        for line in sdp.split("\r\n"):
            if line.startswith("a=candidate:"):
                address = line.split()[4]
                if (":" in address) != (version == 6):
                    continue
            lines.append(line)
        return "\r\n".join(lines)

    return keep


def test_ip_version_of_an_address() -> None:
    assert ip_version("10.1.2.3") == 4
    assert ip_version("fd00::2") == 6
    assert ip_version("fe80::1%eth0") == 6
    assert ip_version("::ffff:10.0.0.1") == 4  # an IPv4-mapped address is IPv4 on the wire
    assert ip_version("host.example") is None


@pytest.mark.timeout(90)
async def test_each_schools_share_of_ipv6_reaches_the_scrape(clips: dict[str, Any]) -> None:
    worker = Worker()
    monitor = QualityMonitor(worker)
    registry = CollectorRegistry()
    registry.register(IpVersionCollector(monitor))
    teacher = Peer(worker, "teacher", Role.teacher, sdp_filter=only(6), school_id="v6-school")
    classroom = Peer(worker, "class-1", Role.classroom, sdp_filter=only(4), school_id="v4-school")
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["low"], "video"), "video/H264")]
    )
    try:
        await teacher.connect()
        await classroom.connect()
        assert await wait_for(lambda: classroom.video("teacher"), 20)

        def value(name: str, **labels: str) -> float:
            return registry.get_sample_value(name, labels) or 0.0

        # The teacher's video on both legs, counted by the family of each leg. How fast the
        # bytes add up is the machine's business (a loaded one sends the clip later), so
        # sample until they pass 10 kB (within 10 s) instead of after a fixed second.
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            await asyncio.sleep(0.5)
            await monitor.sample()
            up6 = value("sanke_media_bytes_total", school="v6-school", ip="6", direction="up")
            down4 = value("sanke_media_bytes_total", school="v4-school", ip="4", direction="down")
            if (up6 > 10_000 and down4 > 10_000) or asyncio.get_running_loop().time() > deadline:
                break

        assert value("sanke_media_connections", school="v6-school", ip="6") == 1
        assert value("sanke_media_connections", school="v4-school", ip="4") == 1
        assert value("sanke_media_connections", school="v6-school", ip="4") == 0
        assert up6 > 10_000 and down4 > 10_000, (up6, down4)
        assert value("sanke_media_bytes_total", school="v6-school", ip="4", direction="up") == 0

        await asyncio.sleep(1)
        await monitor.sample()  # counters only grow, by what was sent since
        assert value("sanke_media_bytes_total", school="v6-school", ip="6", direction="up") > up6
    finally:
        await teacher.close()
        await classroom.close()
        await worker.close()
