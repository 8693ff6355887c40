"""The HTTP API of the signaling plane over a real aiohttp server (memory and Redis stores)."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.errors import ErrorCode
from contracts.rooms import Role, Room, RoomState
from contracts.store import MemoryStore, Store
from contracts.store.redis import RedisStore
from sanke.app import create_app
from sanke.settings import Settings
from signaling.rooms import RoomRepository
from signaling.tokens import TokenService

SECRET = "http-api-test-secret-" + "z" * 24
TOKENS = TokenService(SECRET)


def token(role: Role, room: str | None = None, **extra: Any) -> str:
    return TOKENS.mint(subject=f"{role.value}-1", role=role, room=room, **extra)


def auth(role: Role = Role.coordinator, room: str | None = None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(role, room)}"}


COORD = auth(Role.coordinator)
ADMIN = auth(Role.admin)


def make_app(store: Store, **settings: Any) -> web.Application:
    return create_app(
        Settings(
            token_secret=SECRET,
            dev=True,
            media=False,
            heartbeat_seconds=settings.pop("heartbeat_seconds", 5.0),
            room_max_participants=settings.pop("room_max_participants", 32),
            **settings,
        ),
        store=store,
    )


@asynccontextmanager
async def serving(store: Store) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with TestClient(TestServer(make_app(store))) as client:
        yield client


@pytest.fixture
async def client() -> AsyncIterator[TestClient[web.Request, web.Application]]:
    async with serving(MemoryStore()) as c:
        yield c


Client = TestClient[web.Request, web.Application]


async def error_of(response: aiohttp.ClientResponse, status: int) -> dict[str, Any]:
    """The response is a JSON error with ``status``; returns its ``error`` object."""
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body = await response.json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert isinstance(error["code"], str) and error["code"] in {c.value for c in ErrorCode}
    assert isinstance(error["message"], str) and error["message"]
    return error


async def create(client: Client, room_id: str, **body: Any) -> aiohttp.ClientResponse:
    return await client.post("/api/v1/rooms", json={"id": room_id, **body}, headers=COORD)


# --- ops -----------------------------------------------------------------------


async def test_health_and_ready(client: Client) -> None:
    r = await client.get("/healthz")
    assert r.status == 200
    assert (await r.json())["status"] == "ok"
    r = await client.get("/readyz")
    assert r.status == 200
    body = await r.json()
    assert body["status"] == "ready"
    assert body["node_id"]


async def test_metrics_exposes_sanke_series(client: Client) -> None:
    r = await client.get("/metrics")
    assert r.status == 200
    assert r.content_type == "text/plain"
    text = await r.text()
    names = {
        line.split()[2]
        for line in text.splitlines()
        if line.startswith("# TYPE ") and line.split()[2].startswith("sanke_")
    }
    assert {"sanke_ws_connections", "sanke_join_latency_seconds"} <= names
    assert any(name.startswith("sanke_joins") for name in names), names


async def test_unknown_path_and_method_are_json_errors(client: Client) -> None:
    error = await error_of(await client.get("/api/v1/nothing-here"), 404)
    assert error["code"] == "not_found"
    error = await error_of(await client.put("/api/v1/rooms", json={}, headers=COORD), 405)
    assert error["code"] == "invalid_request"


# --- rooms CRUD (both stores) ---------------------------------------------------


async def check_rooms_crud(client: Client) -> None:
    r = await create(client, "math-g3", name="三年级数学", kind="dedicated", school_id="jd-1")
    assert r.status == 201
    created = Room.model_validate(await r.json())
    assert created.id == "math-g3"
    assert created.name == "三年级数学"
    assert created.state is RoomState.open
    assert created.max_participants == 32, "the default capacity comes from the settings"

    r = await create(client, "broadcast-1", kind="broadcast", max_participants=500)
    assert r.status == 201
    assert (await r.json())["max_participants"] == 500

    r = await client.get("/api/v1/rooms", headers=COORD)
    assert r.status == 200
    listing = (await r.json())["rooms"]
    assert [v["room"]["id"] for v in listing] == ["broadcast-1", "math-g3"]
    assert [v["participant_count"] for v in listing] == [0, 0]

    r = await client.get("/api/v1/rooms/math-g3", headers=COORD)
    assert r.status == 200
    detail = await r.json()
    assert Room.model_validate(detail["room"]) == created
    assert detail["participants"] == []

    r = await client.delete("/api/v1/rooms/math-g3", headers=COORD)
    assert r.status == 200
    closed = Room.model_validate(await r.json())
    assert closed.state is RoomState.closed
    assert closed.closed_at is not None
    r = await client.get("/api/v1/rooms/math-g3", headers=COORD)
    assert (await r.json())["room"]["state"] == "closed"

    error = await error_of(await create(client, "math-g3"), 409)
    assert error["code"] == "room_exists"
    error = await error_of(await client.get("/api/v1/rooms/nope", headers=COORD), 404)
    assert error["code"] == "room_not_found"
    error = await error_of(await client.delete("/api/v1/rooms/nope", headers=COORD), 404)
    assert error["code"] == "room_not_found"


async def test_rooms_crud_memory(client: Client) -> None:
    await check_rooms_crud(client)


async def test_rooms_crud_redis(redis_url: str) -> None:
    prefix = fresh_prefix()
    try:
        async with serving(RedisStore(redis_url, prefix=prefix)) as c:
            await check_rooms_crud(c)
            # the rooms really are in Redis, under this prefix
            other = RedisStore(redis_url, prefix=prefix)
            try:
                assert sorted(r.id for r in await RoomRepository(other).all()) == [
                    "broadcast-1",
                    "math-g3",
                ]
            finally:
                await other.close()
    finally:
        purge_prefix(redis_url, prefix)


async def test_duplicate_room_changes_nothing(client: Client) -> None:
    assert (await create(client, "r1", name="first")).status == 201
    error = await error_of(await create(client, "r1", name="second"), 409)
    assert error["code"] == "room_exists"
    r = await client.get("/api/v1/rooms/r1", headers=COORD)
    assert (await r.json())["room"]["name"] == "first"


# --- authorization --------------------------------------------------------------

ROOM_ROUTES = [
    ("POST", "/api/v1/rooms", {"id": "r9"}),
    ("GET", "/api/v1/rooms", None),
    ("GET", "/api/v1/rooms/r1", None),
    ("DELETE", "/api/v1/rooms/r1", None),
    ("POST", "/api/v1/tokens", {"subject": "s", "role": "teacher", "room": "r1"}),
]


@pytest.mark.parametrize(("method", "path", "body"), ROOM_ROUTES)
async def test_without_token_is_401(
    client: Client, method: str, path: str, body: dict[str, Any] | None
) -> None:
    assert (await create(client, "r1")).status == 201
    error = await error_of(await client.request(method, path, json=body), 401)
    assert error["code"] == "token_missing"
    bad = {"Authorization": "Bearer not-a-jwt"}
    error = await error_of(await client.request(method, path, json=body, headers=bad), 401)
    assert error["code"] == "token_invalid"
    foreign = TokenService("f" * 40).mint(subject="x", role=Role.admin)
    error = await error_of(
        await client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {foreign}"}
        ),
        401,
    )
    assert error["code"] == "token_invalid"
    # nothing changed
    assert await (await client.get("/api/v1/rooms/r1", headers=COORD)).json() != {}
    r = await client.get("/api/v1/rooms", headers=COORD)
    assert [v["room"]["id"] for v in (await r.json())["rooms"]] == ["r1"]
    assert (await (await client.get("/api/v1/rooms/r1", headers=COORD)).json())["room"][
        "state"
    ] == "open"


@pytest.mark.parametrize(("method", "path", "body"), ROOM_ROUTES)
@pytest.mark.parametrize("role", [Role.teacher, Role.classroom, Role.viewer, Role.observer])
async def test_room_roles_are_403(
    client: Client, method: str, path: str, body: dict[str, Any] | None, role: Role
) -> None:
    assert (await create(client, "r1")).status == 201
    r = await client.request(method, path, json=body, headers=auth(role, "r1"))
    error = await error_of(r, 403)
    assert error["code"] == "forbidden"
    r = await client.get("/api/v1/rooms", headers=COORD)
    assert [v["room"]["state"] for v in (await r.json())["rooms"]] == ["open"]


async def test_expired_token_is_401_token_expired(client: Client) -> None:
    now = time.time()
    old = TOKENS.mint(subject="c", role=Role.coordinator, not_before=now - 7200, expires=now - 3600)
    r = await client.get("/api/v1/rooms", headers={"Authorization": f"Bearer {old}"})
    assert (await error_of(r, 401))["code"] == "token_expired"


async def test_token_in_query_string_is_refused(client: Client) -> None:
    # A token in a URL ends up in history, proxy logs and Referers: headers only (.ics aside).
    r = await client.get("/api/v1/rooms", params={"token": token(Role.coordinator)})
    assert (await error_of(r, 401))["code"] == "token_missing"


async def test_admin_may_manage_rooms(client: Client) -> None:
    r = await client.post("/api/v1/rooms", json={"id": "adm"}, headers=ADMIN)
    assert r.status == 201


# --- validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "kind"),
    [
        ({"id": "has space"}, "id", "string_pattern_mismatch"),
        ({"id": "-leading-dash"}, "id", "string_pattern_mismatch"),
        ({"id": ""}, "id", "string_pattern_mismatch"),
        ({"id": "x" * 200}, "id", "string_pattern_mismatch"),
        ({"id": 42}, "id", "string_type"),
        ({}, "id", "missing"),
        ({"id": "ok", "max_participants": "many"}, "max_participants", "int_parsing"),
        ({"id": "ok", "max_participants": 0}, "max_participants", "greater_than_equal"),
        ({"id": "ok", "max_participants": 10_001}, "max_participants", "less_than_equal"),
        ({"id": "ok", "kind": "lecture"}, "kind", "enum"),
        ({"id": "ok", "name": "n" * 201}, "name", "string_too_long"),
        ({"id": "ok", "colour": "red"}, "colour", "extra_forbidden"),
    ],
)
async def test_invalid_room_body_is_422_pointing_at_the_field(
    client: Client, body: dict[str, Any], field: str, kind: str
) -> None:
    error = await error_of(await client.post("/api/v1/rooms", json=body, headers=COORD), 422)
    assert error["code"] == "invalid_request"
    assert {"loc": field, "type": kind} in [
        {"loc": d["loc"], "type": d["type"]} for d in error["details"]
    ], error["details"]
    assert field in error["message"] or error["message"].startswith(field)
    r = await client.get("/api/v1/rooms", headers=COORD)
    assert (await r.json())["rooms"] == [], "a refused body must create nothing"


async def test_every_invalid_field_is_reported(client: Client) -> None:
    body = {"id": "bad id", "max_participants": -1, "kind": "x"}
    error = await error_of(await client.post("/api/v1/rooms", json=body, headers=COORD), 422)
    assert {d["loc"] for d in error["details"]} == {"id", "max_participants", "kind"}


@pytest.mark.parametrize(
    "raw", [b"{not json", b"", b"[1, 2]", b'"room"', b"null", b'{"id": "a",}', b"\xff\xfe"]
)
async def test_malformed_body_is_a_4xx_json_error(client: Client, raw: bytes) -> None:
    r = await client.post(
        "/api/v1/rooms",
        data=raw,
        headers={**COORD, "Content-Type": "application/json"},
    )
    assert 400 <= r.status < 500
    error = await error_of(r, r.status)
    assert error["code"] == "invalid_request"
    r = await client.get("/api/v1/rooms", headers=COORD)
    assert (await r.json())["rooms"] == []


async def test_large_valid_body_is_read_whole(client: Client) -> None:
    """A body under the limit but bigger than one network read is still valid JSON."""
    raw = b'{"id": "padded"' + b" " * 300_000 + b', "name": "end"}'
    r = await client.post(
        "/api/v1/rooms", data=raw, headers={**COORD, "Content-Type": "application/json"}
    )
    assert r.status == 201, await r.text()
    assert (await r.json())["name"] == "end"


async def test_chunked_body_is_read_whole(client: Client) -> None:
    raw = b'{"id": "chunked"' + b" " * 100_000 + b', "name": "end"}'

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 4096):
            yield raw[i : i + 4096]
            await asyncio.sleep(0)

    r = await client.post(
        "/api/v1/rooms", data=chunks(), headers={**COORD, "Content-Type": "application/json"}
    )
    assert r.status == 201, await r.text()


async def test_body_over_the_limit_is_413(client: Client) -> None:
    raw = b'{"id": "huge", "name": "' + b"x" * (1 << 20) + b'"}'
    r = await client.post(
        "/api/v1/rooms", data=raw, headers={**COORD, "Content-Type": "application/json"}
    )
    assert (await error_of(r, 413))["code"] == "invalid_request"

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 65536):
            yield raw[i : i + 65536]
            await asyncio.sleep(0)

    r = await client.post(
        "/api/v1/rooms", data=chunks(), headers={**COORD, "Content-Type": "application/json"}
    )
    assert (await error_of(r, 413))["code"] == "invalid_request"


# --- token minting ----------------------------------------------------------------


async def mint(client: Client, headers: dict[str, str], **body: Any) -> aiohttp.ClientResponse:
    return await client.post("/api/v1/tokens", json=body, headers=headers)


async def test_coordinator_mints_a_teacher_token(client: Client) -> None:
    assert (await create(client, "r1")).status == 201
    before = int(time.time())
    r = await mint(
        client,
        COORD,
        subject="teacher-zhang",
        role="teacher",
        room="r1",
        name="张老师",
        school_id="jd-1",
        ttl_seconds=600,
    )
    assert r.status == 201, await r.text()
    reply = await r.json()
    claims = TOKENS.verify(reply["token"])
    assert claims.sub == "teacher-zhang"
    assert claims.role is Role.teacher
    assert claims.room == "r1"
    assert claims.name == "张老师"
    assert claims.school_id == "jd-1"
    assert claims.nbf == reply["not_before"] >= before
    assert claims.exp == reply["expires"]
    assert claims.exp - claims.nbf == 600


async def test_minted_token_default_ttl_and_window(client: Client) -> None:
    assert (await create(client, "r1")).status == 201
    r = await mint(client, COORD, subject="k", role="classroom", room="r1")
    claims = TOKENS.verify((await r.json())["token"])
    assert claims.exp - claims.nbf == Settings(token_secret=SECRET).token_ttl_seconds
    later = time.time() + 3600
    r = await mint(
        client,
        COORD,
        subject="k",
        role="classroom",
        room="r1",
        not_before=later,
        expires=later + 60,
    )
    assert r.status == 201
    reply = await r.json()
    assert reply["not_before"] == int(later)
    assert reply["expires"] == int(later + 60)


@pytest.mark.parametrize("role", ["coordinator", "admin"])
async def test_coordinator_may_not_mint_management_tokens(client: Client, role: str) -> None:
    error = await error_of(await mint(client, COORD, subject="x", role=role), 403)
    assert error["code"] == "forbidden"


@pytest.mark.parametrize("role", ["coordinator", "admin"])
async def test_admin_mints_management_tokens(client: Client, role: str) -> None:
    r = await mint(client, ADMIN, subject="ops", role=role)
    assert r.status == 201
    claims = TOKENS.verify((await r.json())["token"])
    assert claims.role.value == role
    assert claims.room is None
    # and the minted coordinator token works on the API
    r = await client.get(
        "/api/v1/rooms", headers={"Authorization": f"Bearer {(await r.json())['token']}"}
    )
    assert r.status == 200


async def test_mint_for_a_missing_room_is_404(client: Client) -> None:
    error = await error_of(await mint(client, COORD, subject="t", role="teacher", room="nope"), 404)
    assert error["code"] == "room_not_found"


async def test_mint_room_role_without_room_is_422(client: Client) -> None:
    error = await error_of(await mint(client, COORD, subject="t", role="classroom"), 422)
    assert error["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"subject": "", "role": "teacher", "room": "r1"}, "subject"),
        ({"subject": "t", "role": "principal", "room": "r1"}, "role"),
        ({"subject": "t", "role": "teacher", "room": "bad room"}, "room"),
        ({"subject": "t", "role": "teacher", "room": "r1", "ttl_seconds": 5}, "ttl_seconds"),
        ({"role": "teacher", "room": "r1"}, "subject"),
        ({"subject": "t", "role": "teacher", "room": "r1", "scope": "all"}, "scope"),
    ],
)
async def test_mint_invalid_body_is_422(client: Client, body: dict[str, Any], field: str) -> None:
    assert (await create(client, "r1")).status == 201
    error = await error_of(await client.post("/api/v1/tokens", json=body, headers=COORD), 422)
    assert field in {d["loc"] for d in error["details"]}


async def test_mint_empty_window_is_refused(client: Client) -> None:
    assert (await create(client, "r1")).status == 201
    now = time.time()
    r = await mint(
        client, COORD, subject="t", role="teacher", room="r1", not_before=now, expires=now - 5
    )
    assert (await error_of(r, r.status))["code"] == "invalid_request"
    assert 400 <= r.status < 500


# --- rooms and live participants ---------------------------------------------------


async def ws_join(client: Client, tok: str) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await client.ws_connect("/ws")
    await ws.send_json({"type": "join", "token": tok})
    joined = await receive_type(ws, "joined")
    return ws, str(joined["participant_id"])


async def receive_type(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    while True:
        msg = await ws.receive(timeout=5)
        assert msg.type is aiohttp.WSMsgType.TEXT, (msg.type, msg.data, msg.extra)
        data: dict[str, Any] = json.loads(msg.data)
        if data["type"] == kind:
            return data


async def test_minted_token_joins_over_the_websocket(client: Client) -> None:
    assert (await create(client, "r1")).status == 201
    r = await mint(client, COORD, subject="kiosk-3", role="classroom", room="r1", name="三班")
    ws, pid = await ws_join(client, (await r.json())["token"])
    try:
        r = await client.get("/api/v1/rooms/r1", headers=COORD)
        participants = (await r.json())["participants"]
        assert [(p["id"], p["subject"], p["name"]) for p in participants] == [
            (pid, "kiosk-3", "三班")
        ]
        r = await client.get("/api/v1/rooms", headers=COORD)
        assert (await r.json())["rooms"][0]["participant_count"] == 1
    finally:
        await ws.close()


async def test_closing_a_room_disconnects_its_participants(client: Client) -> None:
    assert (await create(client, "r1")).status == 201
    assert (await create(client, "r2")).status == 201
    teacher, _ = await ws_join(client, token(Role.teacher, "r1"))
    classroom, _ = await ws_join(client, token(Role.classroom, "r1"))
    bystander, _ = await ws_join(client, token(Role.teacher, "r2"))
    try:
        r = await client.delete("/api/v1/rooms/r1", headers=COORD)
        assert r.status == 200
        for ws in (teacher, classroom):
            closed = await receive_type(ws, "room_closed")
            assert closed["room_id"] == "r1"
            msg = await ws.receive(timeout=5)
            assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), msg
            assert ws.closed
            assert ws.close_code == 4004
        r = await client.get("/api/v1/rooms/r1", headers=COORD)
        detail = await r.json()
        assert detail["room"]["state"] == "closed"
        assert detail["participants"] == []

        # a closed room cannot be joined again
        late = await client.ws_connect("/ws")
        await late.send_json({"type": "join", "token": token(Role.classroom, "r1")})
        error = await receive_type(late, "error")
        assert error["code"] == "room_closed"
        await late.close()

        # the other room is untouched
        assert not bystander.closed
        r = await client.get("/api/v1/rooms/r2", headers=COORD)
        assert len((await r.json())["participants"]) == 1
        await bystander.send_json({"type": "ping", "rid": "still-here"})
        assert (await receive_type(bystander, "pong"))["rid"] == "still-here"
    finally:
        for ws in (teacher, classroom, bystander):
            await ws.close()


# --- readiness follows the store -----------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def private_redis() -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway redis-server this test may stop (never the shared one)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0", proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=10)


async def test_readyz_fails_when_the_store_stops_answering(
    private_redis: tuple[str, subprocess.Popen[bytes]],
) -> None:
    url, proc = private_redis
    async with serving(RedisStore(url, prefix=fresh_prefix())) as c:
        assert (await c.get("/readyz")).status == 200
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        r = await c.get("/readyz")
        error = await error_of(r, 503)
        assert error["code"] == "internal"
        # liveness does not depend on the store
        assert (await c.get("/healthz")).status == 200


# --- OpenAPI --------------------------------------------------------------------------


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _route_path(route: web.AbstractRoute) -> str | None:
    if route.resource is None:
        return None
    info = route.resource.get_info()
    path = info.get("path") or info.get("formatter")
    return str(path) if path else None


async def test_openapi_lists_every_route_with_resolvable_schemas(client: Client) -> None:
    r = await client.get("/openapi.json")
    assert r.status == 200
    doc = await r.json()
    assert doc["openapi"].startswith("3.1")
    paths: dict[str, dict[str, Any]] = doc["paths"]

    registered: set[tuple[str, str]] = set()
    for route in client.app.router.routes():
        if route.method in {"HEAD", "*"}:
            continue
        path = _route_path(route)
        if path is None:  # static files (/web/...) are not part of the API
            info = route.resource.get_info() if route.resource is not None else {}
            assert "prefix" in info or "directory" in info, info
            continue
        registered.add((route.method.lower(), path))
    assert ("post", "/api/v1/rooms") in registered, "the walk found the API routes"
    documented = {(method, path) for path, ops in paths.items() for method in ops}
    assert registered == documented

    schemas = doc["components"]["schemas"]
    refs = set(_refs(doc))
    assert refs, "request and response bodies are referenced"
    for ref in refs:
        assert ref.startswith("#/components/schemas/"), ref
        assert ref.removeprefix("#/components/schemas/") in schemas, f"dangling {ref}"

    def body_ref(op: dict[str, Any]) -> str:
        ref: str = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        return ref.rsplit("/", 1)[1]

    def reply_ref(op: dict[str, Any], status: str) -> str:
        ref: str = op["responses"][status]["content"]["application/json"]["schema"]["$ref"]
        return ref.rsplit("/", 1)[1]

    rooms = paths["/api/v1/rooms"]
    assert body_ref(rooms["post"]) == "RoomCreate"
    assert reply_ref(rooms["post"], "201") == "Room"
    assert reply_ref(rooms["get"], "200") == "RoomList"
    assert body_ref(paths["/api/v1/tokens"]["post"]) == "TokenRequest"
    one = paths["/api/v1/rooms/{room_id}"]
    assert reply_ref(one["get"], "200") == "RoomDetail"
    assert [p["name"] for p in one["delete"]["parameters"]] == ["room_id"]
    assert rooms["post"]["security"] and "security" not in paths["/healthz"]["get"]
    # the documented request schema names the fields the API validates
    assert set(schemas["RoomCreate"]["properties"]) >= {"id", "name", "kind", "max_participants"}
    assert schemas["RoomCreate"]["required"] == ["id"]

    # the documented success status is the one each operation really answers with
    answered = {
        ("post", "/api/v1/rooms"): (await create(client, "r1")).status,
        ("get", "/api/v1/rooms"): (await client.get("/api/v1/rooms", headers=COORD)).status,
        ("get", "/api/v1/rooms/{room_id}"): (
            await client.get("/api/v1/rooms/r1", headers=COORD)
        ).status,
        ("post", "/api/v1/tokens"): (
            await mint(client, COORD, subject="t", role="teacher", room="r1")
        ).status,
        ("delete", "/api/v1/rooms/{room_id}"): (
            await client.delete("/api/v1/rooms/r1", headers=COORD)
        ).status,
        ("get", "/healthz"): (await client.get("/healthz")).status,
        ("get", "/readyz"): (await client.get("/readyz")).status,
        ("get", "/metrics"): (await client.get("/metrics")).status,
        ("get", "/openapi.json"): (await client.get("/openapi.json")).status,
    }
    mismatched = {
        f"{method.upper()} {path}": (sorted(set(paths[path][method]["responses"]) - {"4XX"}), got)
        for (method, path), got in answered.items()
        if set(paths[path][method]["responses"]) - {"4XX"} != {str(got)}
    }
    assert mismatched == {}, f"documented vs answered success status: {mismatched}"


async def test_a_bug_in_a_handler_is_a_json_500_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from signaling.http_auth import json_errors

    async def broken(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    app = web.Application(middlewares=[json_errors])
    app.router.add_get("/broken", broken)
    client = TestClient(TestServer(app))
    await client.start_server()
    try:
        reply = await client.get("/broken")
        assert reply.status == 500
        assert (await reply.json())["error"]["code"] == "internal"
        assert "a bug" not in await reply.text()  # internals stay in the log
        assert any("GET /broken failed" in r.getMessage() and r.exc_info for r in caplog.records)
    finally:
        await client.close()


async def test_a_calendar_link_token_joins_no_room(client: Client) -> None:
    assert (await create(client, "r1")).status == 201
    token, _ = TOKENS.mint_calendar_link(
        subject="coord", role=Role.coordinator, calendar="schedule:classroom/c-1"
    )
    ws = await client.ws_connect("/ws")
    try:
        await ws.send_json({"type": "join", "token": token})
        error = await receive_type(ws, "error")
        assert error["code"] == "forbidden"
    finally:
        await ws.close()
