"""The lesson sources repository on both stores (memory and a real Redis): register, get,
list, delete, authenticate with the token shown once, and the status it keeps; and the
coordinator API's scope (like classroom devices: the district's master classrooms, a school
coordinator's own school)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError
from support.harness import running_app
from support.whip_lesson import register_source

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from contracts.store import Store
from lessons.sources import (
    SOURCES,
    SourceKind,
    SourceLive,
    SourceRegistration,
    SourceRegistry,
)
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository


def registration(classroom: str = "3年级(1)班", school: str = "xian-shiyan") -> SourceRegistration:
    return SourceRegistration(
        kind=SourceKind.whip, name="录播主机", school=school, classroom=classroom
    )


async def refused(registry: SourceRegistry, source_id: str, token: str | None) -> ErrorCode:
    with pytest.raises(SankeError) as info:
        await registry.authenticate(source_id, token)
    assert info.value.status == 401
    return info.value.code


@pytest.mark.parametrize("crypto", ["default", "gm"])
async def test_register_authenticate_and_only_a_hash_is_kept(store: Store, crypto: Any) -> None:
    registry = SourceRegistry(store, crypto)
    registered = await registry.register(registration())
    prefix, source_id, secret = registered.token.split(".")
    assert (prefix, source_id) == ("whip", registered.source.id)
    assert registered.source.whip_url == f"/whip/v1/{source_id}"
    assert secret not in (await store.hget(SOURCES, source_id) or "")
    assert "secret" not in json.dumps(registered.source.model_dump(mode="json"))
    # another process on the same store knows it too
    assert (await SourceRegistry(store, crypto).authenticate(source_id, registered.token)).id == (
        source_id
    )
    assert await refused(registry, source_id, None) is ErrorCode.token_missing
    assert await refused(registry, source_id, registered.token[:-2] + "zz") is (
        ErrorCode.token_invalid
    )
    assert await refused(registry, "src000000000000", registered.token) is ErrorCode.token_invalid
    assert await refused(registry, source_id, "dev.x.y") is ErrorCode.token_invalid


async def test_list_is_by_school_then_classroom_and_delete_forgets(store: Store) -> None:
    registry = SourceRegistry(store)
    assert await registry.list() == []
    ids = [
        (await registry.register(registration(c, s))).source.id
        for c, s in (("4年级(1)班", "b"), ("3年级(1)班", "b"), ("3年级(1)班", "a"))
    ]
    assert [(s.school, s.classroom) for s in await registry.list()] == [
        ("a", "3年级(1)班"),
        ("b", "3年级(1)班"),
        ("b", "4年级(1)班"),
    ]
    deleted = await registry.delete(ids[0])
    assert deleted.id == ids[0] and await registry.get(ids[0]) is None
    with pytest.raises(SankeError) as info:
        await registry.delete(ids[0])
    assert info.value.status == 404


async def test_status_is_live_while_refreshed_and_keeps_the_last_error(store: Store) -> None:
    registry = SourceRegistry(store)
    source_id = (await registry.register(registration())).source.id
    assert (await registry.status(source_id)).connected is False
    await registry.record_error(source_id, ErrorCode.lesson_not_open, "no lesson open")
    live = SourceLive(
        room_id="r", participant_id="p1", since=1.0, updated_at=2.0, width=1280, height=720
    )
    await registry.set_live(source_id, live)
    status = await registry.status(source_id)
    assert (status.connected, status.room_id, status.height) == (True, "r", 720)
    assert status.last_error is not None and status.last_error.code is ErrorCode.lesson_not_open
    ttl = await store.ttl(f"kv:source-live:{source_id}")
    assert ttl is not None and 0 < ttl <= 10  # a publisher's process that died leaves no trace
    await registry.clear_live(source_id, "p0")  # an older publish's end: the newer one stays
    assert (await registry.status(source_id)).connected is True
    await registry.clear_live(source_id, "p1")
    assert (await registry.status(source_id)).connected is False


def test_sources_are_registered_with_their_kinds_settings() -> None:
    for kind in ("rtsp", "srt", "webrtc"):  # an rtsp/srt source without its URL
        with pytest.raises(ValidationError):
            SourceRegistration.model_validate(
                {"kind": kind, "name": "n", "school": "s", "classroom": "c"}
            )
    rtmp = {"kind": "rtmp", "name": "n", "school": "s", "classroom": "c"}
    assert SourceRegistration.model_validate(rtmp).kind == "rtmp"
    with pytest.raises(ValidationError):  # a camera's settings are an rtsp source's only
        SourceRegistration.model_validate(rtmp | {"rtsp": {"url": "rtsp://cam/1"}})
    srt = rtmp | {"kind": "srt"}
    for url in ("srt://[::]:9000?mode=listener", "srt://10.1.3.20:9000?mode=caller&latency=200"):
        assert SourceRegistration.model_validate(srt | {"srt": {"url": url}}).srt is not None
    for url in ("srt://host", "rtsp://cam:554/1", "srt://user@host:9000", "srt://h:9000 x"):
        with pytest.raises(ValidationError):
            SourceRegistration.model_validate(srt | {"srt": {"url": url}})


async def test_the_api_scopes_sources_like_devices() -> None:
    async with running_app() as h:
        district = h.tokens.mint(subject="coord-li", role=Role.coordinator)
        school = h.tokens.mint(subject="coord-sy", role=Role.coordinator, school_id="xian-shiyan")
        other = h.tokens.mint(subject="coord-jd", role=Role.coordinator, school_id="jd-1")
        teacher = h.tokens.mint(subject="t", role=Role.teacher, room="r")
        # no district yet
        assert (await register_source(h, district))["_status"] == 409
        await TimetableRepository(h.store).put_district(demo_district())

        assert (await register_source(h, teacher))["_status"] == 403
        assert (await register_source(h, district, classroom="9年级(9)班"))["_status"] == 422
        assert (await register_source(h, district, kind="rtsp"))["_status"] == 422
        assert (await register_source(h, other))["_status"] == 403
        mine = await register_source(h, school)
        assert mine["_status"] == 201 and mine["token"].startswith("whip.")
        source_id = mine["source"]["id"]

        async def get(path: str, token: str) -> tuple[int, Any]:
            async with h.session.get(
                h.url(path), headers={"Authorization": f"Bearer {token}"}
            ) as reply:
                return reply.status, await reply.json()

        status, listed = await get("/api/v1/sources", district)
        assert status == 200 and [s["id"] for s in listed["sources"]] == [source_id]
        assert listed["sources"][0]["status"]["connected"] is False
        assert mine["token"] not in json.dumps(listed)
        assert (await get("/api/v1/sources", other))[1]["sources"] == []
        assert (await get(f"/api/v1/sources/{source_id}", other))[0] == 404
        assert (await get(f"/api/v1/sources/{source_id}/status", school))[0] == 200
        async with h.session.delete(
            h.url(f"/api/v1/sources/{source_id}"), headers={"Authorization": f"Bearer {other}"}
        ) as reply:
            assert reply.status == 404  # another school's source is not found
        async with h.session.delete(
            h.url(f"/api/v1/sources/{source_id}"), headers={"Authorization": f"Bearer {school}"}
        ) as reply:
            assert reply.status == 200
        assert (await get("/api/v1/sources", district))[1]["sources"] == []
