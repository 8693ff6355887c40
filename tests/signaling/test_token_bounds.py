"""Minting is bounded: every token ends, within its role's maximum lifetime (docs/security.md)."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest
from support.harness import Harness, running_app

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from signaling.tokens import TokenService

HOUR = 3600.0
# The documented maximum lifetime per role (docs/security.md, "Tokens").
MAX_TTL_SECONDS = {
    Role.teacher: 12 * HOUR,
    Role.classroom: 12 * HOUR,
    Role.viewer: 12 * HOUR,
    Role.observer: 12 * HOUR,
    Role.coordinator: 24 * HOUR,
    Role.admin: 24 * HOUR,
}


def coordinator(h: Harness) -> dict[str, str]:
    return {"Authorization": f"Bearer {h.tokens.mint(subject='c', role=Role.coordinator)}"}


async def refused(reply: aiohttp.ClientResponse) -> dict[str, Any]:
    assert 400 <= reply.status < 500, (reply.status, await reply.text())
    body: dict[str, Any] = await reply.json()
    assert body["error"]["code"] == ErrorCode.invalid_request.value
    return body["error"]


async def test_a_token_for_the_year_131968_is_refused() -> None:
    async with running_app() as h:
        await h.room("r1")
        body = {"subject": "v", "role": "viewer", "room": "r1", "expires": 4_102_444_800_000.0}
        reply = await h.session.post(h.url("/api/v1/tokens"), json=body, headers=coordinator(h))
        error = await refused(reply)
        assert reply.status == 422
        assert "expires" in {d["loc"] for d in error["details"]}


@pytest.mark.parametrize("field", ["not_before", "expires"])
@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
async def test_non_finite_times_get_a_json_4xx_not_a_500(field: str, number: str) -> None:
    async with running_app() as h:
        await h.room("r1")
        raw = f'{{"subject": "v", "role": "viewer", "room": "r1", "{field}": {number}}}'
        reply = await h.session.post(
            h.url("/api/v1/tokens"),
            data=raw,
            headers={**coordinator(h), "Content-Type": "application/json"},
        )
        error = await refused(reply)
        assert field in {d["loc"] for d in error["details"]}


@pytest.mark.parametrize("role", ["teacher", "classroom", "viewer", "observer"])
async def test_a_room_token_lives_at_most_its_roles_maximum(role: str) -> None:
    async with running_app() as h:
        await h.room("r1")
        limit = MAX_TTL_SECONDS[Role(role)]
        now = time.time()
        ok = {"subject": "s", "role": role, "room": "r1", "not_before": now}
        reply = await h.session.post(
            h.url("/api/v1/tokens"), json={**ok, "expires": now + limit}, headers=coordinator(h)
        )
        assert reply.status == 201, await reply.text()
        for too_long in ({"expires": now + limit + 61}, {"ttl_seconds": int(limit) + 60}):
            body = {**ok, **too_long}
            if "ttl_seconds" in too_long:
                del body["not_before"]
            reply = await h.session.post(h.url("/api/v1/tokens"), json=body, headers=coordinator(h))
            error = await refused(reply)
            assert str(int(limit)) in error["message"]


async def test_expired_or_far_future_windows_are_refused() -> None:
    async with running_app() as h:
        await h.room("r1")
        now = time.time()
        base = {"subject": "s", "role": "viewer", "room": "r1"}
        past = {**base, "not_before": now - 2 * HOUR, "expires": now - HOUR}
        await refused(
            await h.session.post(h.url("/api/v1/tokens"), json=past, headers=coordinator(h))
        )
        far = {**base, "not_before": now + 400 * 86400}
        await refused(
            await h.session.post(h.url("/api/v1/tokens"), json=far, headers=coordinator(h))
        )


async def test_a_default_ttl_above_the_role_maximum_is_cut_to_it() -> None:
    async with running_app(token_ttl_seconds=30 * 86400) as h:
        await h.room("r1")
        body = {"subject": "s", "role": "viewer", "room": "r1"}
        reply = await h.session.post(h.url("/api/v1/tokens"), json=body, headers=coordinator(h))
        assert reply.status == 201
        claims = h.tokens.verify((await reply.json())["token"])
        assert claims.exp - claims.nbf == MAX_TTL_SECONDS[Role.viewer]


@pytest.mark.parametrize("role", list(Role))
def test_the_token_service_itself_enforces_the_maximum(role: Role) -> None:
    tokens = TokenService("k" * 40)
    tokens.mint(subject="s", role=role, room="r", ttl=MAX_TTL_SECONDS[role])
    with pytest.raises(SankeError) as info:
        tokens.mint(subject="s", role=role, room="r", ttl=MAX_TTL_SECONDS[role] + 60)
    assert info.value.code is ErrorCode.invalid_request
    with pytest.raises(SankeError):
        tokens.mint(subject="s", role=role, room="r", not_before=float("nan"))
    with pytest.raises(SankeError):
        tokens.mint(subject="s", role=role, room="r", expires=float("inf"))


def test_the_cli_refuses_a_token_without_end() -> None:
    from sanke.cli import main

    args = ["token", "mint", "--role", "viewer", "--subject", "v", "--room", "r1"]
    with pytest.raises(SystemExit, match="at most 43200 seconds"):
        main([*args, "--ttl", str(366 * 86400), "--token-secret", "k" * 40])
