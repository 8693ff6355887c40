"""A screen share is its own source: the publisher labels one video m-line ``screen``
(``set_source``), subscribers receive it as a separate track labelled ``screen`` next to the
camera, and making the m-line inactive removes it."""

from __future__ import annotations

from typing import Any

import pytest
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from media_peers import Peer, load_clip, prefer, wait_for
from support.clips import ClipTrack

from contracts.media import TrackInfo
from contracts.rooms import Role
from media.worker import Worker


def labelled(peer: Peer, source_id: str) -> list[TrackInfo]:
    """The tracks of ``source_id`` in the latest ``tracks`` message."""
    if not peer.tracks_msgs:
        return []
    return [t for t in peer.tracks_msgs[-1].tracks if t.participant_id == source_id]


def max_bundle(peer: Peer) -> Peer:
    """aiortc's default (balanced) bundling leaves a second video m-line of the first
    negotiation on a transport it then discards (nothing is sent or received on it): these
    peers bundle everything on one transport, as browsers do."""
    peer.pc = RTCPeerConnection(RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE))
    peer.pc.on("track", peer._on_track)
    return peer


def frames_of(peer: Peer, track_id: str) -> int:
    r = peer.received.get(track_id)
    return r.frames if r else 0


async def offer_again(peer: Peer) -> None:
    """The publisher renegotiates its own m-lines (a client offer on the same connection)."""
    async with peer._offer_lock:
        await peer.pc.setLocalDescription(await peer.pc.createOffer())
        answer = await peer.worker.offer(
            peer.participant.room_id, peer.id, peer.pc.localDescription.sdp
        )
        await peer.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))


@pytest.mark.timeout(90)
async def test_screen_share_is_a_separate_source_and_stopping_it_removes_it(
    clips: dict[str, Any],
) -> None:
    worker = Worker()
    teacher = max_bundle(Peer(worker, "teacher", Role.teacher))
    teacher.publish(
        load_clip(clips["opus"], "audio"), [(load_clip(clips["high"], "video"), "video/H264")]
    )
    screen = ClipTrack("video", load_clip(clips["vp8"], "video"))
    screen_t = teacher.pc.addTransceiver(screen, direction="sendonly")
    prefer(screen_t, "video/VP8")
    classes = [max_bundle(Peer(worker, f"class-{i}", Role.classroom)) for i in range(2)]
    try:
        # The client labels the m-line before offering it (mids exist once the offer is set).
        await worker.join(teacher.participant, teacher._send)
        await teacher.pc.setLocalDescription(await teacher.pc.createOffer())
        await worker.set_source("room-1", "teacher", str(screen_t.mid), "screen")
        answer = await worker.offer("room-1", "teacher", teacher.pc.localDescription.sdp)
        await teacher.pc.setRemoteDescription(RTCSessionDescription(sdp=answer, type="answer"))
        teacher._answered.set()
        for c in classes:
            await c.connect()

        transport = worker.transport("room-1", "teacher")
        assert transport is not None
        assert sorted((p.source, p.layer) for p in transport.producers.values()) == [
            ("camera", "high"),
            ("microphone", "main"),
            ("screen", "high"),
        ]
        for c in classes:
            assert await wait_for(lambda c=c: len(labelled(c, "teacher")) == 3, 20)
            sources = {t.source: t for t in labelled(c, "teacher")}
            assert set(sources) == {"microphone", "camera", "screen"}
            cam, scr = sources["camera"].track_id, sources["screen"].track_id
            assert cam != scr
            assert await wait_for(
                lambda c=c, cam=cam, scr=scr: frames_of(c, cam) > 30 and frames_of(c, scr) > 30,
                30,
            ), {k: v.frames for k, v in c.received.items()}
            sizes = c.received[scr].sizes | c.received[cam].sizes
            assert (640, 360) in sizes

        # The screen share stops: the m-line goes inactive and the client offers again.
        screens = {c.id: labelled_source(c, "screen") for c in classes}
        offers_before = {c.id: c.offers for c in classes}
        screen_t.direction = "inactive"
        await offer_again(teacher)
        for c in classes:
            assert await wait_for(
                lambda c=c: c.offers > offers_before[c.id] and len(labelled(c, "teacher")) == 2,
                20,
            )
            assert {t.source for t in labelled(c, "teacher")} == {"microphone", "camera"}
            # the camera goes on, the screen does not
            cam = labelled_source(c, "camera")
            scr_frames = frames_of(c, screens[c.id])
            cam_frames = frames_of(c, cam)
            assert await wait_for(lambda c=c, cam=cam, n=cam_frames: frames_of(c, cam) > n + 30, 20)
            assert frames_of(c, screens[c.id]) <= scr_frames + 5
        assert not transport.producer_group("video", "screen")
    finally:
        for peer in (teacher, *classes):
            await peer.close()
        await worker.close()


def labelled_source(peer: Peer, source: str) -> str:
    return next(t.track_id for t in labelled(peer, "teacher") if t.source == source)


@pytest.mark.timeout(90)
async def test_a_label_after_the_offer_moves_the_m_line_to_the_screen(
    clips: dict[str, Any],
) -> None:
    worker = Worker()
    # Two video m-lines, no label yet: the SFU takes them as the camera's high and low layers.
    teacher = max_bundle(Peer(worker, "teacher", Role.teacher))
    teacher.publish(
        None,
        [
            (load_clip(clips["high"], "video"), "video/H264"),
            (load_clip(clips["low"], "video"), "video/H264"),
        ],
    )
    viewer = max_bundle(Peer(worker, "class-1", Role.classroom))
    try:
        await teacher.connect()
        await viewer.connect()
        transport = worker.transport("room-1", "teacher")
        assert transport is not None
        assert sorted(p.layer for p in transport.producers.values()) == ["high", "low"]
        assert await wait_for(lambda: len(labelled(viewer, "teacher")) == 1, 20)

        second = teacher.pc.getTransceivers()[1]
        await worker.set_source("room-1", "teacher", str(second.mid), "screen")
        assert await wait_for(lambda: len(labelled(viewer, "teacher")) == 2, 20)
        assert {t.source for t in labelled(viewer, "teacher")} == {"camera", "screen"}
        scr = labelled_source(viewer, "screen")
        assert await wait_for(lambda: frames_of(viewer, scr) > 20, 30)
        assert (320, 180) in viewer.received[scr].sizes  # the low clip is the screen now
    finally:
        await teacher.close()
        await viewer.close()
        await worker.close()
