"""IPv6 monitoring, the signaling side: joins counted by school and the client's IP version,
on a server listening on IPv4 and on IPv6 (``::1``)."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY
from support.harness import running_app

from contracts.rooms import Role


def joins(school: str, ip: str) -> float:
    return REGISTRY.get_sample_value("sanke_joins_by_ip_total", {"school": school, "ip": ip}) or 0.0


@pytest.mark.parametrize(("host", "ip"), [("127.0.0.1", "4"), ("::1", "6")])
async def test_a_join_is_counted_under_its_ip_version(host: str, ip: str) -> None:
    school = f"school-{ip}"
    before = {v: joins(school, v) for v in ("4", "6")}
    async with running_app(host=host) as h:
        await h.room("room-1")
        client = await h.joined(Role.classroom, school_id=school, classroom_id="c-1")
        await client.close()
    assert joins(school, ip) == before[ip] + 1
    other = "6" if ip == "4" else "4"
    assert joins(school, other) == before[other]
