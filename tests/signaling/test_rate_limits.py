"""Token minting and device registration are rate-limited per caller: 429 JSON with
Retry-After, counted in the store so every process shares one budget."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest
from support.harness import Harness, running_app

from contracts.rooms import Role
from contracts.store import MemoryStore, Store
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository


async def within_one_window() -> None:
    """Start a burst well inside a clock minute: the budget is a fixed one-minute window."""
    left = 60 - time.time() % 60
    if left < 3:
        await asyncio.sleep(left + 0.1)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def limited(reply: aiohttp.ClientResponse) -> dict[str, Any]:
    assert reply.status == 429, (reply.status, await reply.text())
    assert 1 <= int(reply.headers["Retry-After"]) <= 60
    body: dict[str, Any] = await reply.json()
    assert body["error"]["code"] == "rate_limited"
    return body


async def test_minting_is_limited_per_caller() -> None:
    async with running_app(rate_token_mints_per_minute=5) as h:
        await h.room("r1")
        body = {"subject": "v", "role": "viewer", "room": "r1"}
        flooder = bearer(h.tokens.mint(subject="flooder", role=Role.coordinator))
        await within_one_window()
        for _ in range(5):
            reply = await h.session.post(h.url("/api/v1/tokens"), json=body, headers=flooder)
            assert reply.status == 201
        await limited(await h.session.post(h.url("/api/v1/tokens"), json=body, headers=flooder))
        # Another coordinator is not held back by the first one's flood.
        other = bearer(h.tokens.mint(subject="other", role=Role.coordinator))
        reply = await h.session.post(h.url("/api/v1/tokens"), json=body, headers=other)
        assert reply.status == 201


async def test_device_registration_is_limited_per_caller() -> None:
    async with running_app(rate_device_registrations_per_minute=2) as h:
        await TimetableRepository(h.store).put_district(demo_district())
        coordinator = bearer(h.tokens.mint(subject="c", role=Role.coordinator))
        body = {"class_id": "jd-1-g3", "school": "jd-1"}
        await within_one_window()
        for _ in range(2):
            reply = await h.session.post(h.url("/api/v1/devices"), json=body, headers=coordinator)
            assert reply.status == 201
        await limited(
            await h.session.post(h.url("/api/v1/devices"), json=body, headers=coordinator)
        )
        listed = await h.session.get(h.url("/api/v1/devices"), headers=coordinator)
        assert len((await listed.json())["devices"]) == 2, "the refused one changed nothing"


async def join_token(h: Harness, credential: str) -> aiohttp.ClientResponse:
    return await h.session.post(h.url("/api/v1/device/join"), headers=bearer(credential))


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_budget_is_shared_through_the_store(backend: str) -> None:
    """Two apps on one store (two processes on one Redis) share a caller's budget."""
    store: Store
    if backend == "redis":
        from support.redis_helpers import fresh_prefix, purge_prefix, redis_url_or_skip

        from contracts.store.redis import RedisStore

        url, prefix = redis_url_or_skip(), fresh_prefix()
        store = RedisStore(url, prefix=prefix)
    else:
        store = MemoryStore()
    try:
        async with (
            running_app(store=store, rate_token_mints_per_minute=3) as a,
            running_app(store=store, rate_token_mints_per_minute=3) as b,
        ):
            await a.room("r1")
            body = {"subject": "v", "role": "viewer", "room": "r1"}
            caller = bearer(a.tokens.mint(subject="shared", role=Role.coordinator))
            await within_one_window()
            statuses = []
            for h in (a, b, a, b):
                reply = await h.session.post(h.url("/api/v1/tokens"), json=body, headers=caller)
                statuses.append(reply.status)
            assert statuses == [201, 201, 201, 429]
    finally:
        if backend == "redis":
            purge_prefix(url, prefix)
