"""Security headers on every response (pages, files, API, errors, the WebSocket handshake),
no-store where tokens or credentials travel, and tokens only where a client can send them."""

from __future__ import annotations

import time

import pytest
from support.harness import running_app
from support.sessions import english_lesson

from contracts.rooms import Role
from sanke.app import LESSON_SERVICE_KEY
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository

EVERY_RESPONSE = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def assert_hardened(headers: object, what: str) -> None:
    for name, value in EVERY_RESPONSE.items():
        assert headers.get(name) == value, (what, name, dict(headers))  # type: ignore[attr-defined]
    csp = headers.get("Content-Security-Policy", "")  # type: ignore[attr-defined]
    for directive in ("default-src 'self'", "frame-ancestors 'none'", "object-src 'none'"):
        assert directive in csp, (what, csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, csp
    assert "Strict-Transport-Security" not in headers, what  # type: ignore[operator]


async def lesson_now(h: object) -> None:
    now = time.time()
    await h.sessions.put(  # type: ignore[attr-defined]
        english_lesson("eng.now", now + 60)
    )
    await h.app[LESSON_SERVICE_KEY].tick()  # type: ignore[attr-defined]
    await TimetableRepository(h.store).put_district(demo_district())  # type: ignore[attr-defined]


async def test_every_kind_of_response_carries_the_headers_and_secrets_are_not_cached() -> None:
    async with running_app() as h:
        await lesson_now(h)
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        auth = {"Authorization": f"Bearer {coordinator}"}
        plain = [
            ("GET", "/web/teacher.html"),
            ("GET", "/web/js/dom.js"),
            ("GET", "/web/css/sanke.css"),
            ("GET", "/healthz"),
            ("GET", "/openapi.json"),
            ("GET", "/api/v1/rooms"),  # 401 JSON error
            ("GET", "/no/such/page"),  # 404
            ("POST", "/api/v1/tokens"),  # 401
        ]
        for method, path in plain:
            reply = await h.session.request(method, h.url(path))
            assert_hardened(reply.headers, path)
            if path.startswith("/api/"):
                assert reply.headers.get("Cache-Control") == "no-store", path
        # the responses that carry a token or a credential are never stored by anyone
        secret_replies = []
        reply = await h.session.post(
            h.url("/api/v1/tokens"),
            json={"subject": "v", "role": "viewer", "room": "eng.now"},
            headers=auth,
        )
        secret_replies.append(("token", reply))
        reply = await h.session.post(
            h.url("/api/v1/devices"), json={"class_id": "jd-1-g3", "school": "jd-1"}, headers=auth
        )
        credential = (await reply.json())["credential"]
        secret_replies.append(("device credential", reply))
        reply = await h.session.post(
            h.url("/api/v1/device/join"), headers={"Authorization": f"Bearer {credential}"}
        )
        secret_replies.append(("device join token", reply))
        reply = await h.session.post(h.url("/api/v1/lessons/eng.now/tokens"), headers=auth)
        secret_replies.append(("session tokens", reply))
        for what, reply in secret_replies:
            assert reply.status in (200, 201), (what, await reply.text())
            assert reply.headers.get("Cache-Control") == "no-store", what
            assert_hardened(reply.headers, what)
        ws = await h.session.ws_connect(h.url("/ws"))
        assert_hardened(ws._response.headers, "websocket handshake")
        await ws.close()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/rooms"),
        ("POST", "/api/v1/tokens"),
        ("GET", "/api/v1/lessons"),
        ("GET", "/api/v1/schedule/district"),
        ("GET", "/api/v1/records"),
        ("GET", "/api/v1/devices"),
    ],
)
async def test_a_token_in_the_url_opens_no_api_route(method: str, path: str) -> None:
    async with running_app() as h:
        await lesson_now(h)
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        body = {"subject": "v", "role": "viewer", "room": "eng.now"} if method == "POST" else None
        reply = await h.session.request(method, h.url(f"{path}?token={coordinator}"), json=body)
        assert reply.status == 401, (await reply.text())[:200]
        error = (await reply.json())["error"]
        assert error["code"] == "token_missing" and "Authorization" in error["message"]
        # the same token in the header works
        reply = await h.session.request(
            method, h.url(path), json=body, headers={"Authorization": f"Bearer {coordinator}"}
        )
        assert reply.status < 400, (path, reply.status, (await reply.text())[:200])


async def test_calendar_subscriptions_still_take_the_token_from_the_url() -> None:
    async with running_app() as h:
        await lesson_now(h)
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        reply = await h.session.post(
            h.url("/api/v1/devices"),
            json={"class_id": "jd-1-g3", "school": "jd-1"},
            headers={"Authorization": f"Bearer {coordinator}"},
        )
        credential = (await reply.json())["credential"]
        # the device's long-lived credential never goes in a URL: a calendar link does
        reply = await h.session.get(h.url(f"/api/v1/device/schedule.ics?token={credential}"))
        assert reply.status == 401
        assert "calendar-link" in (await reply.json())["error"]["message"]
        reply = await h.session.post(
            h.url("/api/v1/device/calendar-link"), headers={"Authorization": f"Bearer {credential}"}
        )
        assert reply.status == 201
        url = (await reply.json())["url"]
        assert credential not in url
        reply = await h.session.get(h.url(url))
        assert reply.status == 200 and "BEGIN:VCALENDAR" in await reply.text()
        assert reply.headers.get("Cache-Control") == "no-store"
        link_token = url.split("?token=")[1]
        # the link reads that calendar only: not the device's schedule, not a room
        reply = await h.session.get(
            h.url("/api/v1/device/schedule"), headers={"Authorization": f"Bearer {link_token}"}
        )
        assert reply.status == 401
        reply = await h.session.post(
            h.url("/api/v1/device/join"), headers={"Authorization": f"Bearer {link_token}"}
        )
        assert reply.status == 401
        device_id = credential.split(".")[1]
        reply = await h.session.delete(
            h.url(f"/api/v1/devices/{device_id}"),
            headers={"Authorization": f"Bearer {coordinator}"},
        )
        assert reply.status == 200
        reply = await h.session.get(h.url(url))
        assert reply.status == 403  # a revoked device's link ends with it
        # a calendar route with no token at all still says what is missing
        reply = await h.session.get(h.url("/api/v1/device/schedule.ics"))
        assert reply.status == 401
