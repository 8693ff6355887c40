"""Publishing a timetable through the coordinator API creates the term's lesson sessions."""

from __future__ import annotations

import asyncio
from datetime import date, timedelta
from typing import Any

from prometheus_client import REGISTRY
from support.harness import running_app

from contracts.rooms import Role
from scheduler.demo import demo_district


async def solve_through_api(h: Any, auth: dict[str, str]) -> dict[str, Any]:
    """Start a solve job and poll it to the end, as the coordinator page does."""
    reply = await h.session.post(
        h.url("/api/v1/schedule/jobs"), json={"time_limit": 20}, headers=auth
    )
    job = await reply.json()
    for _ in range(200):
        status: dict[str, Any] = await (
            await h.session.get(h.url(f"/api/v1/schedule/jobs/{job['id']}"), headers=auth)
        ).json()
        if status["state"] != "running":
            return status
        await asyncio.sleep(0.1)
    raise TimeoutError(f"solve job still running: {status}")


async def test_solve_publish_then_lessons_exist() -> None:
    async with running_app() as h:
        auth = {"Authorization": f"Bearer {h.tokens.mint(subject='c', role=Role.coordinator)}"}
        # The demo term, moved to start this week: the test must not depend on today's date.
        demo = demo_district()
        monday = date.today() - timedelta(days=date.today().weekday())
        district = demo.model_copy(
            update={
                "term": demo.term.model_copy(
                    update={"first_day": monday, "holidays": [], "makeup_days": []}
                )
            }
        )
        reply = await h.session.put(
            h.url("/api/v1/schedule/district"), data=district.model_dump_json(), headers=auth
        )
        assert reply.status in (200, 201), await reply.text()
        status = await solve_through_api(h, auth)
        assert status["state"] == "done", status
        assert REGISTRY.get_sample_value("sanke_solver_served_periods") == 24
        reply = await h.session.post(
            h.url(f"/api/v1/schedule/timetables/{status['version']}/publish"), headers=auth
        )
        body = await reply.json()
        assert reply.status == 200 and body["published"] == status["version"]
        [effect] = body["effects"]
        sessions = (await (await h.session.get(h.url("/api/v1/lessons"), headers=auth)).json())[
            "sessions"
        ]
        assert len(sessions) == effect["created"] > 0
        assert all(s["remotes"] for s in sessions)
        # Publishing the same version again changes nothing.
        again = await (
            await h.session.post(
                h.url(f"/api/v1/schedule/timetables/{status['version']}/publish"), headers=auth
            )
        ).json()
        assert again["effects"][0]["created"] == 0 and again["effects"][0]["removed"] == 0


async def test_schedule_status_before_and_after_upload() -> None:
    async with running_app() as h:
        auth = {"Authorization": f"Bearer {h.tokens.mint(subject='c', role=Role.coordinator)}"}
        empty = await (await h.session.get(h.url("/api/v1/schedule/status"), headers=auth)).json()
        assert empty == {
            "has_district": False,
            "district_id": None,
            "versions": 0,
            "published": None,
        }
        await h.session.put(
            h.url("/api/v1/schedule/district"), data=demo_district().model_dump_json(), headers=auth
        )
        status = await (await h.session.get(h.url("/api/v1/schedule/status"), headers=auth)).json()
        assert status["has_district"] and status["district_id"] == demo_district().id


async def test_solve_uses_the_live_sfu_nodes_capacity() -> None:
    """The scheduler's SFU constraint counts what the SFU nodes register: lesson rooms."""
    from contracts.nodes import NodeDirectory, NodeInfo

    async with running_app() as h:
        auth = {"Authorization": f"Bearer {h.tokens.mint(subject='c', role=Role.coordinator)}"}
        district = demo_district()
        county = district.schools[0].region.key("county")
        directory = NodeDirectory(h.store)
        # The county's only node is full (its capacity is used up by other lessons).
        await directory.register(NodeInfo(id="sfu-x", region=county, capacity=0))
        await directory.register(NodeInfo(id="sfu-elsewhere", region="11/1101/110101", capacity=50))
        assert await directory.capacity_by_region() == {county: 0, "11/1101/110101": 50}
        await h.session.put(
            h.url("/api/v1/schedule/district"), data=district.model_dump_json(), headers=auth
        )
        status = await solve_through_api(h, auth)
        timetable = await (
            await h.session.get(
                h.url(f"/api/v1/schedule/timetables/{status['version']}"), headers=auth
            )
        ).json()
        reasons = {r["code"] for u in timetable["unmet"] for r in u["reasons"]}
        assert "sfu_capacity" in reasons
        assert timetable["stats"]["served"] == 0  # 24 periods are served without the SFU limit
