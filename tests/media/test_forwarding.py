"""Encoded forwarding through the SFU with real aiortc peers over loopback."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import pytest
from aiortc import rtcrtpreceiver, rtcrtpsender
from media_peers import DecodeErrors, Peer, load_clip, wait_for
from prometheus_client import CollectorRegistry

from contracts.rooms import Role
from media import aiortc_seams as seams
from media.metrics import StreamCollector
from media.origin import rtp_receiver
from media.quality import QualityMonitor
from media.worker import Worker


@pytest.fixture
def codec_spy(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[Any]]:
    """Records which thread creates each decoder and which sender creates each encoder."""
    seen: dict[str, list[Any]] = {"decoder_threads": [], "encoder_senders": []}
    real_decoder, real_encoder = rtcrtpreceiver.get_decoder, rtcrtpsender.get_encoder

    def get_decoder(codec: Any) -> Any:
        seen["decoder_threads"].append(threading.current_thread())
        return real_decoder(codec)

    def get_encoder(codec: Any) -> Any:
        seen["encoder_senders"].append(sys._getframe(1).f_locals.get("self"))
        return real_encoder(codec)

    monkeypatch.setattr(rtcrtpreceiver, "get_decoder", get_decoder)
    monkeypatch.setattr(rtcrtpsender, "get_encoder", get_encoder)
    return seen


@pytest.mark.timeout(90)
async def test_h264_and_opus_reach_four_decoding_subscribers_without_decoding_at_the_sfu(
    clips: dict[str, Any], codec_spy: dict[str, list[Any]]
) -> None:
    errors = DecodeErrors()
    logging.getLogger("aiortc.rtcrtpreceiver").addHandler(errors)
    worker = Worker()
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["high"], "video"), "video/H264")]
    )
    subs = [Peer(worker, f"class-{i}", Role.classroom) for i in range(4)]
    try:
        await teacher.connect()
        for s in subs:
            await s.connect()
        ok = await wait_for(
            lambda: all(
                sum(r.frames for r in s.video("teacher")) >= 60
                and sum(r.frames for r in s.audio("teacher")) >= 50
                for s in subs
            ),
            timeout=30,
        )
        for s in subs:
            videos, audios = s.video("teacher"), s.audio("teacher")
            assert len(videos) == 1 and len(audios) == 1, s.tracks_msgs
            assert videos[0].sizes == {(640, 360)}
            assert ok, [(s.id, videos[0].frames, audios[0].frames) for s in subs]
        assert errors.count == 0

        # The proof: nothing on the SFU side decoded or encoded a single frame.
        sfu = [worker.transport("room-1", p) for p in ["teacher"] + [s.id for s in subs]]
        receivers = [rtp_receiver(p.origin) for t in sfu if t for p in t.producers.values()]
        senders = [
            c.transceiver.sender for t in sfu if t for c in t.consumers.values() if c.transceiver
        ]
        assert len(receivers) == 2 and len(senders) == 8
        assert all(seams.is_tapped(r) and not seams.decoder_thread_alive(r) for r in receivers)
        assert all(seams.has_packer(s) for s in senders)
        sfu_threads = {r._RTCRtpReceiver__decoder_thread for r in receivers}
        assert not sfu_threads & set(codec_spy["decoder_threads"])
        assert not set(map(id, senders)) & set(map(id, codec_spy["encoder_senders"]))
        # ...while the spies did see the clients' decoders and encoders (they work).
        assert len(codec_spy["decoder_threads"]) >= 8 and codec_spy["encoder_senders"]

        stats = await worker.stats()
        t_stats = next(t for t in stats.rooms[0].transports if t.participant_id == "teacher")
        video = next(p for p in t_stats.producers if p.kind == "video")
        assert video.codec == "H264" and video.packets > 100 and video.keyframes >= 1
        assert video.consumers == 4
        registry = CollectorRegistry()
        monitor = QualityMonitor(worker)
        registry.register(StreamCollector(monitor))
        await monitor.sample()
        labels = {"lesson": "room-1", "school": "", "classroom": "", "role": "classroom"}
        down = {**labels, "kind": "video", "direction": "down", "layer": ""}
        assert registry.get_sample_value("sanke_stream_frames_total", down) >= 4 * 60
        assert registry.get_sample_value("sanke_stream_layer", down) == 2.0  # high
        assert registry.get_sample_value("sanke_sfu_peer_connections") == 5
    finally:
        logging.getLogger("aiortc.rtcrtpreceiver").removeHandler(errors)
        for p in [teacher, *subs]:
            await p.close()
        await worker.close()


@pytest.mark.timeout(60)
async def test_vp8_is_forwarded(clips: dict[str, Any]) -> None:
    worker = Worker()
    teacher = Peer(worker, "teacher", Role.teacher)
    teacher.publish(None, [(load_clip(clips["vp8"], "video"), "video/VP8")])
    viewer = Peer(worker, "viewer", Role.viewer)
    try:
        await teacher.connect()
        await viewer.connect()
        assert await wait_for(lambda: sum(r.frames for r in viewer.video("teacher")) >= 45, 20)
        assert viewer.video("teacher")[0].sizes == {(640, 360)}
        stats = await worker.stats()
        producers = [p for t in stats.rooms[0].transports for p in t.producers]
        assert [p.codec for p in producers] == ["VP8"]
    finally:
        for p in (teacher, viewer):
            await p.close()
        await worker.close()
