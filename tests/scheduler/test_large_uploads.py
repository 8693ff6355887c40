"""Large district uploads are parsed in a child process: the server keeps answering meanwhile."""

from __future__ import annotations

import asyncio
import json
import time
from functools import cache

from support.harness import Harness, running_app

from contracts.rooms import Role
from scheduler.district_api import OFFLOADER_KEY
from scheduler.domain import District
from scheduler.io import csvio
from scheduler.offload import OFFLOAD_BYTES
from scheduler.synthetic import province


@cache
def district() -> District:
    """A 2.6 MB district: parsing it on the loop stalls the loop ~0.4 s (0.37 s measured)."""
    return province(seed=5, offerings=800, classes=3200, regions=4)


def _auth(h: Harness) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.tokens.mint(subject='c', role=Role.coordinator)}"}


async def _while_polling(h: Harness, work: asyncio.Future[object]) -> list[float]:
    """How late each /healthz answer came while ``work`` ran: a request every 20 ms, one
    after another, each one's wall time counted from when it was due (a stalled loop delays
    the sleep before it as much as the request)."""
    pause = 0.02
    latencies: list[float] = []
    while True:
        due = time.perf_counter() + pause
        await asyncio.sleep(pause)
        async with h.session.get(h.url("/healthz")) as reply:
            assert reply.status == 200
            await reply.read()
        latencies.append(time.perf_counter() - due)
        if work.done():
            return latencies


async def test_healthz_keeps_answering_while_a_large_district_is_parsed() -> None:
    raw = district().model_dump_json().encode()
    assert len(raw) > 2 * OFFLOAD_BYTES
    async with running_app() as h:
        auth = _auth(h)
        upload = asyncio.ensure_future(
            h.session.put(h.url("/api/v1/schedule/district"), data=raw, headers=auth)
        )
        latencies = await _while_polling(h, upload)
        reply = await upload
        assert reply.status == 200, await reply.text()
        assert (await reply.json())["demands"] == len(district().demands)
        assert h.app[OFFLOADER_KEY].offloaded == 1
        assert len(latencies) >= 5  # the parse took a while: the loop was watched throughout
        assert max(latencies) < 0.2, f"/healthz stalled {max(latencies):.3f} s"
        stored = await h.session.get(h.url("/api/v1/schedule/district"), headers=auth)
        assert json.loads(await stored.read()) == json.loads(district().model_dump_json())


async def test_a_large_invalid_district_is_refused_with_the_field_and_changes_nothing() -> None:
    data = json.loads(district().model_dump_json())
    async with running_app() as h:
        auth = _auth(h)
        small = province(seed=6, offerings=20, classes=40, regions=1)
        await h.session.put(
            h.url("/api/v1/schedule/district"), data=small.model_dump_json(), headers=auth
        )
        data["offerings"][3]["max_remote"] = 99
        data["demands"][7]["school"] = "nowhere"
        reply = await h.session.put(
            h.url("/api/v1/schedule/district"), data=json.dumps(data), headers=auth
        )
        assert reply.status == 422
        error = (await reply.json())["error"]
        assert error["code"] == "invalid_request"
        assert [d["loc"] for d in error["details"]] == ["offerings/3/max_remote"]
        data["offerings"][3]["max_remote"] = 4
        reply = await h.session.put(
            h.url("/api/v1/schedule/district"), data=json.dumps(data), headers=auth
        )
        assert reply.status == 422
        assert [d["loc"] for d in (await reply.json())["error"]["details"]] == ["demands/7/school"]
        assert h.app[OFFLOADER_KEY].offloaded == 2
        status = await (await h.session.get(h.url("/api/v1/schedule/status"), headers=auth)).json()
        assert status["district_id"] == small.id


async def test_a_csv_on_a_large_district_is_applied_off_the_loop() -> None:
    async with running_app() as h:
        auth = _auth(h)
        await h.session.put(
            h.url("/api/v1/schedule/district"), data=district().model_dump_json(), headers=auth
        )
        fewer = district().offerings[: len(district().offerings) // 2]
        kept = {o.id for o in fewer}
        # Demands stay; offerings referenced by nothing else can go.
        text = csvio.export_offerings(fewer)
        upload = asyncio.ensure_future(
            h.session.put(
                h.url("/api/v1/schedule/district/csv/offerings"), data=text.encode(), headers=auth
            )
        )
        latencies = await _while_polling(h, upload)
        reply = await upload
        assert reply.status == 200, await reply.text()
        assert (await reply.json()) == {"kind": "offerings", "replaced": True, "rows": len(fewer)}
        assert max(latencies) < 0.2, f"/healthz stalled {max(latencies):.3f} s"
        stored = await (
            await h.session.get(h.url("/api/v1/schedule/district/csv/offerings"), headers=auth)
        ).text()
        assert {row.split(",")[0] for row in stored.splitlines()[1:]} == kept
