"""Recording and live HLS: N lessons recorded and HLS-packaged at once (issue 17, "Benchmark").

What runs is the real media code, fed the way the SFU feeds it: each lesson is three
``Producer``s (the teacher camera's 720p high layer, its 360p low layer, the microphone) on a
frame origin this script drives, with a ``Recorder`` (camera + microphone → fragmented MP4,
Opus → AAC) and an ``HlsPackager`` (both layers → CMAF HLS, AAC) as their sinks. The frames
are a clip encoded once before anything is measured (libx264 baseline, no B-frames, a
keyframe every second, 2.5 Mbit/s 720p30 and 0.5 Mbit/s 360p30; Opus 20 ms frames) and
replayed in real time, looping, so no encoder is measured.

Measured, over the replay after a warm-up:

- **CPU per recorded track** (a recorder: the 720p camera and its microphone in one MP4):
  its writer thread's CPU time (``/proc/self/task/<tid>/stat``) plus what its ``on_frame``
  costs on the event loop (``time.thread_time`` around each call), divided by the seconds.
  The producer's own work (parsing the frame, done for every consumer anyway) is not in it.
- **CPU per HLS lesson** (a packager: two variants and one AAC encode), the same way.
- **Disk bytes/s**: what each writer thread wrote (``wchar`` of ``/proc/self/task/<tid>/io``).
- **Segment latency**: a watcher thread polls every media playlist each 10 ms; a segment is
  *available* when its playlist lists it (ffmpeg renames the segment into place first). The
  latency is that moment minus the arrival of the segment's last frame (the replay notes the
  arrival of every frame; the segment's end comes from the playlist's EXTINFs). The
  packager's own figure (``segment_latencies``: the next keyframe's arrival → muxed) is shown
  next to it.
- **Finishing** a part (the faststart remux and the SHA-256), CPU seconds per part.
- **FFmpeg side by side**, after the replay in the same run: N ``ffmpeg -re`` processes
  remuxing the same clip (one file holding the same H264 and Opus packets) into the same kind
  of file the recorder writes (video copied, Opus → AAC 96 kbit/s, fragmented MP4), their CPU
  from ``getrusage(RUSAGE_CHILDREN)``. ``ffmpeg_ratio`` = Sanke's CPU per recorded track ÷
  ffmpeg's CPU per remux. FFmpeg reads a file, not RTP: it does no depacketizing, which
  favours it slightly.
- **HLS segments served**: a real ``sanke serve`` process with ``SANKE_HLS_DIR`` pointing at
  the segments just written; an aiohttp client fetches random segments with signed URLs
  (Aliyun type A, as the link API signs them) for ``--serve-seconds``;
  ``hls_rps_per_core`` = requests ÷ the server process's CPU seconds meanwhile.

It prints a table, then one line:

    RESULT recording lessons=N cores_per_track=… hls_latency_s=… ffmpeg_ratio=… hls_rps_per_core=…

``hls_latency_s`` is the 95th percentile over all segments of both variants. Targets
(issue 17): ≤ 0.02 core per recorded 720p track; a segment available ≤ 0.3 s after its last
frame arrived; each is printed PASS or FAIL.

    .venv/bin/python benchmarks/recording.py                       # 4 lessons, 30 s
    .venv/bin/python benchmarks/recording.py --lessons 8 --seconds 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import heapq
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import av
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from contracts.hls import room_directory_name
from lessons.hls_signing import UrlSigner
from media.aac import OpusToAac
from media.frames import H264_IDR, EncodedFrame, h264_nal_types
from media.hls_packager import HlsPackager, HlsSettings
from media.origin import InboundStats, OnFrame
from media.producer import Producer
from media.recorder import Recorder
from media.recording_mux import FragmentedMp4Writer

SANKE = str(Path(sys.executable).with_name("sanke"))
SECRET = "recording-bench-" + "s" * 32
URL_KEY = "recording-bench-url-key-0123456789"
CLIP_SECONDS = 10
TICKS = os.sysconf("SC_CLK_TCK")
TARGET_CORES_PER_TRACK = 0.02
TARGET_LATENCY_S = 0.3
WARMUP_SECONDS = 3.0
FELL_BEHIND_S = 0.5  # the packager's own delay (next keyframe → muxed) past this: a backlog
H264 = ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "baseline", "-bf", "0",
        "-pix_fmt", "yuv420p", "-tune", "zerolatency", "-g", "30", "-keyint_min", "30",
        "-sc_threshold", "0"]  # fmt: skip


# --- the clip, encoded once ---------------------------------------------------------------


@dataclass(slots=True)
class Packet:
    at: float  # seconds from the clip's start
    data: bytes
    timestamp: int  # RTP units from the clip's start


@dataclass
class Track:
    codec: str
    clock: int
    packets: list[Packet]
    duration: float  # seconds: one loop


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def encode_clip(directory: Path) -> dict[str, Path]:
    """720p and 360p H264 (MPEG-TS: Annex B, SPS/PPS in front of every IDR, as the SFU
    reassembles them) and Opus; plus one file with the 720p video and the Opus for ffmpeg."""
    picture = "testsrc2=size=1280x720:rate=30,noise=alls=12:allf=t,format=yuv420p"
    sound = "sine=frequency=440:sample_rate=48000,volume=0.3"
    high, low = directory / "high.ts", directory / "low.ts"
    opus, both = directory / "audio.ogg", directory / "lesson.mkv"
    seconds = str(CLIP_SECONDS)
    ffmpeg("-f", "lavfi", "-i", picture, "-t", seconds, *H264, "-b:v", "2500k",
           "-maxrate", "2500k", "-bufsize", "2500k", str(high))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", picture + ",scale=640:360", "-t", seconds, *H264, "-b:v",
           "500k", "-maxrate", "500k", "-bufsize", "500k", str(low))  # fmt: skip
    ffmpeg("-f", "lavfi", "-i", sound, "-t", seconds, "-c:a", "libopus", "-b:a", "48k",
           "-frame_duration", "20", "-ac", "2", str(opus))  # fmt: skip
    ffmpeg("-i", str(high), "-i", str(opus), "-map", "0:v", "-map", "1:a", "-c", "copy", str(both))
    return {"high": high, "low": low, "audio": opus, "lesson": both}


def load_track(path: Path, kind: str) -> Track:
    clock = 90_000 if kind == "video" else 48_000
    with av.open(str(path)) as container:
        stream = container.streams.video[0] if kind == "video" else container.streams.audio[0]
        raw = [
            (int(p.pts), bytes(p)) for p in container.demux(stream) if p.size and p.pts is not None
        ]
        time_base = stream.time_base
    raw.sort()
    first = raw[0][0]
    packets = [
        Packet(float((pts - first) * time_base), data, round((pts - first) * time_base * clock))
        for pts, data in raw
    ]
    step = packets[1].at - packets[0].at
    return Track("H264" if kind == "video" else "opus", clock, packets, packets[-1].at + step)


# --- a lesson: producers on a driven origin, a recorder and a packager --------------------


class DrivenOrigin:
    """The frame origin the replay drives (what an ingest source is to a producer)."""

    def __init__(self) -> None:
        self.deliver: OnFrame = lambda codec, data, timestamp: None
        self.keyframe_requests = 0

    def start(
        self,
        on_frame: OnFrame,
        on_gap: Callable[[], None],
        on_cut: Callable[[], None],
        downstream_loss: Callable[[], int],
        on_link_loss: Callable[[int], None],
    ) -> None:
        self.deliver = on_frame

    async def request_keyframe(self) -> bool:
        self.keyframe_requests += 1  # the clip has a keyframe every second anyway
        return True

    def forget_missing(self) -> None:
        return None

    async def inbound(self) -> InboundStats:
        return InboundStats()


class TimedSink:
    """A sink's cost on the event loop: ``time.thread_time`` around each of its calls."""

    fraction_lost = 0
    fraction_lost_at = -1e9

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.cpu = 0.0

    def on_frame(self, producer: Producer, frame: EncodedFrame) -> None:
        started = time.thread_time()
        self.inner.on_frame(producer, frame)
        self.cpu += time.thread_time() - started

    def on_gap(self, producer: Producer) -> None:
        self.inner.on_gap(producer)

    def on_cut(self, producer: Producer) -> None:
        self.inner.on_cut(producer)

    def wants(self, producer: Producer) -> bool:
        return bool(self.inner.wants(producer))


def timed(producers: list[Producer], sink: Any) -> TimedSink:
    wrapper = TimedSink(sink)
    for producer in producers:
        producer.sinks[producer.sinks.index(sink)] = wrapper
    return wrapper


@dataclass
class Lesson:
    n: int
    origins: dict[str, DrivenOrigin]
    producers: dict[str, Producer]
    recorder: Recorder
    packager: HlsPackager
    recorder_loop: TimedSink
    packager_loop: TimedSink
    # per layer: (position on the layer's timeline in s, arrival) of every frame delivered
    arrivals: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    first_timestamp: dict[str, int] = field(default_factory=dict)


def make_lesson(n: int, recordings: Path, hls: Path) -> Lesson:
    origins = {name: DrivenOrigin() for name in ("high", "low", "audio")}
    teacher = f"teacher-{n}"
    producers = {
        "high": Producer(teacher, "video", "high", origins["high"]),
        "low": Producer(teacher, "video", "low", origins["low"]),
        "audio": Producer(teacher, "audio", "main", origins["audio"]),
    }
    room = f"bench-{n}"
    recorder = Recorder(
        recordings, f"{room}/part1.mp4", room, teacher, 1, producers["high"], producers["audio"]
    )
    packager = HlsPackager(
        hls / room_directory_name(room),
        f"stream-{n}",
        room,
        producers["high"],
        producers["low"],
        producers["audio"],
        # event: every segment stays, for the serving part below (live deletes old ones)
        HlsSettings(playlist_type="event"),
    )
    recorder_loop = timed([producers["high"], producers["audio"]], recorder)
    packager_loop = timed(list(producers.values()), packager)
    return Lesson(n, origins, producers, recorder, packager, recorder_loop, packager_loop)


def schedule(
    lesson: Lesson, tracks: dict[str, Track], offset: float
) -> Iterator[tuple[float, int, str, Packet, int]]:
    """(due, lesson, track, packet, loop) of one track forever, from ``offset`` seconds."""
    iterators = []
    for name, track in tracks.items():

        def one(name: str = name, track: Track = track) -> Iterator[Any]:
            loop = 0
            while True:
                base = offset + loop * track.duration
                for packet in track.packets:
                    yield (base + packet.at, lesson.n, name, packet, loop)
                loop += 1

        iterators.append(one())
    return heapq.merge(*iterators, key=lambda e: e[0])


async def replay(
    lessons: list[Lesson], tracks: dict[str, Track], seconds: float, start: float
) -> int:
    """Every lesson's frames in real time until ``seconds`` after ``start`` (monotonic)."""
    stagger = 1.0 / max(1, len(lessons))  # lessons' keyframes not all at the same instant
    events = heapq.merge(
        *(schedule(lesson, tracks, i * stagger) for i, lesson in enumerate(lessons)),
        key=lambda e: e[0],
    )
    delivered = 0
    for due, n, name, packet, loop in events:
        if due >= seconds:
            break
        delay = start + due - time.monotonic()
        if delay > 0.001:
            await asyncio.sleep(delay)
        lesson = lessons[n]
        track = tracks[name]
        timestamp = (packet.timestamp + round(loop * track.duration * track.clock)) % (1 << 32)
        now = time.monotonic()
        lesson.origins[name].deliver(track.codec, packet.data, timestamp)
        if name != "audio":
            first = lesson.first_timestamp.setdefault(name, timestamp)
            position = ((timestamp - first) % (1 << 32)) / track.clock
            lesson.arrivals.setdefault(name, []).append((position, now))
        delivered += 1
    return delivered


# --- per-thread CPU and I/O -------------------------------------------------------------


def thread_cpu(native_id: int) -> float:
    try:
        text = Path(f"/proc/self/task/{native_id}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def thread_written(native_id: int) -> int:
    try:
        for line in Path(f"/proc/self/task/{native_id}/io").read_text().splitlines():
            if line.startswith("wchar:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Snapshot:
    at: float
    process: float
    main: float
    threads: dict[str, tuple[float, int]]  # name → (cpu s, bytes written)
    loop: dict[str, float]  # sink → cpu s on the event loop


def snapshot(lessons: list[Lesson], watcher: threading.Thread) -> Snapshot:
    threads = {}
    for thread in threading.enumerate():
        if thread.native_id is not None and thread.name.startswith(("rec-", "hls-")):
            threads[thread.name] = (thread_cpu(thread.native_id), thread_written(thread.native_id))
    if watcher.native_id is not None:
        threads["watcher"] = (thread_cpu(watcher.native_id), 0)
    loop = {}
    for lesson in lessons:
        loop[f"rec-{lesson.n}"] = lesson.recorder_loop.cpu
        loop[f"hls-{lesson.n}"] = lesson.packager_loop.cpu
    main = threading.main_thread().native_id
    return Snapshot(
        time.monotonic(),
        time.process_time(),
        thread_cpu(main) if main is not None else 0.0,
        threads,
        loop,
    )


# --- segment availability ---------------------------------------------------------------

_EXTINF = re.compile(r"#EXTINF:([\d.]+),")


class PlaylistWatcher:
    """Polls media playlists; notes when each segment is first listed, and where it ends on
    its variant's timeline (the sum of the EXTINFs up to it; event playlists keep all)."""

    def __init__(self, playlists: dict[tuple[int, str], Path], interval: float = 0.01) -> None:
        self.playlists = playlists
        self.interval = interval
        # (lesson, layer) → segment uri → (listed at, end in s)
        self.listed: dict[tuple[int, str], dict[str, tuple[float, float]]] = {
            key: {} for key in playlists
        }
        self._mtimes: dict[tuple[int, str], int] = {}
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="watcher", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for key, path in self.playlists.items():
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    continue
                if self._mtimes.get(key) == mtime:
                    continue
                now = time.monotonic()
                self._mtimes[key] = mtime
                with contextlib.suppress(OSError):
                    self._parse(key, path.read_text(), now)

    def _parse(self, key: tuple[int, str], text: str, now: float) -> None:
        end, duration = 0.0, None
        listed = self.listed[key]
        for line in text.splitlines():
            match = _EXTINF.match(line)
            if match:
                duration = float(match[1])
            elif line and not line.startswith("#") and duration is not None:
                end += duration
                listed.setdefault(line, (now, end))
                duration = None

    def stop(self) -> None:
        self._stop.set()
        self.thread.join()


def segment_latencies(
    lesson: Lesson, watcher: PlaylistWatcher, since: float, until: float
) -> list[float]:
    """Listed − arrival of the segment's last frame, for the segments listed during the
    measured window (the last one is written when the stream ends, not by a frame)."""
    out = []
    for layer in ("high", "low"):
        arrivals = lesson.arrivals.get(layer, [])
        for listed_at, end in watcher.listed[(lesson.n, layer)].values():
            if not since <= listed_at <= until:
                continue
            last = [arrived for position, arrived in arrivals if position < end - 0.005]
            if last:
                out.append(listed_at - last[-1])
    return out


# --- where a recorder's CPU goes -------------------------------------------------------


def offline_split(tracks: dict[str, Track], directory: Path) -> tuple[float, float]:
    """The recorder's two jobs on one loop of the clip, as fast as they go (one thread, no
    queue): the video passthrough into fragmented MP4, and Opus → AAC. CPU seconds per
    second of lesson each."""
    video, sound = tracks["high"], tracks["audio"]
    writer = FragmentedMp4Writer(
        directory / "split.mp4", video.packets[0].data, 1280, 720, audio=False
    )
    started = time.thread_time()
    for packet in video.packets:
        keyframe = H264_IDR in h264_nal_types(packet.data)
        writer.video(packet.data, packet.timestamp, keyframe)
    writer.close()
    video_cpu = time.thread_time() - started
    transcoder = OpusToAac(lambda packet: None)
    started = time.thread_time()
    for packet in sound.packets:
        transcoder.opus(packet.data, packet.timestamp)
    transcoder.flush()
    audio_cpu = time.thread_time() - started
    return video_cpu / video.duration, audio_cpu / sound.duration


# --- FFmpeg side by side ----------------------------------------------------------------


def ffmpeg_remuxes(
    clip: Path, lessons: int, seconds: float, directory: Path, audio: str
) -> tuple[float, int]:
    """N ``ffmpeg -re`` remuxes at once (``audio``: ``aac``, the recorder's job, or ``copy``,
    a plain remux): CPU seconds per remux and bytes written each."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    outputs = [directory / f"ffmpeg-{audio}-{n}.mp4" for n in range(lessons)]
    command = ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-re", "-stream_loop", "-1",
               "-i", str(clip), "-t", f"{seconds:g}", "-map", "0", "-c:v", "copy", "-c:a", audio,
               *(["-b:a", "96k"] if audio == "aac" else []), "-movflags", "frag_keyframe+empty_moov+default_base_moof",
               "-f", "mp4"]  # fmt: skip
    processes = [subprocess.Popen([*command, str(out)]) for out in outputs]
    for process in processes:
        process.wait()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    written = sum(out.stat().st_size for out in outputs if out.exists())
    return cpu / lessons, written // lessons


# --- HLS segments served by the app -----------------------------------------------------


@dataclass
class Serving:
    requests: int
    errors: int
    seconds: float
    server_cpu: float
    bytes: int


async def hammer(base: str, urls: list[str], seconds: float, concurrency: int) -> Serving:
    counts = {"requests": 0, "errors": 0, "bytes": 0}

    async def worker(session: aiohttp.ClientSession, stop: float) -> None:
        while time.monotonic() < stop:
            async with session.get(base + random.choice(urls)) as reply:
                body = await reply.read()
                counts["requests"] += 1
                counts["bytes"] += len(body)
                if reply.status != 200:
                    counts["errors"] += 1

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session, time.monotonic() + 0.5) for _ in range(4)))
        counts.update(requests=0, errors=0, bytes=0)
        started = time.monotonic()
        stop = started + seconds
        await asyncio.gather(*(worker(session, stop) for _ in range(concurrency)))
        elapsed = time.monotonic() - started
    return Serving(counts["requests"], counts["errors"], elapsed, 0.0, counts["bytes"])


def serve_hls(hls: Path, workdir: Path, seconds: float, concurrency: int) -> Serving:
    port = _free_port()
    log = (workdir / "server.log").open("wb")
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "SANKE_LOG_LEVEL": "warning",
        "SANKE_HLS_DIR": str(hls),
        "SANKE_HLS_URL_KEY": URL_KEY,
        "SANKE_RTMP_PORT": "0",
    }
    server = subprocess.Popen(
        [SANKE, "serve", "--port", str(port), "--token-secret", SECRET],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_ready(base, server)
        signer = UrlSigner(URL_KEY, 4 * 3600)
        urls = []
        for segment in sorted(hls.glob("*/*/*/seg*.m4s")):
            room = segment.relative_to(hls).parts[0]
            path = "/hls/" + segment.relative_to(hls).as_posix()
            urls.append(signer.sign(path, signer.lesson_parts(room)))
        if not urls:
            raise RuntimeError("no HLS segments were written")
        proc = psutil.Process(server.pid)
        before = proc.cpu_times()
        served = asyncio.run(hammer(base, urls, seconds, concurrency))
        after = proc.cpu_times()
        served.server_cpu = (after.user - before.user) + (after.system - before.system)
        return served
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_ready(base: str, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"sanke serve exited {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("sanke serve did not become ready")


# --- the run ----------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float
    rec_cores: list[float]
    hls_cores: list[float]
    rec_loop_cores: list[float]
    hls_loop_cores: list[float]
    rec_bytes_per_s: list[float]
    hls_bytes_per_s: list[float]
    main_cores: float
    process_cores: float
    watcher_cores: float
    latencies: list[float]
    packager_latencies: list[float]
    finish_cpu: list[float]
    split: tuple[float, float]
    dropped: int
    delivered: int


async def run_sanke(
    tracks: dict[str, Track], lessons_n: int, seconds: float, workdir: Path
) -> Measured:
    recordings, hls = workdir / "recordings", workdir / "hls"
    lessons = [make_lesson(n, recordings, hls) for n in range(lessons_n)]
    playlists = {
        (lesson.n, layer): lesson.packager.stream_directory / layer / "index.m3u8"
        for lesson in lessons
        for layer in ("high", "low")
    }
    watcher = PlaylistWatcher(playlists)
    watcher.thread.start()
    start = time.monotonic()
    marks: list[Snapshot] = []

    async def mark_after(delay: float) -> None:
        await asyncio.sleep(delay)
        marks.append(snapshot(lessons, watcher.thread))

    warm = asyncio.create_task(mark_after(WARMUP_SECONDS))
    delivered = await replay(lessons, tracks, seconds, start)
    await warm
    end = snapshot(lessons, watcher.thread)
    replay_end = time.monotonic()
    begin = marks[0]
    window = end.at - begin.at

    def cores(name: str) -> float:
        return (end.threads[name][0] - begin.threads.get(name, (0.0, 0))[0]) / window

    def rate(name: str) -> float:
        return (end.threads[name][1] - begin.threads.get(name, (0.0, 0))[1]) / window

    rec_names = [f"rec-{lesson.recorder.name}" for lesson in lessons]
    hls_names = [f"hls-{lesson.packager.room_id}" for lesson in lessons]
    rec_loop = [(end.loop[f"rec-{n}"] - begin.loop[f"rec-{n}"]) / window for n in range(lessons_n)]
    hls_loop = [(end.loop[f"hls-{n}"] - begin.loop[f"hls-{n}"]) / window for n in range(lessons_n)]
    await asyncio.sleep(0.3)  # the playlists of the last segments cut during the replay
    watcher.stop()
    latencies = [
        x for lesson in lessons for x in segment_latencies(lesson, watcher, begin.at, replay_end)
    ]
    packager_latencies = [x for lesson in lessons for x in lesson.packager.segment_latencies]
    dropped = sum(lesson.recorder.dropped + lesson.packager.dropped for lesson in lessons)
    finish_cpu = []
    for lesson in lessons:
        before = time.process_time()
        finished = await lesson.recorder.finish()
        finish_cpu.append(time.process_time() - before)
        if finished is None:
            raise RuntimeError(f"lesson {lesson.n}: nothing was recorded")
        await asyncio.to_thread(lesson.packager.finish_blocking, False)
        for producer in lesson.producers.values():
            producer.close()
    return Measured(
        seconds=window,
        rec_cores=[cores(name) for name in rec_names],
        hls_cores=[cores(name) for name in hls_names],
        rec_loop_cores=rec_loop,
        hls_loop_cores=hls_loop,
        rec_bytes_per_s=[rate(name) for name in rec_names],
        hls_bytes_per_s=[rate(name) for name in hls_names],
        main_cores=(end.main - begin.main) / window,
        process_cores=(end.process - begin.process) / window,
        watcher_cores=cores("watcher"),
        latencies=latencies,
        packager_latencies=packager_latencies,
        finish_cpu=finish_cpu,
        split=offline_split(tracks, workdir),
        dropped=dropped,
        delivered=delivered,
    )


def p95(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", type=int, default=4, help="lessons at once (default 4)")
    parser.add_argument("--seconds", type=float, default=30, help="replay seconds (default 30)")
    parser.add_argument("--serve-seconds", type=float, default=5, help="HLS serving seconds")
    parser.add_argument("--concurrency", type=int, default=32, help="HLS client connections")
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args()
    if args.lessons < 1 or args.seconds < WARMUP_SECONDS + 2:
        parser.error(f"--lessons ≥ 1 and --seconds ≥ {WARMUP_SECONDS + 2:g}")
    if shutil.which("ffmpeg") is None:
        sys.exit("ffmpeg is required (apt-get install -y ffmpeg)")
    workdir = Path(tempfile.mkdtemp(prefix="sanke-recording-bench-"))
    try:
        print(f"encoding the clip ({CLIP_SECONDS} s, 720p + 360p H264, Opus) …", flush=True)
        clip = encode_clip(workdir)
        tracks = {
            "high": load_track(clip["high"], "video"),
            "low": load_track(clip["low"], "video"),
            "audio": load_track(clip["audio"], "audio"),
        }
        # one loop of the sound as long as the picture's (the Ogg file has one packet more)
        audio, loop = tracks["audio"], tracks["high"].duration
        audio.packets = [p for p in audio.packets if p.at < loop - 1e-6]
        audio.duration = loop
        clip_bps = sum(len(p.data) for p in tracks["high"].packets) * 8 / tracks["high"].duration
        print(f"720p clip: {clip_bps / 1e6:.2f} Mbit/s; replaying {args.lessons} lessons for "
              f"{args.seconds:g} s …", flush=True)  # fmt: skip
        measured = asyncio.run(run_sanke(tracks, args.lessons, args.seconds, workdir))
        print(
            f"ffmpeg: {args.lessons} remuxes of the same clip for {args.seconds:g} s …", flush=True
        )
        same_job = ffmpeg_remuxes(clip["lesson"], args.lessons, args.seconds, workdir, "aac")
        print(f"ffmpeg: {args.lessons} plain remuxes (-c copy) …", flush=True)
        plain = ffmpeg_remuxes(clip["lesson"], args.lessons, args.seconds, workdir, "copy")
        print(f"HLS serving: sanke serve, {args.concurrency} connections, "
              f"{args.serve_seconds:g} s …", flush=True)  # fmt: skip
        served = serve_hls(workdir / "hls", workdir, args.serve_seconds, args.concurrency)
        report(args, measured, same_job, plain, served)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def report(
    args: argparse.Namespace,
    m: Measured,
    same_job: tuple[float, int],
    plain: tuple[float, int],
    served: Serving,
) -> None:
    ffmpeg_cores, ffmpeg_bytes_per_s = same_job[0] / args.seconds, same_job[1] / args.seconds
    plain_cores = plain[0] / args.seconds
    mean = statistics.fmean
    rec = [a + b for a, b in zip(m.rec_cores, m.rec_loop_cores, strict=True)]
    hls = [a + b for a, b in zip(m.hls_cores, m.hls_loop_cores, strict=True)]
    per_track = mean(rec)
    latency = p95(m.latencies)
    ratio = per_track / ffmpeg_cores if ffmpeg_cores > 0 else float("nan")
    rps_per_core = served.requests / served.server_cpu if served.server_cpu > 0 else float("nan")
    rows = [
        ("lessons at once", f"{args.lessons}"),
        ("measured window (after warm-up)", f"{m.seconds:.1f} s"),
        ("frames delivered (all lessons)", f"{m.delivered}"),
        ("frames dropped (queues full)", f"{m.dropped}"),
        ("recorder: writer thread, cores/track", f"{mean(m.rec_cores):.4f} (max {max(m.rec_cores):.4f})"),
        ("recorder: on the event loop, cores/track", f"{mean(m.rec_loop_cores):.4f}"),
        ("recorder: total, cores/track", f"{per_track:.4f} (max {max(rec):.4f})"),
        ("  of which, offline: video passthrough", f"{m.split[0]:.4f} cores"),
        ("  of which, offline: Opus → AAC", f"{m.split[1]:.4f} cores"),
        ("HLS: writer thread, cores/lesson", f"{mean(m.hls_cores):.4f} (max {max(m.hls_cores):.4f})"),
        ("HLS: on the event loop, cores/lesson", f"{mean(m.hls_loop_cores):.4f}"),
        ("HLS: total, cores/lesson", f"{mean(hls):.4f} (max {max(hls):.4f})"),
        ("event loop thread (replay + producers + sinks)", f"{m.main_cores:.4f} cores"),
        ("whole process", f"{m.process_cores:.4f} cores (watcher {m.watcher_cores:.4f})"),
        ("recording disk write, per track", f"{mean(m.rec_bytes_per_s) / 1e3:.0f} kB/s"),
        ("HLS disk write, per lesson (2 variants)", f"{mean(m.hls_bytes_per_s) / 1e3:.0f} kB/s"),
        ("finishing a part (remux + SHA-256), CPU", f"{mean(m.finish_cpu):.3f} s per {args.seconds:g} s part"),
        ("segment latency (listed − last frame), p50", f"{statistics.median(m.latencies):.3f} s" if m.latencies else "n/a"),
        ("segment latency, p95 / max", f"{latency:.3f} / {max(m.latencies, default=float('nan')):.3f} s ({len(m.latencies)} segments)"),
        ("packager's own figure (muxed), p95", f"{p95(m.packager_latencies):.3f} s"),
        ("ffmpeg -re remux (copy + AAC), cores each", f"{ffmpeg_cores:.4f}"),
        ("ffmpeg disk write, each", f"{ffmpeg_bytes_per_s / 1e3:.0f} kB/s"),
        ("ffmpeg_ratio (Sanke track ÷ ffmpeg remux)", f"{ratio:.2f}"),
        ("ffmpeg -re -c copy (Opus kept), cores each", f"{plain_cores:.4f}"),
        ("Sanke track ÷ ffmpeg -c copy", f"{per_track / plain_cores:.2f}" if plain_cores > 0 else "n/a"),
        ("HLS segments served", f"{served.requests / served.seconds:.0f} req/s, {served.errors} errors, {served.bytes * 8 / served.seconds / 1e9:.2f} Gbit/s"),
        ("server process CPU meanwhile", f"{served.server_cpu / served.seconds:.2f} cores"),
        ("HLS segment requests per core-second", f"{rps_per_core:.0f}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    own = p95(m.packager_latencies)
    if m.dropped or own > FELL_BEHIND_S:
        # queues backed up: the writers did less than the frames asked, so the CPU figures
        # undercount and the latency is the backlog's (the machine, or the process, is full)
        print(f"WARNING the writers fell behind ({m.dropped} frames dropped, the packager's "
              f"own p95 {own:.3f} s): CPU per track undercounts; fewer --lessons, or a quieter "
              "machine")  # fmt: skip
    print(f"target ≤ {TARGET_CORES_PER_TRACK} core per recorded 720p track: "
          f"{verdict(per_track <= TARGET_CORES_PER_TRACK)} ({per_track:.4f})")  # fmt: skip
    print(f"target segment available ≤ {TARGET_LATENCY_S} s after its last frame (p95): "
          f"{verdict(latency <= TARGET_LATENCY_S)} ({latency:.3f} s)")  # fmt: skip
    print(f"RESULT recording lessons={args.lessons} cores_per_track={per_track:.4f} "
          f"hls_latency_s={latency:.3f} ffmpeg_ratio={ratio:.2f} "
          f"hls_rps_per_core={rps_per_core:.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
