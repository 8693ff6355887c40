"""Data that would wipe the term (issue 15, item 6): an impossible season date is refused at
upload with its row, and publishing a timetable that serves nobody or removes every future
lesson needs the coordinator's explicit confirmation."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

from support.harness import Harness, running_app

from contracts.nodes import NodeDirectory, NodeInfo
from contracts.rooms import Role
from scheduler.api import RUNNER_KEY
from scheduler.demo import demo_district
from scheduler.domain import District
from scheduler.io import csvio
from scheduler.solver.solve import SolveOptions, solve

BASE = "/api/v1/schedule"


def this_week_demo() -> District:
    demo = demo_district()
    monday = date.today() - timedelta(days=date.today().weekday())
    term = demo.term.model_copy(update={"first_day": monday, "holidays": [], "makeup_days": []})
    return demo.model_copy(update={"term": term})


def auth(h: Harness) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.tokens.mint(subject='c', role=Role.coordinator)}"}


async def test_an_impossible_season_date_is_refused_with_its_row() -> None:
    async with running_app() as h:
        a = auth(h)
        district = this_week_demo()
        await h.session.put(h.url(f"{BASE}/district"), data=district.model_dump_json(), headers=a)
        good = csvio.export_bells(district.schools)
        lines = good.splitlines(keepends=True)
        row = next(n for n, line in enumerate(lines) if ",winter,10-01,04-30," in line)
        lines[row] = lines[row].replace(",10-01,04-30,", ",10-01,02-30,")
        reply = await h.session.put(
            h.url(f"{BASE}/district/csv/bells"), data="".join(lines).encode(), headers=a
        )
        assert reply.status == 422, await reply.text()
        [detail] = (await reply.json())["error"]["details"]
        assert detail["loc"] == f"bells/{row + 1}/season_end"  # line 1 is the header
        assert "02-30" in detail["msg"]
        stored = await h.session.get(h.url(f"{BASE}/district/csv/bells"), headers=a)
        assert await stored.text() == good  # nothing changed

        # The same date in a district JSON, and a day that exists only in leap years.
        raw: dict[str, Any] = json.loads(district.model_dump_json())
        raw["schools"][0]["bell_schedules"][0]["end"] = "04-31"
        reply = await h.session.put(h.url(f"{BASE}/district"), data=json.dumps(raw), headers=a)
        assert reply.status == 422
        [detail] = (await reply.json())["error"]["details"]
        assert detail["loc"] == "schools/0/bell_schedules/0/end"
        raw["schools"][0]["bell_schedules"][0]["end"] = "02-29"
        raw["schools"][0]["bell_schedules"][1]["start"] = "03-01"
        reply = await h.session.put(h.url(f"{BASE}/district"), data=json.dumps(raw), headers=a)
        assert reply.status == 200, await reply.text()


async def test_seasons_that_leave_teaching_days_without_bells_are_refused() -> None:
    async with running_app() as h:
        a = auth(h)
        district = this_week_demo()
        raw: dict[str, Any] = json.loads(district.model_dump_json())
        first = district.term.first_day
        # One season that wraps the year but leaves out the term's second week.
        winter, _summer = raw["schools"][2]["bell_schedules"]
        winter["start"] = (first + timedelta(days=14)).strftime("%m-%d")
        winter["end"] = (first + timedelta(days=7)).strftime("%m-%d")
        raw["schools"][2]["bell_schedules"] = [winter]
        reply = await h.session.put(h.url(f"{BASE}/district"), data=json.dumps(raw), headers=a)
        assert reply.status == 422, await reply.text()
        [detail] = (await reply.json())["error"]["details"]
        assert detail["loc"] == "schools/2/bell_schedules"
        gap = next(
            first + timedelta(days=k)
            for k in range(8, 14)
            if (first + timedelta(days=k)).weekday() < 5
        )
        assert f"the first {gap.isoformat()}" in detail["msg"]
        del winter["start"], winter["end"]  # all year
        reply = await h.session.put(h.url(f"{BASE}/district"), data=json.dumps(raw), headers=a)
        assert reply.status == 200, await reply.text()


async def _published(h: Harness, a: dict[str, str]) -> tuple[int, int]:
    """The demo solved and published: (version, future lessons created)."""
    district = this_week_demo()
    await h.session.put(h.url(f"{BASE}/district"), data=district.model_dump_json(), headers=a)
    version = await h.app[RUNNER_KEY].repo.add(
        solve(district, SolveOptions(workers=0, time_limit=10))
    )
    reply = await h.session.post(h.url(f"{BASE}/timetables/{version}/publish"), headers=a)
    assert reply.status == 200, await reply.text()
    created: int = (await reply.json())["effects"][0]["created"]
    assert created > 0
    return version, created


async def _lessons(h: Harness, a: dict[str, str]) -> int:
    reply = await h.session.get(h.url("/api/v1/lessons"), headers=a)
    return len((await reply.json())["sessions"])


async def test_publishing_a_timetable_that_serves_nobody_needs_confirmation() -> None:
    async with running_app() as h:
        a = auth(h)
        _, created = await _published(h, a)
        district = this_week_demo()
        county = district.schools[0].region.key("county")
        # Every SFU node of the county full: a real solve that serves nobody.
        await NodeDirectory(h.store).register(NodeInfo(id="sfu-x", region=county, capacity=0))
        job = await (
            await h.session.post(h.url(f"{BASE}/jobs"), json={"time_limit": 10}, headers=a)
        ).json()
        runner = h.app[RUNNER_KEY]
        task = runner.jobs[job["id"]].task
        assert task is not None
        await task
        empty = runner.jobs[job["id"]].status.version
        assert empty is not None
        timetable = await (
            await h.session.get(h.url(f"{BASE}/timetables/{empty}"), headers=a)
        ).json()
        assert timetable["stats"]["served"] == 0
        reply = await h.session.post(h.url(f"{BASE}/timetables/{empty}/publish"), headers=a)
        assert reply.status == 409
        error = (await reply.json())["error"]
        assert error["code"] == "conflict"
        assert (
            "serves none" in error["message"]
            and f"all {created} future lessons" in error["message"]
        )
        assert await _lessons(h, a) == created  # nothing removed
        status = await (await h.session.get(h.url(f"{BASE}/status"), headers=a)).json()
        assert status["published"] != empty
        reply = await h.session.post(
            h.url(f"{BASE}/timetables/{empty}/publish"), json={"confirm": True}, headers=a
        )
        assert reply.status == 200, await reply.text()
        assert (await reply.json())["effects"][0]["removed"] == created
        assert await _lessons(h, a) == 0


async def test_publishing_what_removes_every_future_lesson_needs_confirmation() -> None:
    """Pairs that serve demand but make no lesson (their offerings left the district)."""
    async with running_app() as h:
        a = auth(h)
        version, created = await _published(h, a)
        repo = h.app[RUNNER_KEY].repo
        stored = await repo.get(version)
        assert stored is not None
        orphaned = stored.timetable.model_copy(
            update={
                "assignments": [
                    x.model_copy(update={"offering_id": f"gone-{x.offering_id}"})
                    for x in stored.timetable.assignments
                ]
            }
        )
        other = await repo.add(orphaned)
        reply = await h.session.post(h.url(f"{BASE}/timetables/{other}/publish"), headers=a)
        assert reply.status == 409
        message = (await reply.json())["error"]["message"]
        assert f"removes all {created} future lessons" in message and "serves none" not in message
        assert await _lessons(h, a) == created
        reply = await h.session.post(
            h.url(f"{BASE}/timetables/{other}/publish"), json={"confirm": True}, headers=a
        )
        assert reply.status == 200 and await _lessons(h, a) == 0
