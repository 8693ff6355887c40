"""Finished recordings go to S3-compatible object storage (an S3 server of the test's own,
tests/support/s3_server.py: moto's, over IPv6): a lesson recorded through the real SFU
(`sanke serve`'s app, a real aiortc teacher) lands in the bucket byte for byte, is listed only
once it is there, plays through the replay API with range requests (a redirect to a presigned
URL), and the retention sweep deletes the object; an upload while the server is down keeps
the local file and succeeds once the server is back."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer
from minio import Minio
from support.browser import chromium, wait_js
from support.clips import Clip, load_clip, make_clip
from support.harness import SECRET, Harness
from support.replays import KEY
from support.rtc_client import RtcClient
from support.s3_server import ACCESS_KEY, BUCKET, SECRET_KEY, MotoS3

from contracts.rooms import Role, RoomKind
from contracts.store import MemoryStore
from lessons.recording_store import PART_SIZE, expected_etag
from lessons.records import RecordedFile, RecordLog
from lessons.replay_catalogue import ReplayCatalogue
from media.worker import Worker
from sanke.app import SERVICE_KEY, create_app
from sanke.recording import retention_sweep
from sanke.settings import Settings
from signaling.tokens import TokenService

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


@pytest.fixture
def s3(tmp_path: Path) -> Iterator[MotoS3]:
    server = MotoS3(tmp_path / "s3.log")
    server.start()
    yield server
    server.stop()


def _settings(recordings: Path, s3: MotoS3, endpoint: str | None = None) -> Settings:
    return Settings(
        token_secret=SECRET,
        dev=True,
        records_key=KEY,
        recordings_dir=str(recordings),
        host=["127.0.0.1"],
        redis_url=None,
        recordings_s3_endpoint=endpoint or s3.endpoint,
        recordings_s3_bucket=BUCKET,
        recordings_s3_access_key=ACCESS_KEY,
        recordings_s3_secret_key=SECRET_KEY,
        recordings_s3_prefix="district-1/",
        recordings_s3_retry_seconds=0.5,
        recordings_retention_days=30,
    )


def _client(s3: MotoS3) -> Minio:
    host = s3.endpoint.removeprefix("http://")
    return Minio(host, ACCESS_KEY, SECRET_KEY, secure=False, region="us-east-1")


@pytest.fixture
async def embedded(
    tmp_path: Path, s3: MotoS3
) -> AsyncIterator[tuple[Harness, MemoryStore, Path, Settings]]:
    recordings = tmp_path / "recordings"
    settings = _settings(recordings, s3)
    store = MemoryStore()
    server = TestServer(create_app(settings, store=store), host="127.0.0.1")
    await server.start_server()
    h = Harness(server, store, TokenService(SECRET))
    try:
        yield h, store, recordings, settings
    finally:
        await h.close()
        await server.close()


async def _until(check: Callable[[], Any], seconds: float = 20.0) -> Any:
    for _ in range(int(seconds * 10)):
        if found := check():
            return found
        await asyncio.sleep(0.1)
    return check()


async def _record(h: Harness, room: str, clip: Clip, recordings: Path) -> None:
    """A lesson of ~3 s in ``room``, recorded, its room closed and its part finished."""
    await h.room(room, kind=RoomKind.master, name="公开课")
    teacher = RtcClient(
        h.session, h.url("/ws"), h.token(Role.teacher, room, subject="zhang", school_id="s"), clip
    )
    try:
        await teacher.start()
        assert await _until(lambda: list((recordings / room).glob("*.partial"))), room
        await asyncio.sleep(3)
        service = h.app[SERVICE_KEY]
        await service.close_room(room)
        worker = service.media
        assert isinstance(worker, Worker)
        await worker.recordings_finished()
    finally:
        await teacher.close()


def _object(s3: MotoS3, key: str) -> bytes:
    response = _client(s3).get_object(BUCKET, key)
    try:
        return response.read()
    finally:
        response.close()
        response.release_conn()


async def test_a_recorded_lesson_is_in_the_bucket_plays_by_range_and_is_swept(
    embedded: tuple[Harness, MemoryStore, Path, Settings], s3: MotoS3, tmp_path: Path
) -> None:
    h, store, recordings, settings = embedded
    clip = load_clip(make_clip(tmp_path, "camera.ts", size="640x360", seconds=4), "video")
    admin = {"Authorization": f"Bearer {h.tokens.mint(subject='admin-1', role=Role.admin)}"}

    async def listed() -> list[dict[str, Any]]:
        got = await h.session.get(h.url("/api/v1/replays"), headers=admin)
        assert got.status == 200
        replays: list[dict[str, Any]] = (await got.json())["replays"]
        return replays

    await _record(h, "open-1", clip, recordings)
    (replay,) = await listed()
    (part,) = replay["parts"]
    # uploaded, verified, then listed; the node's copy removed
    assert not list(recordings.rglob("*.mp4")) and not list(recordings.rglob("*.partial"))
    data = await asyncio.to_thread(_object, s3, "district-1/" + part["file"])
    assert hashlib.sha256(data).hexdigest() == part["sha256"] and len(data) == part["bytes"]
    (record,) = [
        b
        for line in await RecordLog(store, KEY).raw()
        if (b := json.loads(line)["body"]).get("kind") == "recording"
    ]
    assert (record["file"], record["sha256"]) == (part["file"], part["sha256"])

    # the replay library redirects to a presigned URL; ranges go to the bucket
    detail = await (await h.session.get(h.url("/api/v1/replays/open-1"), headers=admin)).json()
    link = h.url(detail["parts"][0]["url"])
    moved = await h.session.get(link, allow_redirects=False)
    assert moved.status == 302 and moved.headers["Location"].startswith(s3.endpoint)
    assert "X-Amz-Signature=" in moved.headers["Location"]
    whole = await h.session.get(link)
    assert whole.status == 200 and await whole.read() == data
    for asked, first, last in (
        ("bytes=100-1099", 100, 1099),
        ("bytes=-300", len(data) - 300, len(data) - 1),
    ):
        piece = await h.session.get(link, headers={"Range": asked})
        assert piece.status == 206, asked
        assert piece.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert await piece.read() == data[first : last + 1]

    # retention deletes the object, records it and takes the part out of the library
    sweep = retention_sweep(settings, recordings, RecordLog(store, KEY), ReplayCatalogue(store))
    assert sweep is not None
    sweep.clock = lambda: replay["ended_at"] + 31 * 86400
    report = await sweep.sweep()
    assert report.deleted == [part["file"]]
    assert not list(_client(s3).list_objects(BUCKET, recursive=True))
    assert await listed() == []
    deleted = [
        b
        for line in await RecordLog(store, KEY).raw()
        if (b := json.loads(line)["body"]).get("kind") == "recording-deleted"
    ]
    assert [(d["file"], d["sha256"]) for d in deleted] == [(part["file"], part["sha256"])]

    # the server is down: the part stays here, unlisted; back, it is uploaded
    s3.stop()
    await _record(h, "open-2", clip, recordings)
    (kept,) = list(recordings.rglob("*.mp4"))
    kept_sha = hashlib.sha256(kept.read_bytes()).hexdigest()
    await asyncio.sleep(1.5)  # retries go on failing meanwhile
    assert kept.is_file() and await listed() == []
    s3.start()  # empty, like a new server: the uploader makes the bucket again
    assert await _until(lambda: not kept.exists(), 30), "not uploaded after the server came back"
    (replay,) = await _until_listed(listed)
    (part,) = replay["parts"]
    data = await asyncio.to_thread(_object, s3, "district-1/" + part["file"])
    assert hashlib.sha256(data).hexdigest() == kept_sha == part["sha256"]


async def _until_listed(listed: Callable[[], Any]) -> list[dict[str, Any]]:
    for _ in range(50):
        if found := await listed():
            return list(found)
        await asyncio.sleep(0.1)
    return list(await listed())


def test_the_expected_etag_is_the_one_s3_gives_single_and_multipart(
    s3: MotoS3, tmp_path: Path
) -> None:
    client = _client(s3)
    client.make_bucket("etags")
    for size in (1000, PART_SIZE + 12345):
        path = tmp_path / f"f{size}"
        path.write_bytes(hashlib.sha256(str(size).encode()).digest() * (size // 32 + 1))
        path.write_bytes(path.read_bytes()[:size])
        client.fput_object("etags", path.name, str(path), part_size=PART_SIZE)
        stat = client.stat_object("etags", path.name)
        assert (stat.etag or "").strip('"') == expected_etag(path, size)
    # an object that is not the file: another ETag
    client.put_object("etags", "other", io.BytesIO(b"x" * 1000), 1000)
    assert client.stat_object("etags", "other").etag != expected_etag(tmp_path / "f1000", 1000)


async def _left_behind(
    tmp_path: Path, recordings: Path, room: str
) -> tuple[str, bytes, MemoryStore]:
    """A finished part on disk and its record, as a run whose upload failed leaves them."""
    name = f"{room}/20261102T010203Z-zhang-part1.mp4"
    local = recordings / name
    local.parent.mkdir(parents=True)
    clip = make_clip(tmp_path, "lesson.mp4", size="640x360", seconds=4)
    data = Path(clip).read_bytes()
    local.write_bytes(data)
    store = MemoryStore()
    await store.start()
    now = 1_790_000_000.0
    await RecordLog(store, KEY).append(
        RecordedFile(
            room_id=room,
            participant_id="zhang",
            part=1,
            file=name,
            sha256=hashlib.sha256(data).hexdigest(),
            bytes=len(data),
            started_at=now - 4,
            ended_at=now,
            duration_seconds=4.0,
        ),
        now,
    )
    return name, data, store


async def test_a_part_left_unuploaded_by_the_last_run_is_uploaded_when_the_process_starts(
    tmp_path: Path, s3: MotoS3
) -> None:
    """A process that stopped before its upload went through (the store was down) left a
    finished part on disk, named by its record: the next start uploads and lists it."""
    recordings = tmp_path / "recordings"
    name, data, store = await _left_behind(tmp_path, recordings, "open-3")
    local = recordings / name
    server = TestServer(create_app(_settings(recordings, s3), store=store), host="127.0.0.1")
    h = Harness(server, store, TokenService(SECRET))
    await h.room("open-3", kind=RoomKind.master)
    await server.start_server()
    try:
        assert await _until(lambda: not local.exists(), 20), "not uploaded at start"
        admin = {"Authorization": f"Bearer {h.tokens.mint(subject='admin-1', role=Role.admin)}"}
        got = await h.session.get(h.url("/api/v1/replays/open-3"), headers=admin)
        assert got.status == 200, await got.text()
        (part,) = (await got.json())["parts"]
        assert part["file"] == name
        assert await asyncio.to_thread(_object, s3, "district-1/" + name) == data
    finally:
        await h.close()
        await server.close()


async def test_chromium_plays_a_part_from_the_bucket_through_the_redirect(
    tmp_path: Path, s3: MotoS3
) -> None:
    """The page's Content-Security-Policy lets a <video> follow the redirect to the bucket
    (named by host: CSP has no syntax for an IPv6 literal, so ``localhost`` here)."""
    recordings = tmp_path / "recordings"
    name, _, store = await _left_behind(tmp_path, recordings, "open-4")
    endpoint = f"http://localhost:{s3.port}"
    server = TestServer(
        create_app(_settings(recordings, s3, endpoint), store=store), host="127.0.0.1"
    )
    h = Harness(server, store, TokenService(SECRET))
    await h.room("open-4", kind=RoomKind.master)
    await server.start_server()
    try:
        assert await _until(lambda: not (recordings / name).exists(), 20), "not uploaded"
        admin = {"Authorization": f"Bearer {h.tokens.mint(subject='admin-1', role=Role.admin)}"}
        detail = await (await h.session.get(h.url("/api/v1/replays/open-4"), headers=admin)).json()
        link = h.url(detail["parts"][0]["url"])
        page_reply = await h.session.get(h.url("/web/index.html"))
        assert endpoint in page_reply.headers["Content-Security-Policy"]
        async with chromium() as browser:
            page = await browser.new_page()  # type: ignore[attr-defined]
            await page.goto(h.url("/web/index.html"))
            await page.evaluate(
                """(src) => { const v = document.createElement('video');
                   v.id = 'replay'; v.muted = true; v.src = src;
                   document.body.appendChild(v); v.play(); }""",
                link,
            )
            played = await wait_js(
                page,
                "(() => { const v = document.getElementById('replay');"
                " return v.currentTime > 1 && v.videoWidth === 640 ? v.currentSrc : null; })()",
                timeout=20_000,
            )
            assert played == link
    finally:
        await h.close()
        await server.close()
