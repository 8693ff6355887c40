"""Classroom devices (zero-click join), the join window, 开课率 statistics and CSV."""

from __future__ import annotations

import csv
import io
import time
from typing import Any

import pytest
from icalendar import Calendar
from prometheus_client import REGISTRY
from support.harness import Client, Harness, running_app

from sanke.app import LESSON_SERVICE_KEY
from scheduler.lessons.service import LessonService, SchoolPlace
from signaling.models import LessonSession, RemoteClass, Role, Room, SessionState

MIN = 60.0


def session_at(starts_at: float, sid: str, **kw: Any) -> LessonSession:
    data: dict[str, Any] = {
        "id": sid,
        "room_id": sid,
        "offering_id": sid.split(".")[0],
        "district_id": "d",
        "teacher": "张老师",
        "master_school": "xian-shiyan",
        "master_classroom": "3-1",
        "subject": "英语",
        "grade": 3,
        "date": time.strftime("%Y-%m-%d", time.localtime(starts_at)),
        "starts_at": starts_at,
        "ends_at": starts_at + 40 * MIN,
        "opens_at": starts_at - 10 * MIN,
        "closes_at": starts_at + 50 * MIN,
        "remotes": [RemoteClass(class_id="jd-1-g3", school="jd-1")],
    }
    data.update(kw)
    return LessonSession(**data)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(h: Harness, class_id: str = "jd-1-g3") -> str:
    """A device of ``class_id`` (a class of the demo district, which is uploaded first)."""
    from scheduler.demo import demo_district
    from scheduler.jobs import TimetableRepo

    await TimetableRepo(h.store).put_district(demo_district())
    coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
    reply = await h.session.post(
        h.url("/api/v1/devices"),
        json={"class_id": class_id, "school": "jd-1", "name": "李庄 三年级"},
        headers=auth(coordinator),
    )
    assert reply.status == 201
    body = await reply.json()
    credential: str = body["credential"]
    assert "secret" not in str(body["device"])
    return credential


class SimulatedDevice:
    """What the kiosk page does: fetch the schedule, get a join token, join, rejoin."""

    def __init__(self, h: Harness, credential: str) -> None:
        self.h = h
        self.credential = credential
        self.client: Client | None = None

    async def schedule(self) -> dict[str, Any]:
        reply = await self.h.session.get(
            self.h.url("/api/v1/device/schedule"), headers=auth(self.credential)
        )
        assert reply.status == 200, await reply.text()
        data: dict[str, Any] = await reply.json()
        return data

    async def join_current(self) -> Client:
        reply = await self.h.session.post(
            self.h.url("/api/v1/device/join"), headers=auth(self.credential)
        )
        body = await reply.json()
        if reply.status != 200:
            raise LookupError(body["error"]["code"])
        self.client = await self.h.connect()
        await self.client.join(body["token"])
        return self.client

    async def drop(self) -> None:
        assert self.client is not None
        await self.client.ws.close()


async def test_device_auto_joins_drops_rejoins_and_attendance_counts() -> None:
    async with running_app() as h:
        lessons: LessonService = h.app[LESSON_SERVICE_KEY]
        real = time.time()
        start = real + 5 * MIN  # the room is open (it opened 5 minutes ago)
        await h.sessions.put(session_at(start, "eng.today"))
        await h.sessions.put(session_at(start + 86400, "eng.tomorrow"))
        device = SimulatedDevice(h, await register(h))
        schedule = await device.schedule()
        assert schedule["current"]["id"] == "eng.today"
        assert [s["id"] for s in schedule["upcoming"]] == ["eng.tomorrow"]

        # Attendance runs on the lesson clock; drive it through the lesson's minutes.
        lesson_clock = {"now": start + 1 * MIN}
        lessons.clock = lambda: lesson_clock["now"]
        await lessons.tick()
        teacher = await h.connect()
        await teacher.join(h.tokens.mint(subject="t", role=Role.teacher, room="eng.today"))
        first = await device.join_current()
        joined = await teacher.expect("participant_joined")
        assert joined["participant"]["classroom_id"] == "jd-1-g3"
        lesson_clock["now"] = start + 12 * MIN
        await device.drop()  # the village link drops
        await teacher.expect("participant_left", participant_id=first.participant_id)
        lesson_clock["now"] = start + 15 * MIN
        reconnects = REGISTRY.get_sample_value("sanke_reconnects_total", {"role": "classroom"}) or 0
        await device.join_current()
        assert (
            REGISTRY.get_sample_value("sanke_reconnects_total", {"role": "classroom"})
            == reconnects + 1
        )
        lesson_clock["now"] = start + 55 * MIN
        await lessons.tick()
        done = await lessons.get("eng.today")
        assert done.state is SessionState.ended
        [attendance] = await lessons.attendance(done)
        assert attendance.reconnects == 1
        assert attendance.minutes_present == pytest.approx(36.0, abs=0.05)  # 1–12 and 15–40
        assert attendance.minutes_lost == pytest.approx(3.0, abs=0.05)
        assert (await lessons.records.verify()).ok


async def test_device_schedule_ics_and_revocation() -> None:
    async with running_app() as h:
        now = time.time()
        await h.sessions.put(session_at(now + 86400, "eng.next"))
        await h.sessions.put(session_at(now + 2 * 86400, "eng.later", state=SessionState.cancelled))
        credential = await register(h)
        reply = await h.session.get(h.url("/api/v1/device/schedule.ics"), headers=auth(credential))
        assert reply.status == 200 and reply.content_type == "text/calendar"
        events = Calendar.from_ical(await reply.read()).walk("VEVENT")
        assert {str(e["UID"]) for e in events} == {"eng.next@sanke", "eng.later@sanke"}
        status = {str(e["UID"]): str(e["STATUS"]) for e in events}
        assert status["eng.later@sanke"] == "CANCELLED"

        # Too early: a clear code and when the next lesson opens.
        reply = await h.session.post(h.url("/api/v1/device/join"), headers=auth(credential))
        body = await reply.json()
        assert reply.status == 409 and body["error"]["code"] == "lesson_not_open"
        assert "next lesson opens" in body["error"]["message"]

        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        devices = await (
            await h.session.get(h.url("/api/v1/devices"), headers=auth(coordinator))
        ).json()
        device_id = devices["devices"][0]["id"]
        assert (
            await h.session.delete(h.url(f"/api/v1/devices/{device_id}"), headers=auth(coordinator))
        ).status == 200
        reply = await h.session.get(h.url("/api/v1/device/schedule"), headers=auth(credential))
        assert reply.status == 403
        for bad in ("", "dev.nope.nope", credential[:-3] + "xyz", "garbage"):
            reply = await h.session.get(
                h.url("/api/v1/device/schedule"), headers=auth(bad) if bad else {}
            )
            assert reply.status == 401, bad


async def test_session_tokens_carry_the_join_window() -> None:
    async with running_app() as h:
        now = time.time()
        await h.sessions.put(session_at(now + 30 * MIN, "eng.soon"))  # opens in 20 min
        await h.sessions.put(session_at(now - 3 * 3600, "eng.past"))  # closed 2 h ago
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        reply = await h.session.post(
            h.url("/api/v1/lessons/eng.soon/tokens"), headers=auth(coordinator)
        )
        assert reply.status == 201
        tokens = await reply.json()
        assert set(tokens["classrooms"]) == {"jd-1-g3"}
        early = await h.connect()
        await early.send({"type": "join", "token": tokens["teacher"]})
        assert (await early.expect("error"))["code"] == "token_not_yet_valid"

        reply = await h.session.post(
            h.url("/api/v1/lessons/eng.past/tokens"), headers=auth(coordinator)
        )
        past = await reply.json()
        late = await h.connect()
        await late.send({"type": "join", "token": past["classrooms"]["jd-1-g3"]})
        assert (await late.expect("error"))["code"] == "token_expired"


async def test_cancel_and_move_over_http_tell_the_room() -> None:
    async with running_app() as h:
        now = time.time()
        await h.sessions.put(session_at(now + 5 * MIN, "eng.now"))
        await h.sessions.put(session_at(now + 86400, "eng.tomorrow"))
        await h.rooms.create(Room(id="eng.now"))
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        kiosk = await h.connect()
        await kiosk.join(
            h.tokens.mint(subject="k", role=Role.classroom, room="eng.now", classroom_id="jd-1-g3")
        )
        reply = await h.session.post(
            h.url("/api/v1/lessons/eng.now/cancel"),
            json={"reason": "停电"},
            headers=auth(coordinator),
        )
        assert reply.status == 200
        changed = await kiosk.expect("lesson_changed")
        assert changed["state"] == "cancelled" and "停电" in changed["message"]
        reply = await h.session.post(
            h.url("/api/v1/lessons/eng.tomorrow/move"),
            json={"starts_at": "2099-01-05T10:00:00", "reason": "教研活动"},
            headers=auth(coordinator),
        )
        assert reply.status == 201
        makeup = await reply.json()
        assert makeup["moved_from"] == "eng.tomorrow" and makeup["date"] == "2099-01-05"
        again = await h.session.post(
            h.url("/api/v1/lessons/eng.tomorrow/move"),
            json={"starts_at": "2099-01-06T10:00:00", "reason": "x"},
            headers=auth(coordinator),
        )
        assert again.status == 409
        bad = await h.session.post(
            h.url(f"/api/v1/lessons/{makeup['id']}/move"),
            json={"starts_at": "soon"},
            headers=auth(coordinator),
        )
        assert bad.status == 422 and (await bad.json())["error"]["details"]


async def test_statistics_on_a_known_history() -> None:
    async with running_app() as h:
        for school, region in [
            ("xian-shiyan", "41/4117/411721"),
            ("jd-1", "41/4117/411721"),
            ("far", "41/4101/410102"),
        ]:
            await h.store.hset(
                "h:lesson-schools",
                school,
                SchoolPlace(name=school, region=region).model_dump_json(),
            )
        base = time.mktime((2026, 11, 2, 10, 0, 0, 0, 0, -1))
        history = [
            session_at(
                base, "a.1", state=SessionState.ended, teacher_joined_at=base + 120, recorded=True
            ),
            session_at(
                base + 86400,
                "a.2",
                state=SessionState.ended,
                teacher_joined_at=base + 86400,
                recorded=True,
            ),
            session_at(base + 2 * 86400, "a.3", state=SessionState.missed, recorded=True),
            session_at(base + 3 * 86400, "a.4", state=SessionState.cancelled, recorded=True),
            session_at(
                base,
                "far.1",
                master_school="far",
                remotes=[],
                state=SessionState.missed,
                recorded=True,
            ),
        ]
        for s in history:
            await h.sessions.put(s)
        # jd-1 attended a.1 only.
        from scheduler.lessons.attendance import AttendanceEvent, attendance_list

        for t, kind in ((base, "join"), (base + 30 * MIN, "leave")):
            event = AttendanceEvent(
                t=t,
                kind=kind,
                participant_id="p1",
                role=Role.classroom,
                classroom_id="jd-1-g3",
                reason="left" if kind == "leave" else None,
            )  # type: ignore[arg-type]
            await h.store.append(attendance_list("a.1"), event.model_dump_json())
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        day = time.strftime("%Y-%m-%d", time.localtime(base))
        reply = await h.session.get(
            h.url("/api/v1/lessons/stats"),
            params={"period": "week", "date": day, "group_by": "county"},
            headers=auth(coordinator),
        )
        assert reply.status == 200, await reply.text()
        report = await reply.json()
        rows = {r["group"]: r for r in report["rows"]}
        county = rows["41/4117/411721"]
        assert (county["scheduled"], county["held"], county["missed"], county["cancelled"]) == (
            3,
            2,
            1,
            1,
        )
        assert county["opening_rate"] == pytest.approx(2 / 3, abs=1e-4)
        assert county["average_late_minutes"] == 1.0
        assert county["remote_attendance_rate"] == 0.5
        assert rows["41/4101/410102"]["opening_rate"] == 0.0
        assert report["total"]["scheduled"] == 4

        reply = await h.session.get(
            h.url("/api/v1/lessons/stats"),
            params={"period": "week", "date": day, "school": "jd-1", "format": "csv"},
            headers=auth(coordinator),
        )
        assert reply.content_type == "text/csv"
        table = list(csv.DictReader(io.StringIO(await reply.text())))
        assert [r["group"] for r in table] == ["jd-1", "total"]
        assert table[0]["held"] == "2" and table[0]["missed"] == "1"

        for params in ({"period": "year"}, {"from": "yesterday"}, {"group_by": "planet"}):
            reply = await h.session.get(
                h.url("/api/v1/lessons/stats"), params=params, headers=auth(coordinator)
            )
            assert reply.status == 422, params
        teacher = h.tokens.mint(subject="t", role=Role.teacher, room="x")
        reply = await h.session.get(h.url("/api/v1/lessons/stats"), headers=auth(teacher))
        assert reply.status == 403
