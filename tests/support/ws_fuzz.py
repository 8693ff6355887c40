"""What the WebSocket fuzz tests share: strategies for messages and SDP, and the checks
every example must pass (an answer or an error with a code, a documented close, no
traceback logged, a bystander who notices nothing)."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any, get_args

import aiohttp
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from contracts.errors import ErrorCode
from contracts.protocol import CLIENT_MESSAGE_TYPES, ClientMessage, client_message_adapter
from contracts.rooms import Role
from support.harness import Client, Harness

SURROGATES = ["\ud800", "\udfff", "\ud83d", "a\udc00b"]
ODD = ["", " ", "\x00", "\u202e", "\ufeff", "💥", "null", "NaN", "-0", "x" * 65, "y" * 5000]
# Every close code a client may see (docs/protocol.md, "Close codes").
DOCUMENTED_CLOSES = {1000, 1007, 1009, 4001, 4003, 4004, 4005, 4006, 4008, 4009}
REFUSALS = {
    ErrorCode.bad_json,
    ErrorCode.invalid_message,
    ErrorCode.unknown_type,
    ErrorCode.message_too_large,
}

texts = st.one_of(
    st.text(max_size=80),
    st.sampled_from(SURROGATES + ODD),
    st.lists(st.one_of(st.characters(), st.sampled_from(SURROGATES)), max_size=20).map("".join),
)
numbers = st.one_of(
    st.integers(),
    st.sampled_from([0, -1, 2**63, -(2**64), 10**300, 255, 256, 8192, 8193, 10**9 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)

# Plausible values by field name (so that generated messages often get past validation).
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "token": st.one_of(texts, st.just("eyJhbGciOiJIUzI1NiJ9.e30.x")),
    "name": texts,
    "participant_id": st.one_of(texts, st.just("nobody")),
    "on_stage": st.booleans(),
    "muted": st.booleans(),
    "reason": texts,
    "layer": st.sampled_from(["auto", "high", "low", "audio", "ultra"]),
    "mid": st.one_of(st.sampled_from(["0", "1", "2"]), texts),
    "source": st.sampled_from(["camera", "screen", "mic"]),
    "ts": numbers,
    "available_outgoing_bitrate": numbers,
    "outbound": st.lists(
        st.fixed_dictionaries(
            {"mid": st.sampled_from(["0", "1"])},
            optional={
                "width": numbers,
                "height": numbers,
                "fps": numbers,
                "bitrate_bps": numbers,
                "quality_limitation": st.sampled_from(["none", "cpu", "gpu"]),
            },
        ),
        max_size=9,
    ),
    "capture": st.fixed_dictionaries({"width": numbers, "height": numbers}),
    "candidate": texts,
    "sdp_mid": texts,
    "sdp_mline_index": numbers,
    "sdp": texts,
}


MODELS: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["type"].annotation)[0]: model
    for model in get_args(get_args(ClientMessage)[0])
}


def _fields(kind: str) -> list[str]:
    return [name for name in MODELS[kind].model_fields if name not in ("type", "rid")]


@st.composite
def envelopes(draw: st.DrawFn) -> Any:
    """A client message: a known or odd ``type``, fields plausible or not, some missing,
    some extra, an odd ``rid``; or any JSON value at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(json_values)
    kind = draw(st.one_of(st.sampled_from(sorted(CLIENT_MESSAGE_TYPES)), json_values))
    message: dict[str, Any] = {}
    if draw(st.integers(0, 9)) > 0:
        message["type"] = kind
    if isinstance(kind, str) and kind in CLIENT_MESSAGE_TYPES:
        for name in _fields(kind):
            choice = draw(st.integers(0, 5))
            if choice == 0:
                continue
            strategy = PLAUSIBLE.get(name, json_values)
            message[name] = draw(json_values if choice == 1 else strategy)
    if draw(st.booleans()):
        message["rid"] = draw(st.one_of(texts, json_values))
    if draw(st.integers(0, 5)) == 0:
        message[draw(texts)] = draw(json_values)
    return message


frames = st.one_of(
    envelopes().map(lambda m: json.dumps(m, allow_nan=True)),
    texts,
    st.sampled_from(["{", "[]", "1e99999", '{"type": "ping"', '{"type":"ping","ts":1e400}']),
)


@dataclass
class Watch:
    """A logging handler that keeps every ERROR record or record with a traceback."""

    records: list[logging.LogRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        watch = self

        class _Handler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.levelno >= logging.ERROR or record.exc_info:
                    watch.records.append(record)

        self.handler = _Handler(logging.DEBUG)

    def __enter__(self) -> Watch:
        logging.getLogger().addHandler(self.handler)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger().removeHandler(self.handler)

    def assert_clean(self) -> None:
        assert not self.records, [
            (r.name, r.getMessage(), r.exc_text or r.exc_info) for r in self.records
        ]


def expected_refusal(frame: str | bytes) -> bool:
    """Whether the server must refuse ``frame`` (before any handler runs)."""
    if isinstance(frame, bytes):
        return True
    try:
        raw = json.loads(frame)
    except ValueError:
        return True
    if not isinstance(raw, dict) or not isinstance(raw.get("type"), str):
        return True
    if raw["type"] not in CLIENT_MESSAGE_TYPES:
        return True
    try:
        client_message_adapter.validate_python(raw)
    except ValidationError:
        return True
    return False


async def exchange(client: Client, frame: str | bytes) -> tuple[list[dict[str, Any]], int | None]:
    """Send ``frame`` and a ping behind it; everything received up to that ping's pong, and
    the close code if the server closed instead."""
    got: list[dict[str, Any]] = []
    if isinstance(frame, bytes):
        await client.ws.send_bytes(frame)
    else:
        await client.ws.send_str(frame)
    if not client.ws.closed:
        await client.ws.send_str('{"type": "ping", "rid": "sync"}')
    while True:
        msg = await client.ws.receive(timeout=10)
        if msg.type is not aiohttp.WSMsgType.TEXT:
            return got, client.ws.close_code
        data = json.loads(msg.data)
        if data.get("type") == "pong" and data.get("rid") == "sync":
            return got, None
        got.append(data)


def check_reply(frame: str | bytes, got: list[dict[str, Any]], closed: int | None) -> None:
    errors = [m for m in got if m.get("type") == "error"]
    for error in errors:
        assert error["code"] in ErrorCode.__members__, error
        assert error["code"] != ErrorCode.internal, error
    if closed is not None:
        assert closed in DOCUMENTED_CLOSES, f"closed with {closed} after {frame!r:.200}"
        if closed == 1000:
            assert isinstance(frame, str) and '"leave"' in frame, frame
        return
    if expected_refusal(frame):
        assert any(e["code"] in REFUSALS for e in errors), (frame, got)


class Room:
    """A teacher who watches (the bystander), a classroom whose hand goes up and down (room
    events keep flowing), and the classroom that sends the fuzz."""

    def __init__(self, h: Harness) -> None:
        self.h = h
        self.hand = False

    async def start(self) -> None:
        self.teacher = await self.h.joined(Role.teacher, subject="teacher")
        self.witness = await self.h.joined(Role.classroom, subject="witness")
        self.fuzzer = await self.fuzz_client()

    async def fuzz_client(self) -> Client:
        return await self.h.joined(Role.classroom, subject="fuzzer")

    async def after(self, closed: int | None) -> None:
        """The bystander noticed nothing: it answers pings and still gets room events."""
        if closed is not None:
            self.fuzzer = await self.fuzz_client()
        self.hand = not self.hand
        await self.witness.send({"type": "raise_hand" if self.hand else "lower_hand"})
        await self.teacher.expect(
            "hand_raised", participant_id=self.witness.participant_id, raised=self.hand
        )
        await self.teacher.send({"type": "ping", "rid": "alive"})
        await self.teacher.expect("pong", rid="alive")
        assert not self.teacher.ws.closed and not self.witness.ws.closed
        for message in self.teacher.inbox:
            assert message.get("type") != "error", message
            if message.get("type") == "participant_left":
                assert message["participant_id"] != self.witness.participant_id, message
        self.teacher.inbox.clear()
        await asyncio.sleep(0)
