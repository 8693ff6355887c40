"""The signaling protocol over a real WebSocket: every message type and error path."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from support.harness import Harness, running_app

from contracts.rooms import Role, RoomState
from contracts.store import Store


@pytest.fixture
async def h() -> Harness:  # type: ignore[misc]
    async with running_app() as harness:
        await harness.room("room-1")
        await harness.room("room-2")
        yield harness


async def test_join_returns_id_and_visible_participants(h: Harness) -> None:
    teacher = await h.joined(Role.teacher, name="张老师")
    classroom = await h.connect()
    joined = await classroom.join(h.token(Role.classroom, classroom_id="jd-1-g3", school_id="jd-1"))
    assert joined["room_id"] == "room-1"
    assert joined["role"] == "classroom"
    assert joined["protocol"] == 1
    assert [p["id"] for p in joined["participants"]] == [teacher.participant_id]
    assert joined["participants"][0]["role"] == "teacher"
    event = await teacher.expect("participant_joined")
    assert event["participant"]["id"] == classroom.participant_id
    assert event["participant"]["classroom_id"] == "jd-1-g3"


async def test_leave_is_acknowledged_and_announced(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    classroom = await h.joined(Role.classroom)
    await teacher.expect("participant_joined")
    await classroom.send({"type": "leave", "rid": "bye"})
    assert (await classroom.expect("left"))["rid"] == "bye"
    left = await teacher.expect("participant_left")
    assert left == {
        "type": "participant_left",
        "participant_id": classroom.participant_id,
        "reason": "left",
    }
    assert await h.rooms.list_participants("room-1") != []
    assert [p.role for p in await h.rooms.list_participants("room-1")] == [Role.teacher]


async def test_disconnect_removes_participant(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    classroom = await h.joined(Role.classroom)
    await classroom.close()
    left = await teacher.expect("participant_left")
    assert left["reason"] == "disconnected"
    assert len(await h.rooms.list_participants("room-1")) == 1


async def test_hands_stage_mute_reach_everyone(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    a = await h.joined(Role.classroom)
    b = await h.joined(Role.classroom)
    await a.send({"type": "raise_hand"})
    for c in (teacher, a, b):
        assert (await c.expect("hand_raised"))["participant_id"] == a.participant_id
    stored = await h.rooms.get_participant("room-1", a.participant_id)
    assert stored is not None and stored.hand_raised

    await teacher.send({"type": "set_stage", "participant_id": a.participant_id, "on_stage": True})
    for c in (teacher, a, b):
        assert await c.expect("stage_changed", participant_id=a.participant_id, on_stage=True)
    stored = await h.rooms.get_participant("room-1", a.participant_id)
    assert stored is not None and stored.on_stage and not stored.hand_raised

    await teacher.send({"type": "mute", "participant_id": a.participant_id})
    for c in (teacher, a, b):
        assert await c.expect("muted", participant_id=a.participant_id, muted=True)

    await a.send({"type": "lower_hand"})
    assert await teacher.expect("hand_raised", participant_id=a.participant_id, raised=False)


async def test_teacher_mutes_all_classrooms(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    a = await h.joined(Role.classroom)
    b = await h.joined(Role.classroom)
    await teacher.send({"type": "mute", "muted": True})
    seen = {(await teacher.expect("muted"))["participant_id"] for _ in range(2)}
    assert seen == {a.participant_id, b.participant_id}
    assert all(
        p.muted for p in await h.rooms.list_participants("room-1") if p.role is Role.classroom
    )


async def test_teacher_lowers_a_classroom_hand(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    a = await h.joined(Role.classroom)
    await a.send({"type": "raise_hand"})
    await teacher.expect("hand_raised", raised=True)
    await teacher.send({"type": "lower_hand", "participant_id": a.participant_id})
    assert await a.expect("hand_raised", participant_id=a.participant_id, raised=False)


async def test_kick_closes_the_target_and_tells_the_room(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    a = await h.joined(Role.classroom)
    b = await h.joined(Role.classroom)
    await teacher.send({"type": "kick", "participant_id": a.participant_id})
    error = await a.expect("error")
    assert error["code"] == "kicked"
    closing = await a.ws.receive(timeout=5)
    assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
    assert a.ws.close_code == 4003
    assert await b.expect("participant_left", participant_id=a.participant_id, reason="kicked")
    assert await h.rooms.get_participant("room-1", a.participant_id) is None


@pytest.mark.parametrize(
    ("message", "role"),
    [
        ({"type": "set_stage", "participant_id": "x", "on_stage": True}, Role.classroom),
        ({"type": "mute"}, Role.classroom),
        ({"type": "kick", "participant_id": "x"}, Role.classroom),
        ({"type": "raise_hand"}, Role.teacher),
        ({"type": "raise_hand"}, Role.viewer),
        ({"type": "kick", "participant_id": "x"}, Role.observer),
    ],
)
async def test_wrong_role_for_an_action_is_refused(
    h: Harness, message: dict[str, object], role: Role
) -> None:
    actor = await h.joined(role)
    await actor.send({**message, "rid": "r1"})
    error = await actor.expect("error")
    assert error["code"] == "forbidden"
    assert error["rid"] == "r1"
    # Still connected and still in the room.
    await actor.send({"type": "ping"})
    assert await actor.expect("pong")


async def test_teacher_actions_on_unknown_participant(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    await teacher.send({"type": "set_stage", "participant_id": "p_nobody", "on_stage": True})
    assert (await teacher.expect("error"))["code"] == "participant_not_found"


async def test_stage_only_for_classrooms(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    viewer = await h.joined(Role.viewer)
    await teacher.send(
        {"type": "set_stage", "participant_id": viewer.participant_id, "on_stage": True}
    )
    assert (await teacher.expect("error"))["code"] == "invalid_request"


async def test_ping_pong_echoes(h: Harness) -> None:
    client = await h.connect()
    await client.send({"type": "ping", "ts": 12.5, "rid": "p"})
    pong = await client.expect("pong")
    assert pong["ts"] == 12.5 and pong["rid"] == "p" and pong["server_ts"] > 0


async def test_observer_is_invisible(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    classroom = await h.joined(Role.classroom)
    await teacher.expect("participant_joined")
    observer = await h.connect()
    joined = await observer.join(h.token(Role.observer))
    # The observer sees the lesson's participants …
    assert {p["id"] for p in joined["participants"]} == {
        teacher.participant_id,
        classroom.participant_id,
    }
    # … nobody is told it came or went, and later joiners do not see it.
    late = await h.connect()
    late_joined = await late.join(h.token(Role.classroom))
    assert observer.participant_id not in {p["id"] for p in late_joined["participants"]}
    await observer.send({"type": "leave"})
    await observer.expect("left")
    for c in (teacher, classroom):
        for event in await c.silent(0.3):
            assert observer.participant_id not in json.dumps(event)
    # Its leave removed it from the store too.
    assert observer.participant_id not in {p.id for p in await h.rooms.list_participants("room-1")}


async def test_observer_still_sees_room_events(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    observer = await h.joined(Role.observer)
    classroom = await h.joined(Role.classroom)
    assert await observer.expect("participant_joined")
    await classroom.send({"type": "raise_hand"})
    assert await observer.expect("hand_raised", participant_id=classroom.participant_id)
    del teacher


async def test_viewers_are_shown_to_the_teacher_only(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    classroom = await h.joined(Role.classroom)
    await teacher.expect("participant_joined")
    viewer = await h.joined(Role.viewer)
    assert (await teacher.expect("participant_joined"))["participant"][
        "id"
    ] == viewer.participant_id
    assert await classroom.silent(0.3) == []


async def test_rooms_are_isolated(h: Harness) -> None:
    a = await h.joined(Role.teacher, room="room-1")
    b = await h.joined(Role.classroom, room="room-2")
    await b.send({"type": "raise_hand"})
    assert await b.expect("hand_raised")
    assert await a.silent(0.3) == []


async def test_same_subject_rejoining_replaces_the_old_connection(h: Harness) -> None:
    teacher = await h.joined(Role.teacher)
    first = await h.joined(Role.classroom, subject="kiosk-jd1")
    second = await h.joined(Role.classroom, subject="kiosk-jd1")
    assert (await first.expect("error"))["code"] == "kicked"
    assert await teacher.expect(
        "participant_left", participant_id=first.participant_id, reason="replaced"
    )
    ids = {p.id for p in await h.rooms.list_participants("room-1")}
    assert ids == {teacher.participant_id, second.participant_id}


# --- tokens at join ----------------------------------------------------------


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (
            lambda h: h.tokens.mint(
                subject="t", role=Role.teacher, room="room-1", not_before=time.time() - 7200, ttl=60
            ),
            "token_expired",
        ),
        (
            lambda h: h.tokens.mint(
                subject="t", role=Role.teacher, room="room-1", not_before=time.time() + 3600
            ),
            "token_not_yet_valid",
        ),
        (lambda h: h.token(Role.teacher)[:-4] + "AAAA", "token_invalid"),
        (lambda h: "not-a-jwt", "token_invalid"),
        (lambda h: h.token(Role.teacher, room="no-such-room"), "room_not_found"),
        (lambda h: h.token(Role.teacher, room=None), "wrong_room"),
        (lambda h: h.token(Role.coordinator, room="room-1"), "forbidden"),
    ],
)
async def test_bad_tokens_join_nothing(h: Harness, make_token: object, code: str) -> None:
    client = await h.connect()
    await client.send({"type": "join", "token": make_token(h)})  # type: ignore[operator]
    error = await client.expect("error")
    assert error["code"] == code
    assert await h.rooms.list_participants("room-1") == []
    # The connection stays usable: a good token joins afterwards.
    await client.join(h.token(Role.classroom))


async def test_token_from_another_secret_is_refused(h: Harness) -> None:
    from signaling.tokens import TokenService

    forged = TokenService("another-secret-" + "x" * 32).mint(
        subject="t", role=Role.teacher, room="room-1"
    )
    client = await h.connect()
    await client.send({"type": "join", "token": forged})
    assert (await client.expect("error"))["code"] == "token_invalid"


async def test_missing_token_is_a_validation_error(h: Harness) -> None:
    client = await h.connect()
    await client.send({"type": "join"})
    error = await client.expect("error")
    assert error["code"] == "invalid_message"
    assert "token" in error["message"]


async def test_closed_and_full_rooms_refuse_joins(h: Harness) -> None:
    await h.room("tiny", max_participants=1)
    await h.joined(Role.teacher, room="tiny")
    extra = await h.connect()
    await extra.send({"type": "join", "token": h.token(Role.classroom, room="tiny")})
    assert (await extra.expect("error"))["code"] == "room_full"
    await h.rooms.put((await h.room("shut")).model_copy(update={"state": RoomState.closed}))
    await extra.send({"type": "join", "token": h.token(Role.classroom, room="shut")})
    assert (await extra.expect("error"))["code"] == "room_closed"


async def test_actions_before_join_and_double_join(h: Harness) -> None:
    client = await h.connect()
    await client.send({"type": "raise_hand"})
    assert (await client.expect("error"))["code"] == "not_joined"
    await client.join(h.token(Role.classroom))
    await client.send({"type": "join", "token": h.token(Role.classroom)})
    assert (await client.expect("error"))["code"] == "already_joined"


# --- malformed input ---------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{not json", "bad_json"),
        ("[1, 2]", "invalid_message"),
        ('"join"', "invalid_message"),
        ("{}", "unknown_type"),
        ('{"type": "fly"}', "unknown_type"),
        ('{"type": 7}', "unknown_type"),
        ('{"type": "set_stage", "participant_id": "p", "on_stage": "maybe"}', "invalid_message"),
        ('{"type": "mute", "muted": true, "extra": 1}', "invalid_message"),
        ('{"type": "candidate", "candidate": 5}', "invalid_message"),
        ('{"type": "offer", "sdp": ""}', "invalid_message"),
    ],
)
async def test_malformed_messages_get_an_error_and_the_connection_stays(
    h: Harness, frame: str, code: str
) -> None:
    teacher = await h.joined(Role.teacher)
    await teacher.ws.send_str(frame)
    assert (await teacher.expect("error"))["code"] == code
    await teacher.send({"type": "ping"})
    assert await teacher.expect("pong")
    assert len(await h.rooms.list_participants("room-1")) == 1


async def test_binary_frames_are_refused(h: Harness) -> None:
    client = await h.connect()
    await client.ws.send_bytes(b"\x00\x01")
    assert (await client.expect("error"))["code"] == "invalid_message"


async def test_media_messages_without_a_media_plane(h: Harness) -> None:
    client = await h.joined(Role.classroom)
    await client.send({"type": "offer", "sdp": "v=0", "rid": "o1"})
    error = await client.expect("error")
    assert error["code"] == "media_unavailable" and error["rid"] == "o1"
    await client.send({"type": "set_layer", "layer": "low"})
    await client.send({"type": "ping"})
    assert await client.expect("pong")


async def test_oversized_message_is_refused_but_connection_stays() -> None:
    async with running_app(ws_max_message_bytes=4096) as h:
        await h.room("room-1")
        client = await h.joined(Role.classroom)
        await client.send({"type": "ping", "rid": "x", "pad": "a" * 5000})
        assert (await client.expect("error"))["code"] == "message_too_large"
        await client.send({"type": "ping"})
        assert await client.expect("pong")
        # A frame far past the limit is abuse: the server closes with 1009.
        await client.ws.send_str("a" * 4096 * 5)
        msg = await client.ws.receive(timeout=5)
        while msg.type is aiohttp.WSMsgType.TEXT:
            msg = await client.ws.receive(timeout=5)
        assert client.ws.close_code == 1009


async def test_rate_limit_errors_then_closes() -> None:
    async with running_app(
        ws_rate_per_second=1, ws_rate_burst=5, ws_rate_violations_before_close=10
    ) as h:
        await h.room("room-1")
        teacher = await h.joined(Role.teacher)
        flooder = await h.joined(Role.classroom)
        for _ in range(5):
            await flooder.send({"type": "ping"})
        await flooder.send({"type": "ping"})
        assert (await flooder.expect("error"))["code"] == "rate_limited"
        for _ in range(20):
            if flooder.ws.closed:
                break
            await flooder.send({"type": "ping"})
        msg = await flooder.ws.receive(timeout=5)
        while msg.type is aiohttp.WSMsgType.TEXT:
            msg = await flooder.ws.receive(timeout=5)
        assert flooder.ws.close_code == 4008
        assert await teacher.expect("participant_left", participant_id=flooder.participant_id)
        # Another participant is unaffected.
        await teacher.send({"type": "ping"})
        assert await teacher.expect("pong")


async def test_heartbeat_removes_a_dead_participant() -> None:
    async with running_app(heartbeat_seconds=0.6) as h:
        await h.room("room-1")
        teacher = await h.joined(Role.teacher)
        # A client that never answers pings (its machine froze, its link died).
        dead = await h.connect(autoping=False)
        await dead.join(h.token(Role.classroom))

        # The teacher keeps talking; the dead one does not read at all.
        async def keep_alive() -> None:
            while True:
                await teacher.send({"type": "ping"})
                await asyncio.sleep(0.1)

        pinger = asyncio.create_task(keep_alive())
        try:
            left = await teacher.expect(
                "participant_left", timeout=10, participant_id=dead.participant_id
            )
        finally:
            pinger.cancel()
        assert left["reason"] == "timeout"
        assert [p.role for p in await h.rooms.list_participants("room-1")] == [Role.teacher]


async def test_join_timeout_closes_idle_connections() -> None:
    async with running_app(join_timeout_seconds=0.3) as h:
        client = await h.connect()
        msg = await client.ws.receive(timeout=5)
        assert msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        assert client.ws.close_code == 4001


async def test_protocol_against_redis_store(redis_url: str) -> None:
    """The same room behaviour on the Redis store (events through real pub/sub)."""
    from support.redis_helpers import fresh_prefix, purge_prefix

    from contracts.store.redis import RedisStore

    prefix = fresh_prefix()
    store: Store = RedisStore(redis_url, prefix=prefix)
    try:
        async with running_app(store=store) as h:
            await h.room("room-1")
            teacher = await h.joined(Role.teacher)
            classroom = await h.joined(Role.classroom)
            observer = await h.joined(Role.observer)
            assert (await teacher.expect("participant_joined"))["participant"][
                "id"
            ] == classroom.participant_id
            await classroom.send({"type": "raise_hand"})
            assert await teacher.expect("hand_raised", participant_id=classroom.participant_id)
            assert await observer.expect("hand_raised", participant_id=classroom.participant_id)
            await classroom.close()
            assert await teacher.expect("participant_left", participant_id=classroom.participant_id)
            for event in await teacher.silent(0.3):
                assert observer.participant_id not in json.dumps(event)
    finally:
        purge_prefix(redis_url, prefix)


async def test_joined_carries_ice_servers_with_turn_credentials() -> None:
    import base64
    import hashlib
    import hmac

    async with running_app(
        ice_servers=["stun:turn.example.cn:3478", "turn:turn.example.cn:3478?transport=udp"],
        turn_secret="coturn-shared-secret-1234",
        turn_credential_ttl_seconds=600,
    ) as h:
        await h.room("room-1")
        client = await h.connect()
        joined = await client.join(h.token(Role.classroom))
        stun, turn = joined["ice_servers"]
        assert stun == {"urls": ["stun:turn.example.cn:3478"]}
        assert turn["urls"] == ["turn:turn.example.cn:3478?transport=udp"]
        expiry, user = turn["username"].split(":")
        assert user == joined["participant_id"]
        assert 0 < int(expiry) - time.time() <= 600
        expected = hmac.new(
            b"coturn-shared-secret-1234", turn["username"].encode(), hashlib.sha1
        ).digest()
        assert base64.b64decode(turn["credential"]) == expected


async def test_room_list_counts_observers_apart(h: Harness) -> None:
    await h.joined(Role.teacher)
    await h.joined(Role.observer)
    coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
    reply = await h.session.get(
        h.url("/api/v1/rooms"), headers={"Authorization": f"Bearer {coordinator}"}
    )
    rooms = {r["room"]["id"]: r for r in (await reply.json())["rooms"]}
    assert (rooms["room-1"]["participant_count"], rooms["room-1"]["observer_count"]) == (1, 1)
