"""HTTP API (aiohttp test client), CLI and property tests."""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from pathlib import Path

from aiohttp import web
from aiohttp.test_utils import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.scheduler_client import scheduler_client

from contracts.rooms import Role
from scheduler.cli import add_commands
from scheduler.demo import demo_district
from scheduler.domain import Policy
from scheduler.io import csvio
from scheduler.solver.solve import SolveOptions, solve
from scheduler.solver.verify import violations
from scheduler.synthetic import province
from signaling.http_auth import TOKENS_KEY


async def _wait(
    client: TestClient[web.Request, web.Application], auth: dict[str, str], job: str
) -> dict[str, object]:
    for _ in range(200):
        status: dict[str, object] = await (
            await client.get(f"/api/v1/schedule/jobs/{job}", headers=auth)
        ).json()
        if status["state"] != "running":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError("job did not finish")


async def test_api_flow() -> None:
    client, auth = await scheduler_client()
    base = "/api/v1/schedule"
    try:
        assert (await client.put(f"{base}/district", json={})).status == 401
        viewer = client.app[TOKENS_KEY].mint(subject="v", role=Role.viewer)
        assert (
            await client.get(f"{base}/district", headers={"Authorization": f"Bearer {viewer}"})
        ).status == 403
        raw = json.loads(demo_district().model_dump_json())
        raw["offerings"][0]["max_remote"] = 99
        raw["demands"][1]["school"] = "nowhere"
        bad = await client.put(f"{base}/district", json=raw, headers=auth)
        assert bad.status == 422
        details = (await bad.json())["error"]["details"]
        assert [d["loc"] for d in details] == ["offerings/0/max_remote"]
        raw["offerings"][0]["max_remote"] = 4
        bad = await client.put(f"{base}/district", json=raw, headers=auth)
        assert [d["loc"] for d in (await bad.json())["error"]["details"]] == ["demands/1/school"]
        ok = await client.put(
            f"{base}/district", data=demo_district().model_dump_json(), headers=auth
        )
        assert ok.status == 200 and (await ok.json())["offerings"] == 40
        # CSV replace: broken row points at line and column; a good file replaces offerings.
        text = csvio.export_offerings(demo_district().offerings)
        broken = text.replace(",4\n", ",x\n", 1)
        res = await client.put(f"{base}/district/csv/offerings", data=broken.encode(), headers=auth)
        assert (
            res.status == 422
            and (await res.json())["error"]["details"][0]["loc"] == "offerings/2/max_remote"
        )
        res = await client.put(f"{base}/district/csv/offerings", data=text.encode(), headers=auth)
        assert res.status == 200
        assert (await client.get(f"{base}/district/csv/offerings", headers=auth)).status == 200
        # Solve, poll, fetch, explain, publish.
        job = await (
            await client.post(f"{base}/jobs", json={"time_limit": 10}, headers=auth)
        ).json()
        status = await _wait(client, auth, job["id"])
        assert status["state"] == "done" and status["version"] == 1
        tt = await (await client.get(f"{base}/timetables/1", headers=auth)).json()
        assert tt["stats"]["served"] == tt["stats"]["bound"]
        why = await (
            await client.get(
                f"{base}/timetables/1/explain", params={"class": "jd-5-g4"}, headers=auth
            )
        ).json()
        assert why["unmet"][0]["reasons"][0]["code"] == "no_offering"
        assert (
            await client.get(f"{base}/timetables/1/explain", params={"class": "zz"}, headers=auth)
        ).status == 404
        assert (await client.get(f"{base}/timetables/published", headers=auth)).status == 404
        assert (
            await client.post(f"{base}/jobs", json={"resolve": True}, headers=auth)
        ).status == 409
        assert (await client.post(f"{base}/timetables/1/publish", headers=auth)).status == 200
        # Pin jd-6 to 张老师's Monday lesson and re-solve from the published timetable.
        pin = {"class_id": "jd-6-g3", "offering_id": "xian-shiyan-g3-英语-mon3"}
        assert (await client.post(f"{base}/pins", json=pin, headers=auth)).status == 200
        bad_pin = await client.post(
            f"{base}/bans", json={"class_id": "nope", "offering_id": "x"}, headers=auth
        )
        assert bad_pin.status == 422
        job = await (await client.post(f"{base}/jobs", json={"resolve": True}, headers=auth)).json()
        status = await _wait(client, auth, job["id"])
        tt2 = await (await client.get(f"{base}/timetables/2", headers=auth)).json()
        assert any(
            a["class_id"] == "jd-6-g3" and a["offering_id"] == pin["offering_id"]
            for a in tt2["assignments"]
        )
        assert tt2["stats"]["changed"] <= 2
        versions = await (await client.get(f"{base}/timetables", headers=auth)).json()
        assert [(v["version"], v["published"]) for v in versions] == [(1, True), (2, False)]
        assert (await client.post(f"{base}/timetables/2/publish", headers=auth)).status == 200
        published = await (await client.get(f"{base}/timetables/published", headers=auth)).json()
        assert published["version"] == 2
        ics = await client.get(
            f"{base}/timetables/published/ics/classroom/jd-6-g3.ics", headers=auth
        )
        assert ics.status == 200 and b"BEGIN:VEVENT" in await ics.read()
        # a calendar app cannot send a header: .ics takes ?token=, nothing else does, and
        # only a calendar link's token, which reads its one calendar and nothing else
        token = auth["Authorization"].removeprefix("Bearer ")
        ics = await client.get(
            f"{base}/timetables/published/ics/classroom/jd-6-g3.ics?token={token}"
        )
        assert ics.status == 401 and "calendar-links" in (await ics.json())["error"]["message"]
        assert (await client.get(f"{base}/timetables/published?token={token}")).status == 401
        reply = await client.post(
            f"{base}/calendar-links", json={"kind": "classroom", "key": "jd-6-g3"}, headers=auth
        )
        assert reply.status == 201
        link = await reply.json()
        assert link["expires"] > time.time() + 150 * 86400  # a term
        ics = await client.get(link["url"])
        assert ics.status == 200 and b"BEGIN:VEVENT" in await ics.read()
        link_token = link["url"].split("?token=")[1]
        other = f"{base}/timetables/published/ics/classroom/jd-1-g3.ics?token={link_token}"
        assert (await client.get(other)).status == 403
        as_bearer = {"Authorization": f"Bearer {link_token}"}
        assert (await client.get(f"{base}/timetables", headers=as_bearer)).status == 403
        for bad in ({"kind": "diary", "key": "x"}, {"kind": "teacher", "key": "../x"}, {}):
            reply = await client.post(f"{base}/calendar-links", json=bad, headers=auth)
            assert reply.status == 422, bad
        assert (await client.post(f"{base}/calendar-links", json={})).status == 401
        assert (await client.get(f"{base}/timetables/2/ics/nope/x", headers=auth)).status == 404
        assert (await client.get(f"{base}/jobs/unknown", headers=auth)).status == 404
    finally:
        await client.close()


def test_cli_solve_explain_export(tmp_path: Path, capsys: object) -> None:
    parser = argparse.ArgumentParser()
    add_commands(parser.add_subparsers(dest="command"))
    district = tmp_path / "district.json"
    district.write_text(demo_district().model_dump_json())
    out = tmp_path / "tt.json"
    args = parser.parse_args(
        ["schedule", "solve", str(district), "-o", str(out), "--time-limit", "5", "--workers", "0"]
    )
    assert args.func(args) == 0 and out.exists()
    args = parser.parse_args(["schedule", "explain", str(out), "--class", "zhen-xi-g3-2"])
    assert args.func(args) == 0
    args = parser.parse_args(
        [
            "schedule",
            "export",
            "--ics",
            str(tmp_path / "ics"),
            "--district",
            str(district),
            "--timetable",
            str(out),
        ]
    )
    assert args.func(args) == 0 and (tmp_path / "ics" / "teacher" / "王老师.ics").exists()
    broken = tmp_path / "bad.json"
    broken.write_text('{"id": "x"}')
    args = parser.parse_args(["schedule", "solve", str(broken), "-o", str(out)])
    assert args.func(args) == 2


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 10_000),
    min_overlap=st.sampled_from([30, 35, 40]),
    same_teacher=st.sampled_from(["soft", "hard"]),
    one_per_day=st.booleans(),
    load=st.integers(1, 3),
    sfu=st.sampled_from([None, 6, 12]),
)
def test_properties(
    seed: int, min_overlap: int, same_teacher: str, one_per_day: bool, load: int, sfu: int | None
) -> None:
    base = province(seed=seed, offerings=40, classes=60, regions=2)
    policy = Policy(
        min_overlap_minutes=min_overlap, same_teacher="hard" if same_teacher == "hard" else "soft",
        one_per_day=one_per_day, teacher_weekly_streams=load, cross_region=seed % 2 == 0,
        sfu_capacity={s.region.key("county"): sfu for s in base.schools} if sfu else {},
    )  # fmt: skip
    district = base.model_copy(update={"policy": policy})
    options = SolveOptions(time_limit=10, workers=0)
    tt = solve(district, options)
    assert violations(district, tt) == []
    greedy = solve(district, options.model_copy(update={"mip": False}))
    assert violations(district, greedy) == []
    assert greedy.stats.served <= tt.stats.served <= tt.stats.bound
    assert tt.stats.served == tt.stats.bound  # small parts are solved to optimality
    again = solve(district, options, previous=tt)
    assert again.assignments == tt.assignments and again.stats.changed == 0
    served = {a.demand_id for a in tt.assignments}
    for u in tt.unmet:
        assert u.reasons and u.missing_periods > 0
        assert u.demand_id not in served or u.missing_periods < next(
            d.periods_per_week for d in district.demands if d.id == u.demand_id
        )


async def test_one_solve_at_a_time() -> None:
    """Each solve takes the solver's worker processes: a second one waits for the first."""
    client, auth = await scheduler_client()
    base = "/api/v1/schedule"
    # Not the demo district: warm, in process, its solve could end within one HTTP round
    # trip (it did once in make test), and the second request was then rightly accepted.
    district = province(seed=5, offerings=1000, classes=4000, regions=4)
    try:
        await client.put(f"{base}/district", data=district.model_dump_json(), headers=auth)
        first = await (
            await client.post(f"{base}/jobs", json={"time_limit": 2}, headers=auth)
        ).json()
        second = await client.post(f"{base}/jobs", json={}, headers=auth)
        assert second.status == 409
        error = (await second.json())["error"]
        assert error["code"] == "conflict" and first["id"] in error["message"]
        assert (await _wait(client, auth, first["id"]))["state"] == "done"
        third = await client.post(f"{base}/jobs", json={"time_limit": 2}, headers=auth)
        assert third.status == 202
        assert (await _wait(client, auth, (await third.json())["id"]))["state"] == "done"
    finally:
        await client.close()


async def test_a_pin_or_ban_with_an_impossible_id_is_422() -> None:
    """It was a 500 (the Pin model refused the id outside any error handling)."""
    client, auth = await scheduler_client()
    base = "/api/v1/schedule"
    try:
        await client.put(f"{base}/district", data=demo_district().model_dump_json(), headers=auth)
        for route in ("pins", "bans"):
            reply = await client.post(
                f"{base}/{route}", json={"class_id": "a b", "offering_id": ""}, headers=auth
            )
            assert reply.status == 422, await reply.text()
            locs = [d["loc"] for d in (await reply.json())["error"]["details"]]
            assert locs == ["class_id", "offering_id"]
        district = await (await client.get(f"{base}/district", headers=auth)).json()
        assert district["pins"] == [] and district["bans"] == []
    finally:
        await client.close()
