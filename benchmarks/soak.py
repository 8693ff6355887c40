"""Soak: N lessons with churn against one real ``sanke serve`` process, for ``--minutes``.

Each lesson is a room with a teacher publishing a pre-encoded H264 clip (real aiortc peer,
no encoder: tests/support/clips.py) and one classroom receiving it. Every
``--churn-seconds`` one lesson's classroom leaves and a new one joins (a new peer
connection, a new negotiation), and a receive-only viewer joins one lesson over a plain
WebSocket and leaves again. Every ``--sample-seconds`` the server process is sampled: RSS
and open fds (psutil), asyncio tasks (its ``sanke_asyncio_tasks`` metric).

The slopes are least-squares fits over the samples after the first ``--warmup-minutes``
(allocator and caches settle). It prints a table and one line:

    RESULT soak minutes=M rss_slope_mb_per_h=S tasks_slope=T errors=E

``tasks_slope`` is tasks per hour. The target (slope < 20 MB/h, tasks flat) counts only for
a run of at least 30 minutes; a shorter run says so.

    .venv/bin/python benchmarks/soak.py                 # 20 lessons, 60 minutes
    .venv/bin/python benchmarks/soak.py --minutes 5     # a smoke run (does not count)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.clips import Clip, load_clip, make_clip
from support.processes import SANKE, free_port
from support.rtc_client import RtcClient

from contracts.rooms import Role
from signaling.tokens import TokenService

SECRET = "soak-secret-" + "s" * 32
COUNTING_MINUTES = 30


@dataclass
class Sample:
    at: float
    rss_mb: float
    fds: int
    tasks: int
    participants: int
    frames: int


@dataclass
class Soak:
    base: str
    tokens: TokenService
    clip: Clip
    session: aiohttp.ClientSession
    lessons: int
    teachers: list[RtcClient] = field(default_factory=list)
    classrooms: dict[int, RtcClient] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    joins: int = 0
    n: int = 0

    def token(self, role: Role, room: str, who: str) -> str:
        return self.tokens.mint(subject=who, role=role, room=room, ttl=4 * 3600)

    @property
    def ws(self) -> str:
        return self.base.replace("http", "ws", 1) + "/ws"

    async def setup(self) -> None:
        admin = {"Authorization": f"Bearer {self.tokens.mint(subject='soak', role=Role.admin)}"}
        for i in range(self.lessons):
            body = {"id": f"soak-{i}", "name": f"soak lesson {i}"}
            async with self.session.post(
                self.base + "/api/v1/rooms", json=body, headers=admin
            ) as reply:
                if reply.status != 201:
                    raise RuntimeError(f"room {i}: {reply.status} {await reply.text()}")
        for i in range(self.lessons):
            teacher = RtcClient(
                self.session, self.ws, self.token(Role.teacher, f"soak-{i}", f"t{i}"), self.clip
            )
            await teacher.start()
            self.teachers.append(teacher)
            await self.new_classroom(i)

    async def new_classroom(self, lesson: int) -> None:
        self.n += 1
        who = f"c{lesson}-{self.n}"
        client = RtcClient(self.session, self.ws, self.token(Role.classroom, f"soak-{lesson}", who))
        await client.start()
        self.classrooms[lesson] = client
        self.joins += 1

    async def churn_once(self) -> None:
        lesson = random.randrange(self.lessons)
        old = self.classrooms.pop(lesson)
        self.collect(old)
        with contextlib.suppress(Exception):
            assert old.ws is not None
            await old.ws.send_str(json.dumps({"type": "leave"}))
        await old.close()
        await self.new_classroom(lesson)
        await self.viewer_visit(random.randrange(self.lessons))

    async def viewer_visit(self, lesson: int) -> None:
        self.n += 1
        token = self.token(Role.viewer, f"soak-{lesson}", f"v{self.n}")
        async with self.session.ws_connect(self.ws) as ws:
            await ws.send_str(json.dumps({"type": "join", "token": token}))
            reply = json.loads((await ws.receive(timeout=10)).data)
            if reply.get("type") != "joined":
                self.errors.append(f"viewer join: {reply}")
            await ws.send_str(json.dumps({"type": "ping", "rid": "p"}))
            await asyncio.sleep(0.5)
            await ws.send_str(json.dumps({"type": "leave"}))
            with contextlib.suppress(Exception):
                await ws.receive(timeout=5)
        self.joins += 1

    def collect(self, client: RtcClient) -> None:
        for e in client.errors:
            self.errors.append(str(e))
        client.errors.clear()

    def frames(self) -> int:
        return sum(c.frames for c in self.classrooms.values())

    async def close(self) -> None:
        for c in [*self.classrooms.values(), *self.teachers]:
            self.collect(c)
            await c.close()


async def tasks_of(session: aiohttp.ClientSession, base: str) -> int:
    async with session.get(base + "/metrics") as reply:
        text = await reply.text()
    match = re.search(r"^sanke_asyncio_tasks (\S+)$", text, re.M)
    return int(float(match.group(1))) if match else -1


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    var = sum((t - mx) ** 2 for t, _ in points)
    if var == 0:
        return 0.0
    return sum((t - mx) * (v - my) for t, v in points) / var * 3600


async def run(args: argparse.Namespace) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="sanke-soak-"))
    clip = load_clip(make_clip(workdir, "soak.ts", seconds=4), "video")
    port = free_port()
    log = (workdir / "server.log").open("wb")
    server = subprocess.Popen(
        [SANKE, "serve", "--port", str(port), "--token-secret", SECRET],
        env={"PATH": "/usr/bin:/bin", "HOME": str(workdir), "SANKE_LOG_LEVEL": "warning"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    # A SIGTERM (a CI timeout, `kill`) cancels the run, so the finally below stops the server
    # instead of leaving it serving after the benchmark is gone.
    this = asyncio.current_task()
    if this is not None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, this.cancel)
    base = f"http://127.0.0.1:{port}"
    proc = psutil.Process(server.pid)
    samples: list[Sample] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(200):
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(base + "/readyz") as reply:
                        if reply.status == 200:
                            break
                await asyncio.sleep(0.1)
            soak = Soak(base, TokenService(SECRET), clip, session, args.lessons)
            await soak.setup()
            start = time.monotonic()
            end = start + args.minutes * 60
            next_sample = start
            next_churn = start + args.churn_seconds
            print(f"{'min':>6} {'rss_mb':>8} {'fds':>5} {'tasks':>6} {'joins':>6} {'frames':>8}")
            while time.monotonic() < end:
                now = time.monotonic()
                if now >= next_churn:
                    try:
                        await soak.churn_once()
                    except Exception as exc:
                        soak.errors.append(f"churn: {exc!r}")
                    next_churn += args.churn_seconds
                if now >= next_sample:
                    s = Sample(
                        at=now - start,
                        rss_mb=proc.memory_info().rss / 2**20,
                        fds=proc.num_fds(),
                        tasks=await tasks_of(session, base),
                        participants=soak.joins,
                        frames=soak.frames(),
                    )
                    samples.append(s)
                    print(
                        f"{s.at / 60:6.1f} {s.rss_mb:8.1f} {s.fds:5d} {s.tasks:6d} "
                        f"{s.participants:6d} {s.frames:8d}",
                        flush=True,
                    )
                    next_sample += args.sample_seconds
                if server.poll() is not None:
                    soak.errors.append(f"server exited {server.returncode}")
                    break
                await asyncio.sleep(0.2)
            if soak.frames() == 0:
                soak.errors.append("the classrooms received no frames")
            await soak.close()
    finally:
        server.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.wait(10)
        if server.poll() is None:
            server.kill()
        log.close()
    text = (workdir / "server.log").read_text(errors="replace")
    tracebacks = text.count("Traceback")
    if tracebacks:
        soak.errors.append(f"{tracebacks} tracebacks in the server log ({workdir}/server.log)")
    warm = [s for s in samples if s.at >= args.warmup_minutes * 60] or samples
    rss = slope_per_hour([(s.at, s.rss_mb) for s in warm])
    tasks = slope_per_hour([(s.at, float(s.tasks)) for s in warm])
    minutes = (samples[-1].at / 60) if samples else 0.0
    for e in soak.errors[:20]:
        print("error:", e)
    if minutes < COUNTING_MINUTES:
        print(
            f"note: a {minutes:.1f}-minute run: the target (< 20 MB/h, tasks flat) counts only "
            f"over >= {COUNTING_MINUTES} minutes; this run does not count"
        )
    print(
        f"RESULT soak minutes={minutes:.1f} rss_slope_mb_per_h={rss:.1f} "
        f"tasks_slope={tasks:.1f} errors={len(soak.errors)}"
    )
    return 0 if not soak.errors else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lessons", type=int, default=20)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--churn-seconds", type=float, default=10.0)
    parser.add_argument("--sample-seconds", type=float, default=15.0)
    parser.add_argument("--warmup-minutes", type=float, default=1.0)
    try:
        sys.exit(asyncio.run(run(parser.parse_args())))
    except asyncio.CancelledError:
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    main()
