"""The replay library's API on both stores: who sees which recorded lesson (the access matrix),
search filters and paging, publishing for viewers, the short-lived play links, bad input."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from support.harness import Harness, running_app
from support.replays import KEY, lesson, part

from contracts.rooms import Role, RoomKind
from contracts.store import Store
from lessons.records import RecordLog
from lessons.replay_catalogue import ReplayCatalogue

A = "famous-a.2026-11-02"  # sch-a, teacher wang, broadcast, published
B = "master-b.2026-11-03"  # sch-b, teacher li, master, not published


@pytest.fixture
async def library(store: Store, tmp_path: Path) -> AsyncIterator[tuple[Harness, Path]]:
    recordings = tmp_path / "recordings"
    await lesson(store, A, kind=RoomKind.broadcast, school="sch-a", teacher="wang")
    await lesson(
        store, B, kind=RoomKind.master, school="sch-b", teacher="li", subject="chinese",
        grade=7, day="2026-11-03",
    )  # fmt: skip
    await part(store, recordings, A, data=b"A camera bytes", started_at=1_700_000_000)
    await part(store, recordings, A, data=b"A screen", track="screen", started_at=1_700_000_010)
    await part(store, recordings, B, data=b"B camera bytes", started_at=1_700_090_000)
    async with running_app(store=store, records_key=KEY, recordings_dir=str(recordings)) as h:
        admin = _auth(h, Role.admin, "admin-1")
        reply = await h.session.put(
            h.url(f"/api/v1/replays/{A}/published"), json={"published": True}, headers=admin
        )
        assert reply.status == 200, await reply.text()
        yield h, recordings


def _auth(h: Harness, role: Role, subject: str, school: str | None = None) -> dict[str, str]:
    token = h.tokens.mint(subject=subject, role=role, school_id=school)
    return {"Authorization": f"Bearer {token}"}


async def _get(h: Harness, path: str, headers: dict[str, str]) -> tuple[int, Any]:
    reply = await h.session.get(h.url(path), headers=headers)
    body = await reply.read()
    ctype = reply.headers.get("Content-Type", "")
    return reply.status, json.loads(body) if ctype.startswith("application/json") else body


MATRIX = [
    # who, role, subject, school, the lessons it sees
    ("admin", Role.admin, "admin-1", None, {A, B}),
    ("district coordinator", Role.coordinator, "coord-d", None, {A, B}),
    ("coordinator of sch-a", Role.coordinator, "coord-a", "sch-a", {A}),
    ("coordinator of sch-b", Role.coordinator, "coord-b", "sch-b", {B}),
    ("coordinator of another school", Role.coordinator, "coord-c", "sch-c", set()),
    ("the teacher of A (session token)", Role.teacher, "teacher:wang", "sch-a", {A}),
    ("the teacher of B", Role.teacher, "li", "sch-b", {B}),
    ("another teacher", Role.teacher, "teacher:zhao", "sch-a", set()),
    ("a viewer", Role.viewer, "viewer-1", None, {A}),
    ("an observer", Role.observer, "observer-1", None, {A}),
]


@pytest.mark.parametrize(
    ("who", "role", "subject", "school", "sees"), MATRIX, ids=[m[0] for m in MATRIX]
)
async def test_who_sees_which_recorded_lesson(
    library: tuple[Harness, Path],
    who: str,
    role: Role,
    subject: str,
    school: str | None,
    sees: set[str],
) -> None:
    h, _ = library
    auth = _auth(h, role, subject, school)
    status, listed = await _get(h, "/api/v1/replays", auth)
    assert status == 200, listed
    assert {r["id"] for r in listed["replays"]} == sees
    assert listed["total"] == len(sees)
    for replay_id, camera in ((A, b"A camera bytes"), (B, b"B camera bytes")):
        status, detail = await _get(h, f"/api/v1/replays/{replay_id}", auth)
        played, body = await _get(h, f"/api/v1/replays/{replay_id}/parts/1", auth)
        if replay_id in sees:
            assert status == 200 and detail["id"] == replay_id
            assert (played, body) == (200, camera)
            # the play link a <video> uses: no header, the token in ?play=
            link = detail["parts"][0]["url"]
            assert "?play=" in link
            got = await h.session.get(h.url(link))
            assert (got.status, await got.read()) == (200, camera)
        else:
            assert status == 404 and detail["error"]["code"] == "not_found"
            assert played == 404 and body["error"]["code"] == "not_found"
    may_publish = role in (Role.admin, Role.coordinator)
    reply = await h.session.put(
        h.url(f"/api/v1/replays/{B}/published"), json={"published": True}, headers=auth
    )
    body = await reply.json()
    if may_publish and B in sees:
        assert reply.status == 200 and body["published"] is True
    elif may_publish:
        assert reply.status == 404 and body["error"]["code"] == "not_found"
    else:
        assert reply.status == 403 and body["error"]["code"] == "forbidden"


async def test_a_classroom_device_has_no_library_and_no_token_none(
    library: tuple[Harness, Path],
) -> None:
    h, _ = library
    device = _auth(h, Role.classroom, "class:jd-1-g3", "sch-a")
    for path in ("/api/v1/replays", f"/api/v1/replays/{A}", f"/api/v1/replays/{A}/parts/1"):
        status, body = await _get(h, path, device)
        assert status == 403 and body["error"]["code"] == "forbidden", (path, body)
        status, body = await _get(h, path, {})
        assert status == 401 and body["error"]["code"] == "token_missing", (path, body)


async def test_search_filters_paging_and_newest_first(library: tuple[Harness, Path]) -> None:
    h, _ = library
    admin = _auth(h, Role.admin, "admin-1")

    async def ids(query: str) -> list[str]:
        status, body = await _get(h, f"/api/v1/replays?{query}", admin)
        assert status == 200, body
        return [r["id"] for r in body["replays"]]

    assert await ids("") == [B, A]  # newest first
    assert await ids("school=sch-a") == [A]
    assert await ids("teacher=li") == [B]
    assert await ids("subject=chinese") == [B]
    assert await ids("grade=5") == [A]
    assert await ids("kind=broadcast") == [A]
    assert await ids("kind=master&school=sch-a") == []
    assert await ids("from=2026-11-03") == [B]
    assert await ids("to=2026-11-02") == [A]
    assert await ids("from=2026-11-02&to=2026-11-02") == [A]
    assert await ids("published=true") == [A]
    assert await ids("published=false") == [B]
    status, page2 = await _get(h, "/api/v1/replays?page_size=1&page=2", admin)
    assert status == 200 and page2["total"] == 2 and [r["id"] for r in page2["replays"]] == [A]

    _, detail = await _get(h, f"/api/v1/replays/{A}", admin)
    assert detail["kind"] == "broadcast" and detail["school"] == "sch-a"
    assert (detail["teacher"], detail["subject"], detail["grade"]) == ("wang", "math", 5)
    assert detail["classroom"] == "sch-a-room1" and detail["session_id"] == A
    assert [(p["n"], p["track"]) for p in detail["parts"]] == [(1, "camera"), (2, "screen")]
    assert detail["tracks"] == ["camera", "screen"]
    assert detail["bytes"] == len(b"A camera bytes") + len(b"A screen")
    assert detail["duration_seconds"] == 70  # 60 s parts, the screen 10 s after the camera

    for bad in (
        "page_size=101",
        "page_size=0",
        "page=0",
        "grade=five",
        "kind=meeting",
        "from=yesterday",
        "published=maybe",
    ):
        status, body = await _get(h, f"/api/v1/replays?{bad}", admin)
        assert status == 422 and body["error"]["code"] == "invalid_request", (bad, body)
    status, body = await _get(h, f"/api/v1/replays/{A}/parts/3", admin)
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await _get(h, f"/api/v1/replays/{A}/parts/x", admin)
    assert status == 422


async def test_publishing_is_audited_and_withdrawing_stops_a_viewers_links(
    library: tuple[Harness, Path], store: Store
) -> None:
    h, _ = library
    coordinator = _auth(h, Role.coordinator, "coord-b", "sch-b")
    viewer = _auth(h, Role.viewer, "viewer-1")
    publish = h.url(f"/api/v1/replays/{B}/published")
    reply = await h.session.put(publish, json={"published": True}, headers=coordinator)
    assert reply.status == 200
    _, detail = await _get(h, f"/api/v1/replays/{B}", viewer)
    link = detail["parts"][0]["url"]
    assert (await h.session.get(h.url(link))).status == 200
    reply = await h.session.put(publish, json={"published": False}, headers=coordinator)
    assert reply.status == 200 and (await reply.json())["published"] is False
    gone = await h.session.get(h.url(link))
    assert gone.status == 404 and (await gone.json())["error"]["code"] == "not_found"
    # bad bodies change nothing
    for bad in ('{"published": "yes"}', "{}", "[]", '{"published": true, "x": 1}'):
        reply = await h.session.put(
            publish, data=bad, headers={**coordinator, "Content-Type": "application/json"}
        )
        assert reply.status == 422, bad
    _, listed = await _get(h, "/api/v1/replays?published=true", _auth(h, Role.admin, "a"))
    assert [r["id"] for r in listed["replays"]] == [A]
    actions = [
        (b["action"], b["actor"], b["target"])
        for line in await RecordLog(store, KEY).raw()
        if (b := json.loads(line)["body"]).get("kind") == "audit"
        and b["action"].startswith("replay")
    ]
    assert actions == [
        ("replay.published", "admin-1", A),
        ("replay.published", "coord-b", B),
        ("replay.unpublished", "coord-b", B),
    ]


async def test_a_play_link_plays_its_own_lesson_only_and_never_stands_for_a_bearer(
    library: tuple[Harness, Path],
) -> None:
    h, _ = library
    admin = _auth(h, Role.admin, "admin-1")
    _, detail = await _get(h, f"/api/v1/replays/{A}", admin)
    play = detail["parts"][0]["url"].split("?play=")[1]
    other = await h.session.get(h.url(f"/api/v1/replays/{B}/parts/1?play={play}"))
    assert other.status == 403 and (await other.json())["error"]["code"] == "forbidden"
    # as a bearer token anywhere else it is refused too
    bearer = {"Authorization": f"Bearer {play}"}
    for path in ("/api/v1/replays", f"/api/v1/replays/{A}", "/api/v1/lessons"):
        status, body = await _get(h, path, bearer)
        assert status == 403 and body["error"]["code"] == "forbidden", path
    # a room or API token in ?play= is no play link, nor a bearer in ?token=
    token = admin["Authorization"].removeprefix("Bearer ")
    for query in (f"play={token}", f"token={token}", "play="):
        status, body = await _get(h, f"/api/v1/replays/{A}/parts/1?{query}", {})
        assert status == 401, (query, body)


async def test_the_parts_of_a_lesson_from_two_nodes_are_one_lesson_in_order(
    store: Store, tmp_path: Path
) -> None:
    """A failover: the lesson's camera part 1 on one node, its part 1 again on the node that
    took the room over, and a share in between: one entry, its parts in time order."""
    recordings = tmp_path / "recordings"
    room = "famous-f.2026-11-04"
    await lesson(store, room, day="2026-11-04")
    second = await part(store, recordings, room, data=b"22", started_at=1_700_000_700, seconds=50)
    first = await part(store, recordings, room, data=b"1", started_at=1_700_000_000, seconds=600)
    share = await part(
        store, recordings, room, data=b"s", track="screen", started_at=1_700_000_100, seconds=30
    )
    replay = await ReplayCatalogue(store).get(room)
    assert replay is not None
    assert [p.file for p in replay.parts] == [first.file, share.file, second.file]
    assert [p.n for p in replay.parts] == [1, 2, 3]
    assert replay.duration_seconds == 750 and replay.bytes == 4
    assert replay.date == "2026-11-04"  # the session's day, whenever its parts ran
    assert len(await ReplayCatalogue(store).all()) == 1
