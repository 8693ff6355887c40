"""A bare scheduler app (the schedule API on a memory store, no solver processes) behind a
test client, and a coordinator's Authorization header for it."""

from __future__ import annotations

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from contracts.rooms import Role
from contracts.store.memory import MemoryStore
from scheduler.api import setup_scheduler_routes
from signaling.http_auth import TOKENS_KEY, json_errors
from signaling.tokens import TokenService


async def scheduler_client() -> tuple[TestClient[web.Request, web.Application], dict[str, str]]:
    app = web.Application(middlewares=[json_errors])
    tokens = TokenService("x" * 32)
    app[TOKENS_KEY] = tokens
    setup_scheduler_routes(app, MemoryStore(), workers=0)
    client = TestClient(TestServer(app))
    await client.start_server()
    token = tokens.mint(subject="coord", role=Role.coordinator)
    return client, {"Authorization": f"Bearer {token}"}
