"""A running signaling app and WebSocket clients that speak the protocol, for tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from contracts.media import MediaPlane, NullMediaPlane
from contracts.rooms import Role, Room
from contracts.store import MemoryStore, Store
from lessons.repository import SessionRepository
from sanke.app import create_app
from sanke.settings import Settings
from signaling.rooms import RoomRepository
from signaling.tokens import TokenService

SECRET = "test-secret-" + "s" * 32


class Client:
    """One participant's WebSocket; keeps every message it received."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.inbox: list[dict[str, Any]] = []
        self.participant_id = ""

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send_str(json.dumps(message))

    async def recv(self, timeout: float = 5.0) -> dict[str, Any]:
        msg = await self.ws.receive(timeout=timeout)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"expected a text frame, got {msg.type!r} ({msg.data!r})")
        data: dict[str, Any] = json.loads(msg.data)
        self.inbox.append(data)
        return data

    async def expect(self, kind: str, timeout: float = 5.0, **fields: Any) -> dict[str, Any]:
        """The next message of ``kind`` matching ``fields`` (others are kept in the inbox)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"no {kind} {fields} within {timeout}s; inbox={self.inbox}")
            data = await self.recv(left)
            if data.get("type") == kind and all(data.get(k) == v for k, v in fields.items()):
                return data

    async def silent(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Everything received within ``seconds`` (expected: nothing)."""
        got: list[dict[str, Any]] = []
        try:
            while True:
                got.append(await self.recv(seconds))
        except TimeoutError:
            return got

    async def join(self, token: str, **extra: Any) -> dict[str, Any]:
        await self.send({"type": "join", "token": token, **extra})
        joined = await self.expect("joined")
        self.participant_id = joined["participant_id"]
        return joined

    async def close(self) -> None:
        await self.ws.close()


class Harness:
    def __init__(self, server: TestServer, store: Store, tokens: TokenService) -> None:
        self.server = server
        self.app = server.app
        self.store = store
        self.rooms = RoomRepository(store)
        self.sessions = SessionRepository(store)
        self.tokens = tokens
        self.session = aiohttp.ClientSession()
        self.clients: list[Client] = []

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def token(
        self, role: Role, room: str | None = "room-1", subject: str | None = None, **kw: Any
    ) -> str:
        return self.tokens.mint(
            subject=subject or f"{role.value}-{len(self.clients)}-{id(kw)}",
            role=role,
            room=room,
            **kw,
        )

    async def room(self, room_id: str = "room-1", **kw: Any) -> Room:
        room = Room(id=room_id, **kw)
        await self.rooms.create(room)
        return room

    async def connect(self, **kw: Any) -> Client:
        ws = await self.session.ws_connect(self.url("/ws"), **kw)
        client = Client(ws)
        self.clients.append(client)
        return client

    async def joined(
        self, role: Role, room: str = "room-1", subject: str | None = None, **kw: Any
    ) -> Client:
        client = await self.connect()
        await client.join(
            self.token(role, room, subject=subject or f"{role.value}-{len(self.clients)}", **kw)
        )
        return client

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        await self.session.close()


@asynccontextmanager
async def running_app(
    store: Store | None = None,
    media: MediaPlane | None = None,
    host: str = "127.0.0.1",
    **settings: Any,
) -> AsyncIterator[Harness]:
    """The app on a free port of ``host`` (``0.0.0.0``: reachable from test namespaces)."""
    store = store if store is not None else MemoryStore()
    config = Settings(token_secret=SECRET, dev=True, media=False, **({"rtmp_port": 0} | settings))
    app = create_app(config, store=store, media=media or NullMediaPlane())
    server = TestServer(app, host=host)
    await server.start_server()
    harness = Harness(server, store, TokenService(SECRET))
    try:
        yield harness
    finally:
        await harness.close()
        await server.close()
