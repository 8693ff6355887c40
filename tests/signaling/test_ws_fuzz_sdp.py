"""Hypothesis over SDP offers, answers and ICE candidates sent through the WebSocket to the
real media worker: an answer or an error with a code, never a traceback, and the teacher
in the room notices nothing."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiortc import RTCPeerConnection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.harness import running_app
from support.ws_fuzz import Room, Watch, check_reply, exchange, texts

from media.worker import Worker

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)
LIMITS = {"ws_rate_per_second": 10_000.0, "ws_rate_burst": 10_000}


async def real_offer() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendrecv")
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    sdp: str = pc.localDescription.sdp
    await pc.close()
    return sdp


@st.composite
def mutated(draw: st.DrawFn, sdp: str) -> str:
    """A real offer with lines deleted, duplicated, cut, reordered or with a token replaced."""
    lines = sdp.split("\r\n")
    for _ in range(draw(st.integers(1, 4))):
        if not lines:
            break
        i = draw(st.integers(0, len(lines) - 1))
        op = draw(st.integers(0, 5))
        if op == 0:
            del lines[i]
        elif op == 1:
            lines.insert(i, lines[i])
        elif op == 2:
            lines[i] = lines[i][: draw(st.integers(0, len(lines[i])))]
        elif op == 3:
            parts = lines[i].split(" ")
            j = draw(st.integers(0, len(parts) - 1))
            parts[j] = draw(st.one_of(texts, numbers_text))
            lines[i] = " ".join(parts)
        elif op == 4:
            lines.insert(i, draw(st.one_of(texts, st.sampled_from(ODD_LINES))))
        else:
            j = draw(st.integers(0, len(lines) - 1))
            lines[i], lines[j] = lines[j], lines[i]
    eol = draw(st.sampled_from(["\r\n", "\n", "\r\n\r\n"]))
    return eol.join(lines)


numbers_text = st.sampled_from(["-1", "0", "65536", "99999999999999999999", "1e9", "NaN", "0x10"])
ODD_LINES = [
    "m=video 9 UDP/TLS/RTP/SAVPF",
    "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
    "a=rtpmap:96",
    "a=fingerprint:sha-256 zz",
    "a=group:BUNDLE 7 8 9",
    "a=ssrc-group:FID",
    "a=extmap:999 urn:x",
    "a=setup:nonsense",
    "c=IN IP6 ::1",
    "a=candidate:1 1 udp 1 999.1.1.1 70000 typ host",
]


@st.composite
def candidates(draw: st.DrawFn) -> dict[str, Any]:
    fields = [
        draw(st.one_of(st.just("candidate:1"), texts)),
        draw(st.one_of(st.sampled_from(["1", "2", "0", "-1", "256"]), texts)),
        draw(st.sampled_from(["udp", "tcp", "UDP", "sctp", ""])),
        draw(st.one_of(numbers_text, st.just("2130706431"))),
        draw(
            st.one_of(
                st.sampled_from(["127.0.0.1", "::1", "10.0.0.1", "x.local", "999.1.1.1", ""]),
                texts,
            )
        ),
        draw(st.one_of(numbers_text, st.just("9"))),
        "typ",
        draw(st.sampled_from(["host", "srflx", "relay", "prflx", "bogus"])),
    ]
    extra = draw(
        st.lists(st.sampled_from(["raddr", "rport", "0", "tcptype", "active"]), max_size=4)
    )
    text = " ".join(fields[: draw(st.integers(0, len(fields)))] + extra)
    message: dict[str, Any] = {"type": "candidate", "candidate": text}
    if draw(st.booleans()):
        message["sdp_mid"] = draw(st.one_of(st.sampled_from(["0", "1", "2", "9"]), texts))
    if draw(st.booleans()):
        message["sdp_mline_index"] = draw(st.integers(-1, 300))
    return message


async def test_any_sdp_or_candidate_gets_an_answer_or_an_error() -> None:
    worker = Worker()
    try:
        async with running_app(media=worker, **LIMITS) as h:
            await h.room("room-1")
            room = Room(h)
            await room.start()
            sdp = await real_offer()
            runner = asyncio.get_running_loop()
            kinds: list[str] = []

            @FUZZ
            @given(
                message=st.one_of(
                    st.builds(lambda s: {"type": "offer", "sdp": s}, mutated(sdp)),
                    st.builds(lambda s: {"type": "answer", "sdp": s}, mutated(sdp)),
                    st.builds(lambda s: {"type": "offer", "sdp": s}, texts),
                    candidates(),
                )
            )
            def one(message: dict[str, Any]) -> None:
                asyncio.run_coroutine_threadsafe(example(message), runner).result(60)

            async def example(message: dict[str, Any]) -> None:
                if room.fuzzer.ws.closed:
                    room.fuzzer = await room.fuzz_client()
                kinds.append(message["type"])
                frame = json.dumps(message)
                got, closed = await exchange(room.fuzzer, frame)
                check_reply(frame, got, closed)
                assert closed is None, (message, closed)
                if message["type"] == "offer":
                    assert any(m["type"] in ("answer", "error") for m in got), (message, got)
                await room.after(closed)

            with Watch() as watch:
                await asyncio.to_thread(one)
                watch.assert_clean()
            assert len(kinds) >= 60 and {"offer", "answer", "candidate"} <= set(kinds)
            print(f"\n{len(kinds)} SDP messages: " + str({k: kinds.count(k) for k in set(kinds)}))
    finally:
        await worker.close()
