"""WHIP (RFC 9725) end to end with real parts: a real aiortc encoder POSTs its offer to the
real app with a real SFU worker; a real aiortc classroom in the lesson's room decodes it as
the teacher; DELETE ends it. The teacher console still joins and controls the room."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import REGISTRY
from support.clips import Clip, load_clip, make_clip
from support.rtc_client import RtcClient
from support.whip_client import WhipClient
from support.whip_lesson import LESSON, WhipLesson, whip_lesson

from contracts.rooms import Role
from lessons.whip_api import WHIP_KEY
from media.worker import Worker

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    path = make_clip(tmp_path_factory.mktemp("whip"), "encoder.ts", size="640x360", seconds=4)
    return load_clip(path, "video")


async def until(predicate: Callable[[], Any], timeout: float = 20, what: str = "") -> None:
    """Wait for ``predicate`` (a function or a coroutine function) to be truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"still not {what or predicate}")
        await asyncio.sleep(0.1)


async def classroom(lesson: WhipLesson) -> RtcClient:
    token = lesson.h.tokens.mint(
        subject="class:jd-1-g3",
        role=Role.classroom,
        room=LESSON,
        classroom_id="jd-1-g3",
        school_id="jd-1",
    )
    client = RtcClient(lesson.h.session, lesson.h.url("/ws").replace("http", "ws", 1), token)
    await client.start()
    return client


def messages(client: RtcClient, kind: str) -> list[dict[str, Any]]:
    return [m for m in client.inbox if m["type"] == kind]


async def test_a_whip_publish_is_the_teacher_classrooms_decode_and_delete_ends_it(
    clip: Clip,
) -> None:
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        room = await classroom(lesson)
        encoder = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
        try:
            publishing = {"kind": "whip", "school": "xian-shiyan"}
            before = REGISTRY.get_sample_value("sanke_ingest_publishing", publishing) or 0.0
            reply = await encoder.publish()
            assert reply.status == 201, reply.body
            assert REGISTRY.get_sample_value("sanke_ingest_publishing", publishing) == before + 1
            assert reply.headers["Content-Type"] == "application/sdp"
            assert reply.body.startswith("v=0")
            location = reply.headers["Location"]
            assert location.startswith(f"/whip/v1/{lesson.source_id}/sessions/")
            assert reply.headers["ETag"].startswith('"')
            assert reply.headers["Access-Control-Allow-Origin"] == "*"
            assert "Location" in reply.headers["Access-Control-Expose-Headers"]
            await encoder.connected()

            # The classroom is told a teacher joined (the lesson's teacher's name) and
            # decodes the encoder's H264 as that teacher's video.
            await until(lambda: messages(room, "participant_joined"), what="a join")
            teacher = messages(room, "participant_joined")[0]["participant"]
            assert (teacher["role"], teacher["name"]) == ("teacher", "张老师")
            await until(lambda: room.frames > 30, what="30 decoded frames")
            tracks = [t for m in messages(room, "tracks") for t in m["tracks"]]
            assert {t["participant_id"] for t in tracks} == {teacher["id"]}
            assert {t["kind"] for t in tracks} == {"audio", "video"}

            # On the SFU it is a Producer like a browser teacher's, receiving nothing.
            stats = await worker.stats()
            whip = next(t for r in stats.rooms for t in r.transports if t.role == "teacher")
            video = next(p for p in whip.producers if p.kind == "video")
            assert (video.codec, video.width, video.height, video.layer) == (
                "H264",
                640,
                360,
                "high",
            )
            assert video.keyframes >= 1 and whip.consumers == []
            # the classroom's start asked the encoder for a keyframe (RTCP PLI), as a page's
            assert video.plis_sent >= 1, video
            session = await lesson.h.sessions.get(LESSON)
            assert session is not None and session.state.value == "live"
            assert session.teacher_joined_at is not None

            # The coordinator sees it connected, with what the SFU receives.
            async def measured() -> bool:
                status = await lesson.status()
                return bool(status["connected"] and status["height"] == 360 and status["fps"])

            await until(measured, what="a measured status")
            status = await lesson.status()
            assert status["width"] == 640 and status["room_id"] == LESSON
            assert 0 < status["bitrate_bps"] < 5e6 and 5 <= status["fps"] <= 40, status

            # DELETE on the Location: the classroom sees the teacher leave.
            gone = await encoder.delete()
            assert gone.status == 200, gone.body
            await until(lambda: messages(room, "participant_left"), what="a leave")
            assert messages(room, "participant_left")[0]["participant_id"] == teacher["id"]
            assert (await lesson.status())["connected"] is False
            assert (await encoder.delete()).status == 404
            await until(lambda: worker.peer_connection_count() == 1, what="the SFU freed it")
            assert REGISTRY.get_sample_value("sanke_ingest_publishing", publishing) == before
        finally:
            await encoder.close()
            await room.close()
        await worker.close()


async def test_a_second_publish_of_the_source_replaces_the_first(clip: Clip) -> None:
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        first = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
        second = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
        try:
            assert (await first.publish()).status == 201
            assert (await second.publish()).status == 201
            participants = await lesson.h.rooms.list_participants(LESSON)
            assert [p.role for p in participants] == [Role.teacher]
            assert (await first.delete()).status == 404  # its session ended
            assert (await second.delete()).status == 200
            await until(lambda: not worker.peer_connection_count(), what="both connections freed")
        finally:
            await first.close()
            await second.close()
        await worker.close()


async def test_the_teacher_console_joins_beside_the_encoder_and_can_remove_it(
    clip: Clip,
) -> None:
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        encoder = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
        console = await lesson.h.connect()
        try:
            assert (await encoder.publish()).status == 201
            joined = await console.join(
                lesson.h.tokens.mint(subject="teacher:张老师", role=Role.teacher, room=LESSON)
            )
            whip_id = next(p["id"] for p in joined["participants"] if p["role"] == "teacher")
            await console.send({"type": "kick", "participant_id": whip_id})
            left = await console.expect("participant_left", timeout=10)
            assert left["participant_id"] == whip_id
            # the kick ended the session
            await until(lambda: _deleted(encoder), what="the session ended by the kick")

            # Publishing again, then the console ends the lesson: the publish ends too.
            encoder2 = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
            try:
                assert (await encoder2.publish()).status == 201
                await console.send({"type": "end_lesson"})
                await until(
                    lambda: not worker.peer_connection_count(), what="the room's media freed"
                )
                assert (await lesson.status())["connected"] is False
            finally:
                await encoder2.close()
        finally:
            await encoder.close()
        await worker.close()


async def test_deleting_the_source_ends_its_publish_and_both_are_audited(clip: Clip) -> None:
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        room = await classroom(lesson)
        encoder = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
        auth = {"Authorization": f"Bearer {lesson.coordinator}"}
        try:
            assert (await encoder.publish()).status == 201
            await until(lambda: messages(room, "participant_joined"), what="a join")
            async with lesson.h.session.delete(
                lesson.h.url(f"/api/v1/sources/{lesson.source_id}"), headers=auth
            ) as reply:
                assert reply.status == 200
            await until(lambda: messages(room, "participant_left"), what="the teacher leaving")
            assert (await encoder.delete()).status == 404
            again = await WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip).post(
                "v=0\r\n"
            )
            assert again.status == 404  # the source is gone
            async with lesson.h.session.get(lesson.h.url("/api/v1/audit"), headers=auth) as r:
                entries = [e["entry"] for e in (await r.json())["entries"]]
            actions = [(e["action"], e["target"]) for e in entries if e["action"].startswith("s")]
            assert actions == [
                ("source.deleted", lesson.source_id),
                ("source.registered", lesson.source_id),
            ]
            assert lesson.token not in str(entries)
        finally:
            await encoder.close()
            await room.close()
        await worker.close()


async def test_trickled_candidates_in_a_patch_connect_the_publish(clip: Clip) -> None:
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        encoder = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
        try:
            reply = await encoder.publish(without_candidates=True)
            assert reply.status == 201, reply.body
            assert reply.headers["Accept-Patch"] == "application/trickle-ice-sdpfrag"
            etag = reply.headers["ETag"]
            ufrag = next(
                line.split(":", 1)[1]
                for line in str(encoder.pc.localDescription.sdp).splitlines()
                if line.startswith("a=ice-ufrag:")
            )
            lines = [f"a=ice-ufrag:{ufrag}"]
            for mid, candidate in encoder.candidates():
                lines += [f"m=audio 9 UDP/TLS/RTP/SAVPF 0\r\na=mid:{mid}", candidate]
            fragment = "\r\n".join(lines) + "\r\n"

            wrong_type = await encoder.patch(fragment, **{"Content-Type": "application/sdp"})
            assert wrong_type.status == 415
            stale = await encoder.patch(fragment, **{"If-Match": '"not-it"'})
            assert stale.status == 412
            restart = await encoder.patch(fragment.replace(ufrag, "newufrag"), **{"If-Match": "*"})
            assert restart.status == 422  # ICE restart: not supported, trickle is
            trickled = await encoder.patch(fragment, **{"If-Match": etag})
            assert trickled.status == 204, trickled.body
            await encoder.connected()
            await until(
                lambda: _video_keyframes(worker), what="the SFU receiving the encoder's video"
            )
            assert (await encoder.delete()).status == 200
        finally:
            await encoder.close()
        await worker.close()


def _video_keyframes(worker: Worker) -> bool:
    for router in worker.routers.values():
        for transport in router.transports.values():
            for producer in transport.producers.values():
                if producer.kind == "video" and producer.keyframes > 0:
                    return True
    return False


async def _deleted(encoder: WhipClient) -> bool:
    return (await encoder.delete()).status == 404


async def test_an_encoder_that_vanishes_without_a_delete_leaves_the_room(clip: Clip) -> None:
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        # the media reports come every 2 s; production waits 20 s without one
        lesson.h.app[WHIP_KEY].silence_seconds = 6.0
        room = await classroom(lesson)
        encoder = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip)
        try:
            assert (await encoder.publish()).status == 201
            await encoder.connected()
            await until(lambda: room.frames > 10, what="the classroom decoding")
            await asyncio.sleep(8)  # longer than the silence: a healthy publish stays
            assert not messages(room, "participant_left")
            await encoder.close()  # the encoder's process dies: no DELETE
            await until(lambda: messages(room, "participant_left"), timeout=30, what="a leave")
            assert (await lesson.status())["connected"] is False
            assert (await encoder.delete()).status == 404
            assert await lesson.h.rooms.list_participants(LESSON) != []  # the classroom stays
        finally:
            await encoder.close()
            await room.close()
        await worker.close()


async def test_an_encoder_sending_two_video_m_lines_publishes_two_layers(
    clip: Clip, tmp_path: Path
) -> None:
    low = load_clip(make_clip(tmp_path, "low.ts", size="320x180", seconds=4), "video")
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        room = await classroom(lesson)
        encoder = WhipClient(lesson.h.session, lesson.endpoint(), lesson.token, clip, low=low)
        try:
            assert (await encoder.publish()).status == 201
            await encoder.connected()

            async def layers() -> dict[str, int | None]:
                stats = await worker.stats()
                return {
                    p.layer: p.height
                    for r in stats.rooms
                    for t in r.transports
                    if t.role == "teacher"
                    for p in t.producers
                    if p.kind == "video"
                }

            await until(
                lambda: _two_layers(layers()), what="a high and a low layer from the bitstream"
            )
            await until(lambda: room.frames > 10, what="the classroom decoding a layer")
        finally:
            await encoder.close()
            await room.close()
        await worker.close()


async def _two_layers(found: Any) -> bool:
    return bool(await found == {"high": 360, "low": 180})


async def test_an_encoder_sending_b_frames_is_told_the_setting_to_change(tmp_path: Path) -> None:
    path = tmp_path / "obs-default.ts"
    subprocess.run(
        ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi",
         "-i", "testsrc2=size=640x360:rate=30", "-t", "4", "-c:v", "libx264",
         "-profile:v", "main", "-bf", "2", "-g", "30", "-pix_fmt", "yuv420p", str(path)],
        check=True,
    )  # fmt: skip
    worker = Worker()
    async with whip_lesson(media=worker) as lesson:
        encoder = WhipClient(
            lesson.h.session, lesson.endpoint(), lesson.token, load_clip(path, "video")
        )
        try:
            assert (await encoder.publish()).status == 201
            await encoder.connected()

            async def told() -> bool:
                error = (await lesson.status())["last_error"]
                return bool(error and "B-frames" in error["message"])

            await until(told, what="the B-frames named in the source's status")
            status = await lesson.status()
            assert status["connected"] is True  # reported, not cut off
            assert "bframes=0" in status["last_error"]["message"]
        finally:
            await encoder.close()
        await worker.close()
