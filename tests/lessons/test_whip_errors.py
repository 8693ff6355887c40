"""Every bad WHIP request gets a clear JSON error and changes nothing: no participant joins
the lesson's room, the lesson does not go live. (The happy path is in test_whip.py.)"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

import aiohttp
import pytest
from support.sessions import english_lesson
from support.whip_client import static_offer
from support.whip_lesson import LESSON, MASTER_CLASSROOM, WhipLesson, whip_lesson

from contracts.media import MAX_SDP_BYTES
from lessons.sessions import SHANGHAI
from lessons.whip_api import OFFERS_PER_MINUTE

pytestmark = pytest.mark.timeout(60)

AUDIO_ONLY = static_offer(video=None)
VIDEO_INACTIVE = static_offer(video="inactive")


async def post(
    lesson: WhipLesson,
    body: bytes | str,
    *,
    token: str | None = "",
    source_id: str | None = None,
    content_type: str = "application/sdp",
) -> tuple[int, dict[str, Any], aiohttp.typedefs.LooseHeaders]:
    headers = {"Content-Type": content_type}
    token = lesson.token if token == "" else token
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = body.encode() if isinstance(body, str) else body
    async with lesson.h.session.post(
        lesson.endpoint(source_id), data=data, headers=headers
    ) as reply:
        assert reply.content_type == "application/json", await reply.text()
        return reply.status, (await reply.json())["error"], reply.headers


async def nothing_changed(lesson: WhipLesson) -> None:
    assert await lesson.h.rooms.list_participants(LESSON) == []
    session = await lesson.h.sessions.get(LESSON)
    assert session is not None and session.state.value == "scheduled"
    assert (await lesson.status())["connected"] is False


async def test_bad_tokens_unknown_sources_and_bad_bodies_are_refused() -> None:
    async with whip_lesson() as lesson:
        other = await lesson_source(lesson)
        cases: list[tuple[str, dict[str, Any], int, str]] = [
            ("no token", {"token": None}, 401, "token_missing"),
            ("a wrong token", {"token": lesson.token[:-4] + "abcd"}, 401, "token_invalid"),
            ("a coordinator's token", {"token": lesson.coordinator}, 401, "token_invalid"),
            ("another source's token", {"token": other}, 401, "token_invalid"),
            ("an unknown source", {"source_id": "src000000000000"}, 404, "not_found"),
            ("a source id that cannot be one", {"source_id": "..%2f"}, 404, "not_found"),
            ("JSON", {"content_type": "application/json"}, 415, "invalid_request"),
        ]
        for what, kw, status, code in cases:
            got, error, _ = await post(lesson, AUDIO_ONLY, **kw)
            assert (got, error["code"]) == (status, code), what
        await nothing_changed(lesson)


async def test_bad_offers_get_400_without_the_parsers_words() -> None:
    async with whip_lesson() as lesson:
        for what, body, says in [
            ("empty", "", "empty"),
            ("not SDP", "hello encoder\r\n", ""),
            ("garbage lines", "v=0\r\no=- x\r\nm=video abc\r\n", ""),
            ("not UTF-8", b"v=0\r\n\xff\xfe\r\n", "UTF-8"),
            ("audio only", AUDIO_ONLY, "no video"),
            ("video inactive", VIDEO_INACTIVE, "no video"),
            ("H.265", static_offer().replace("H264/90000", "H265/90000"), "set it to H.264"),
            (
                "H264 High profile only",
                static_offer().replace("profile-level-id=42e01f", "profile-level-id=640028"),
                "set its profile to baseline",
            ),
        ]:
            status, error, _ = await post(lesson, body)
            assert (status, error["code"]) == (400, "invalid_sdp"), (what, error)
            assert says in error["message"], (what, error)
            for internal in ("Traceback", "Error(", "assert", "aiortc"):
                assert internal not in error["message"], (what, error)
        await nothing_changed(lesson)
        # after authentication, the operator sees what went wrong in the source's status
        last = (await lesson.status())["last_error"]
        assert last["code"] == "invalid_sdp" and "profile to baseline" in last["message"]


async def test_a_body_past_the_sdp_limit_is_413() -> None:
    async with whip_lesson() as lesson:
        status, error, _ = await post(lesson, "v=0\r\n" + "a=x\r\n" * (MAX_SDP_BYTES // 5))
        assert (status, error["code"]) == (413, "invalid_request")
        await nothing_changed(lesson)


async def test_no_open_lesson_is_409_with_a_code_and_when_to_retry() -> None:
    async with whip_lesson(open_now=False) as lesson:
        status, error, headers = await post(lesson, static_offer())
        assert (status, error["code"]) == (409, "lesson_not_open"), error
        assert "retry" in error["message"]
        assert int(headers["Retry-After"]) > 0
        assert headers["Access-Control-Allow-Origin"] == "*"  # errors carry CORS too
        assert (await lesson.status())["last_error"]["code"] == "lesson_not_open"

        # a lesson of the classroom later today: the answer says when it opens
        starts = time.time() + 3 * 3600
        await lesson.h.sessions.put(
            english_lesson(
                "eng.later",
                starts,
                master_classroom=MASTER_CLASSROOM,
                date=datetime.fromtimestamp(starts, SHANGHAI).date().isoformat(),
            )
        )
        status, error, _ = await post(lesson, static_offer())
        opens = datetime.fromtimestamp(starts - 600, SHANGHAI).strftime("%H:%M")
        assert status == 409 and f"the next one opens at {opens}" in error["message"], error


async def test_preflight_answers_cors_for_browser_whip_clients() -> None:
    async with (
        whip_lesson() as lesson,
        lesson.h.session.options(
            lesson.endpoint(),
            headers={
                "Origin": "https://encoder.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        ) as reply,
    ):
        assert reply.status == 204
        assert reply.headers["Access-Control-Allow-Origin"] == "*"
        assert "POST" in reply.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in reply.headers["Access-Control-Allow-Headers"]
        assert reply.headers["Accept-Post"] == "application/sdp"


async def test_a_session_resource_needs_the_token_and_an_existing_session() -> None:
    async with whip_lesson() as lesson:
        resource = lesson.endpoint() + "/sessions/" + "x" * 24
        async with lesson.h.session.delete(resource) as reply:
            assert reply.status == 401
        auth = {"Authorization": f"Bearer {lesson.token}"}
        async with lesson.h.session.delete(resource, headers=auth) as reply:
            assert reply.status == 404
            assert (await reply.json())["error"]["code"] == "not_found"
        patch = auth | {"Content-Type": "application/trickle-ice-sdpfrag"}
        async with lesson.h.session.patch(resource, data=b"a=candidate:x", headers=patch) as r:
            assert r.status == 404


async def lesson_source(lesson: WhipLesson) -> str:
    """A second source's token (of another classroom of the same school)."""
    async with lesson.h.session.post(
        lesson.h.url("/api/v1/sources"),
        json={"kind": "whip", "name": "4楼", "school": "xian-shiyan", "classroom": "4年级(1)班"},
        headers={"Authorization": f"Bearer {lesson.coordinator}"},
    ) as reply:
        assert reply.status == 201, await reply.text()
        token: str = json.loads(await reply.text())["token"]
        return token


async def test_an_encoder_offering_in_a_tight_loop_is_slowed_down() -> None:
    async with whip_lesson(open_now=False) as lesson:
        # The budget is per clock minute: a minute may turn during the loop, so up to twice.
        statuses = []
        for _ in range(2 * OFFERS_PER_MINUTE + 1):
            status, error, headers = await post(lesson, static_offer())
            statuses.append(status)
            if status == 429:
                assert error["code"] == "rate_limited" and int(headers["Retry-After"]) > 0
                break
        assert statuses[-1] == 429 and set(statuses[:-1]) == {409}, statuses
