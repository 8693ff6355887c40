"""Identity: a device belongs to a class of the registering coordinator's district and school,
and a display name comes from the token, cleaned, never a teacher label for a classroom."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest
from support.harness import Harness, running_app

from contracts.rooms import Role
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository

CLAIM = "王老师 (主讲教师)"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    h: Harness, body: dict[str, Any], school_id: str | None = None
) -> aiohttp.ClientResponse:
    coordinator = h.tokens.mint(subject="c", role=Role.coordinator, school_id=school_id)
    return await h.session.post(h.url("/api/v1/devices"), json=body, headers=bearer(coordinator))


async def devices(h: Harness) -> list[dict[str, Any]]:
    coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
    reply = await h.session.get(h.url("/api/v1/devices"), headers=bearer(coordinator))
    listed: list[dict[str, Any]] = (await reply.json())["devices"]
    return listed


async def error_code(reply: aiohttp.ClientResponse, status: int) -> str:
    assert reply.status == status, (reply.status, await reply.text())
    code: str = (await reply.json())["error"]["code"]
    return code


async def test_a_device_is_registered_only_for_a_class_of_its_school_in_scope() -> None:
    async with running_app() as h:
        await TimetableRepository(h.store).put_district(demo_district())
        # Another school's class under a school it is not in: its schedule and a token
        # naming the other school would follow.
        wrong_school = {"class_id": "jd-1-g3", "school": "jd-2"}
        assert await error_code(await register(h, wrong_school), 422) == "invalid_request"
        unknown = {"class_id": "nowhere-g9", "school": "jd-1"}
        assert await error_code(await register(h, unknown), 422) == "invalid_request"
        # A school's coordinator registers devices of its own school only.
        theirs = {"class_id": "jd-1-g3", "school": "jd-1"}
        assert await error_code(await register(h, theirs, school_id="jd-2"), 403) == "forbidden"
        assert await devices(h) == [], "nothing was stored"

        assert (await register(h, theirs, school_id="jd-1")).status == 201
        assert (await register(h, {"class_id": "jd-2-g3", "school": "jd-2"})).status == 201
        assert sorted(d["class_id"] for d in await devices(h)) == ["jd-1-g3", "jd-2-g3"]


async def test_without_a_district_there_is_no_class_to_register_for() -> None:
    async with running_app() as h:
        reply = await register(h, {"class_id": "jd-1-g3", "school": "jd-1"})
        assert await error_code(reply, 409) == "conflict"


@pytest.mark.parametrize("name", [CLAIM, "三年级\u202e师老王", "李庄\x00教学点", "teacher Wang"])
async def test_a_device_name_cannot_carry_controls_or_a_teacher_label(name: str) -> None:
    async with running_app() as h:
        await TimetableRepository(h.store).put_district(demo_district())
        reply = await register(h, {"class_id": "jd-1-g3", "school": "jd-1", "name": name})
        assert await error_code(reply, 422) == "invalid_request"
        assert "name" in {d["loc"] for d in (await reply.json())["error"]["details"]}


@pytest.mark.parametrize("name", [CLAIM, "\u202e王老师", "班\x00"])
async def test_a_minted_classroom_token_cannot_carry_such_a_name(name: str) -> None:
    async with running_app() as h:
        await h.room("r1")
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        body = {"subject": "k", "role": "classroom", "room": "r1", "name": name}
        reply = await h.session.post(
            h.url("/api/v1/tokens"), json=body, headers=bearer(coordinator)
        )
        assert await error_code(reply, 422) == "invalid_request"


async def test_the_token_names_a_classroom_not_its_join_message() -> None:
    async with running_app() as h:
        await h.room("r1")
        teacher = await h.joined(Role.teacher, "r1", name="张老师")
        kiosk = await h.connect()
        token = h.tokens.mint(subject="k", role=Role.classroom, room="r1", name="李庄 三年级")
        await kiosk.join(token, name=CLAIM)
        joined = await teacher.expect("participant_joined")
        assert joined["participant"]["name"] == "李庄 三年级"
        [stored] = [p for p in await h.rooms.list_participants("r1") if p.role is Role.classroom]
        assert stored.name == "李庄 三年级"


async def test_a_join_name_is_cleaned_and_may_not_claim_a_teacher_label() -> None:
    async with running_app() as h:
        await h.room("r1")
        teacher = await h.joined(Role.teacher, "r1")
        unnamed = h.tokens.mint(subject="k", role=Role.classroom, room="r1")
        liar = await h.connect()
        await liar.send({"type": "join", "token": unnamed, "name": "\u202e" + CLAIM})
        assert (await liar.expect("error"))["code"] == "invalid_message"
        assert await teacher.silent(0.2) == []

        kiosk = await h.connect()
        await kiosk.join(unnamed, name="李庄\u202e\u0000\u200b 三年级\n" + "班" * 90)
        name = (await teacher.expect("participant_joined"))["participant"]["name"]
        assert name.startswith("李庄 三年级 班") and len(name) == 64
        assert all(c.isprintable() for c in name)


async def test_a_teacher_keeps_its_own_name() -> None:
    async with running_app() as h:
        await h.room("r1")
        classroom = await h.joined(Role.classroom, "r1", name="三班")
        teacher = await h.connect()
        await teacher.join(h.tokens.mint(subject="t", role=Role.teacher, room="r1", name="王老师"))
        joined = await classroom.expect("participant_joined")
        assert joined["participant"]["name"] == "王老师"
