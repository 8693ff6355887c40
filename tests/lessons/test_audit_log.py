"""Coordinator actions are audited in the signed records chain: who published, cancelled,
moved, registered, revoked or minted what; coordinators query it; tampering shows."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from support.harness import running_app
from support.sessions import english_lesson

from contracts.rooms import Role
from contracts.store import Store
from lessons.models import LessonSession
from lessons.records import RECORDS_LIST
from lessons.sessions import SHANGHAI
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository
from scheduler.solver.solve import SolveOptions, solve


def session(sid: str, now: float) -> LessonSession:
    return english_lesson(sid, now + 3600)


async def setup(h: Any) -> None:
    now = time.time()
    for sid in ("eng.a", "eng.b", "eng.c"):
        await h.sessions.put(session(sid, now))
    repo = TimetableRepository(h.store)
    district = demo_district()
    await repo.put_district(district)
    await repo.add(solve(district, SolveOptions(time_limit=5)))


def makeup_time() -> str:
    return datetime.fromtimestamp(time.time() + 2 * 86400, SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_every_coordinator_action_is_audited_and_queryable(store: Store) -> None:
    async with running_app(store=store) as h:
        await setup(h)
        admin = h.tokens.mint(subject="admin-wang", role=Role.admin)
        district = h.tokens.mint(subject="coord-li", role=Role.coordinator)
        school = h.tokens.mint(subject="coord-jd1", role=Role.coordinator, school_id="jd-1")
        post = h.session.post

        async def ok(reply: Any) -> Any:
            assert reply.status < 400, await reply.text()
            return await reply.json()

        await ok(
            await post(h.url("/api/v1/schedule/timetables/1/publish"), headers=bearer(district))
        )
        await ok(
            await post(h.url("/api/v1/rooms"), json={"id": "meeting-1"}, headers=bearer(district))
        )
        await ok(
            await post(
                h.url("/api/v1/tokens"),
                json={"subject": "viewer-9", "role": "viewer", "room": "meeting-1"},
                headers=bearer(district),
            )
        )
        registered = await ok(
            await post(
                h.url("/api/v1/devices"),
                json={"class_id": "jd-1-g3", "school": "jd-1", "name": "李庄一体机"},
                headers=bearer(school),
            )
        )
        device = registered["device"]
        await ok(
            await h.session.delete(
                h.url(f"/api/v1/devices/{device['id']}"), headers=bearer(district)
            )
        )
        await ok(
            await post(
                h.url("/api/v1/lessons/eng.a/cancel"),
                json={"reason": "停电"},
                headers=bearer(district),
            )
        )
        await ok(
            await post(
                h.url("/api/v1/lessons/eng.b/move"),
                json={"starts_at": makeup_time(), "reason": "调课"},
                headers=bearer(district),
            )
        )
        await ok(await post(h.url("/api/v1/lessons/eng.c/tokens"), headers=bearer(district)))
        await ok(await h.session.delete(h.url("/api/v1/rooms/meeting-1"), headers=bearer(admin)))
        # refused actions are not audited (nothing happened)
        bad = await post(
            h.url("/api/v1/lessons/nope/cancel"), json={"reason": "x"}, headers=bearer(district)
        )
        assert bad.status == 404

        reply = await h.session.get(h.url("/api/v1/audit"), headers=bearer(admin))
        audit = await ok(reply)
        assert reply.headers["Cache-Control"] == "no-store"
        got = [
            (e["entry"]["action"], e["entry"]["actor"], e["entry"]["target"])
            for e in audit["entries"]
        ]
        assert got == [  # newest first
            ("room.closed", "admin-wang", "meeting-1"),
            ("session.tokens_minted", "coord-li", "eng.c"),
            ("session.moved", "coord-li", "eng.b"),
            ("session.cancelled", "coord-li", "eng.a"),
            ("device.revoked", "coord-li", device["id"]),
            ("device.registered", "coord-jd1", device["id"]),
            ("token.minted", "coord-li", "viewer-9"),
            ("room.created", "coord-li", "meeting-1"),
            ("timetable.published", "coord-li", "1"),
        ], got
        entries = {e["entry"]["action"]: e["entry"] for e in audit["entries"]}
        assert entries["session.cancelled"]["detail"]["reason"] == "停电"
        assert entries["session.moved"]["detail"]["moved_to"]
        assert entries["token.minted"]["detail"] == {"role": "viewer", "room": "meeting-1"}
        assert entries["device.registered"]["school"] == "jd-1"
        assert entries["device.registered"]["actor_school"] == "jd-1"
        assert all(e["hash"] and isinstance(e["seq"], int) for e in audit["entries"])
        assert registered["credential"] not in str(audit)

        # filters, and a school coordinator sees its own school only
        by_action = await ok(
            await h.session.get(
                h.url("/api/v1/audit?action=session.cancelled"), headers=bearer(district)
            )
        )
        assert [e["entry"]["target"] for e in by_action["entries"]] == ["eng.a"]
        limited = await ok(
            await h.session.get(h.url("/api/v1/audit?limit=2"), headers=bearer(admin))
        )
        assert len(limited["entries"]) == 2 and limited["more"] is True
        mine = await ok(await h.session.get(h.url("/api/v1/audit"), headers=bearer(school)))
        assert {e["entry"]["school"] for e in mine["entries"]} == {"jd-1"}
        for query in ("limit=0", "limit=abc", "action=nope", "since=tomorrow"):
            reply = await h.session.get(h.url(f"/api/v1/audit?{query}"), headers=bearer(admin))
            assert reply.status == 422, query
            assert (await reply.json())["error"]["code"] == "invalid_request"
        viewer = h.tokens.mint(subject="v", role=Role.viewer, room="eng.c")
        assert (await h.session.get(h.url("/api/v1/audit"), headers=bearer(viewer))).status == 403

        # the audit entries are records of the chain: verified, and an edit shows
        report = await ok(
            await h.session.get(h.url("/api/v1/records/verify"), headers=bearer(admin))
        )
        assert report["ok"] and report["records"] >= 9, report
        lines = await store.range(RECORDS_LIST)
        index = next(i for i, line in enumerate(lines) if "session.cancelled" in line)
        await store.replace_at(RECORDS_LIST, index, lines[index].replace("停电", "演练"))
        report = await ok(
            await h.session.get(h.url("/api/v1/records/verify"), headers=bearer(admin))
        )
        assert not report["ok"] and report["first_broken"] == index
