"""Hypothesis over every WebSocket message, the envelope included, on the real app.

Each example is one frame from a joined classroom (or a connection not yet joined): the
connection answers with an ``error`` carrying a code, or closes with a documented code; no
record with a traceback (or at ERROR) is logged; the teacher in the same room still gets
pongs and the room's events, and nobody else is disconnected. SDP and ICE candidates go
through the real media worker in tests/signaling/test_ws_fuzz_sdp.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import aiohttp
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.harness import Client, running_app
from support.ws_fuzz import DOCUMENTED_CLOSES, Room, Watch, check_reply, exchange, frames

from contracts.rooms import Role

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
LIMITS = {
    "ws_rate_per_second": 10_000.0,
    "ws_rate_burst": 10_000,
    "join_timeout_seconds": 120.0,
}


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


async def _send_frame(client: Client, frame: str | bytes) -> None:
    """A text frame as the protocol expects, even for text that is not valid UTF-8."""
    if isinstance(frame, str):
        try:
            frame.encode()
        except UnicodeEncodeError:
            data = frame.encode(errors="surrogatepass")
            await client.ws._writer.send_frame(data, aiohttp.WSMsgType.TEXT)
            return
    if isinstance(frame, bytes):
        await client.ws.send_bytes(frame)
    else:
        await client.ws.send_str(frame)


def test_any_frame_gets_an_error_or_a_documented_close(loop: asyncio.AbstractEventLoop) -> None:
    async def scenario() -> None:
        async with running_app(**LIMITS) as h:
            await h.room("room-1")
            room = Room(h)
            await room.start()
            unjoined = await h.connect()

            @FUZZ
            @given(frame=st.one_of(frames, st.binary(max_size=64)), joined=st.booleans())
            def one(frame: str | bytes, joined: bool) -> None:
                asyncio.run_coroutine_threadsafe(example(frame, joined), runner).result(60)

            async def example(frame: str | bytes, joined: bool) -> None:
                nonlocal unjoined
                examples.append(joined)
                # (a failing example may leave its socket closed: shrinking goes on anyway)
                if room.fuzzer.ws.closed:
                    room.fuzzer = await room.fuzz_client()
                if unjoined.ws.closed:
                    unjoined = await h.connect()
                client = room.fuzzer if joined else unjoined
                if isinstance(frame, str) and _invalid_utf8(frame):
                    await _send_frame(client, frame)
                    msg = await client.ws.receive(timeout=10)
                    while msg.type is aiohttp.WSMsgType.TEXT:  # room events before the close
                        msg = await client.ws.receive(timeout=10)
                    assert msg.type is aiohttp.WSMsgType.CLOSE, msg
                    code = client.ws.close_code
                    assert code in DOCUMENTED_CLOSES, code
                    got, closed = [], code
                else:
                    got, closed = await exchange(client, frame)
                    check_reply(frame, got, closed)
                if joined:
                    await room.after(closed)
                else:
                    if closed is not None:
                        unjoined = await h.connect()
                    await room.after(None)

            runner = asyncio.get_running_loop()
            examples: list[bool] = []
            with Watch() as watch:
                await asyncio.to_thread(one)
                watch.assert_clean()
            assert len(examples) >= 100 and any(examples) and not all(examples)
            print(f"\n{len(examples)} frames, {sum(examples)} of them from a joined classroom")

    loop.run_until_complete(asyncio.wait_for(scenario(), 55))


def _invalid_utf8(frame: str) -> bool:
    try:
        frame.encode()
    except UnicodeEncodeError:
        return True
    return False


async def test_oversized_frames_are_refused_or_closed_and_the_room_goes_on() -> None:
    async with running_app(**LIMITS) as h:
        await h.room("room-1")
        room = Room(h)
        await room.start()
        with Watch() as watch:
            big = json.dumps({"type": "ping", "rid": "x", "ts": 1, "pad": "p" * 70_000})
            got, closed = await exchange(room.fuzzer, big)
            assert closed is None and got[0]["code"] == "message_too_large", got
            await room.after(closed)
            for frame in ("p" * (300 * 1024), b"\x00" * (300 * 1024)):
                got, closed = await exchange(room.fuzzer, frame)
                assert closed == 1009, (got, closed)
                await room.after(closed)
            watch.assert_clean()


async def test_an_error_never_echoes_a_rid_it_could_not_carry() -> None:
    """Found by the fuzz: a ``rid`` over 64 characters or with a lone surrogate was echoed
    into the error, whose own validation then failed: a traceback and the socket dropped."""
    async with running_app(**LIMITS) as h:
        await h.room("room-1")
        client = await h.joined(Role.classroom)
        with Watch() as watch:
            for rid in ("x" * 65, "\ud800", "ok"):
                got, closed = await exchange(client, json.dumps({"type": "nope", "rid": rid}))
                assert closed is None
                assert got[0]["code"] == "unknown_type"
                assert got[0].get("rid") == ("ok" if rid == "ok" else None)
            watch.assert_clean()
