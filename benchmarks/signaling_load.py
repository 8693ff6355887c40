"""Signaling load: N WebSocket participants join rooms of 10 and raise/lower hands.

Starts the real server (``sanke serve --dev``, media off) as a subprocess on loopback,
creates the rooms over the HTTP API with a coordinator token, then runs the clients in
a few worker processes (whole rooms per worker, so fan-out latency is measured on one
clock in one process). Side by side, the floor: a bare aiohttp WebSocket echo server,
"joined" by connecting and doing one round trip.

Measured: joins/s, join latency (join sent → joined received), connect latency,
hand-raise fan-out latency (raise/lower sent → every member of the room received
``hand_raised``), server CPU during the join phase, server RSS before and after.

    .venv/bin/python benchmarks/signaling_load.py              # 2,000 clients
    .venv/bin/python benchmarks/signaling_load.py --clients 200 --workers 1

The last line is ``RESULT signaling_load clients=N joins_per_s=X p99_ms=Y rss_mb=Z``
(p99 of the Sanke join latency, RSS of the Sanke server with everyone joined).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import resource
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from aiohttp import web

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from contracts.rooms import Role  # noqa: E402
from signaling.tokens import TokenService  # noqa: E402

PHASE_TIMEOUT = 180.0  # no phase may take longer than this (the run always ends)
SERVER_START_TIMEOUT = 30.0


# --- helpers -------------------------------------------------------------------------


def raise_nofile(needed: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < needed:
        raise SystemExit(f"need {needed} open files, the hard limit allows {soft}")
    return soft


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN when there is nothing."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def sanke_binary() -> str:
    beside = Path(sys.executable).with_name("sanke")
    if beside.exists():
        return str(beside)
    return str(ROOT / ".venv" / "bin" / "sanke")


# --- the baseline server: bare aiohttp WebSocket echo ---------------------------------


def serve_echo(port: int) -> None:
    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for msg in ws:
            if msg.type is aiohttp.WSMsgType.TEXT:
                await ws.send_str(msg.data)
        return ws

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/healthz", healthz)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


# --- server processes -------------------------------------------------------------------


class ServerProcess:
    """A server subprocess: started, waited for, measured, always stopped."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], port: int) -> None:
        self.name = name
        self.port = port
        self.log = tempfile.NamedTemporaryFile(prefix=f"{name}-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            argv, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.ps = psutil.Process(self.proc.pid)
        self.peak_rss = 0
        self._sampling = False
        self._sampler: threading.Thread | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"GET /healthz HTTP/1.0\r\nHost: x\r\n\r\n")
                    status_line = s.recv(64).split(b"\r\n", 1)[0]
                    if status_line.startswith(b"HTTP/1.") and b" 200" in status_line:
                        return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become healthy:\n{self.tail()}")

    def rss(self) -> int:
        total = self.ps.memory_info().rss
        for child in self.ps.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                total += child.memory_info().rss
        return total

    def cpu_seconds(self) -> float:
        times = self.ps.cpu_times()
        return float(times.user + times.system)

    def start_sampling(self) -> None:
        self._sampling = True

        def sample() -> None:
            while self._sampling:
                with contextlib.suppress(psutil.Error):
                    self.peak_rss = max(self.peak_rss, self.rss())
                time.sleep(0.1)

        self._sampler = threading.Thread(target=sample, daemon=True)
        self._sampler.start()

    def tail(self, lines: int = 30) -> str:
        self.log.flush()
        text = Path(self.log.name).read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def stop(self) -> None:
        self._sampling = False
        if self._sampler is not None:
            self._sampler.join(timeout=2)
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=5)
        self.log.close()
        with contextlib.suppress(OSError):
            os.unlink(self.log.name)


# --- client workers --------------------------------------------------------------------


@dataclass
class Member:
    token: str
    role: str


@dataclass
class WorkerSpec:
    index: int
    mode: str  # "sanke" or "echo"
    ws_url: str
    rooms: list[list[Member]]
    concurrency: int
    hand_spread: float
    seed: int


@dataclass
class WorkerResult:
    index: int
    clients: int = 0
    joined: int = 0
    failed: int = 0
    connect_s: list[float] = field(default_factory=list)
    join_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    first_start: float = float("inf")
    last_joined: float = 0.0
    fanout_s: list[float] = field(default_factory=list)
    deliveries_expected: int = 0
    hand_errors: int = 0
    hands_sent: int = 0
    hand_first: float = float("inf")
    hand_last: float = 0.0
    cpu_join_s: float = 0.0
    errors: list[str] = field(default_factory=list)


class BenchClient:
    def __init__(self, member: Member, room_index: int) -> None:
        self.member = member
        self.room_index = room_index
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.participant_id = ""
        self.first_reply: asyncio.Future[dict[str, Any]] | None = None
        self.hands_seen = 0
        self.hands_expected = 0
        self.all_hands: asyncio.Event = asyncio.Event()
        self.own_hand: dict[bool, asyncio.Event] = {True: asyncio.Event(), False: asyncio.Event()}
        self.reader: asyncio.Task[None] | None = None


class Worker:
    def __init__(self, spec: WorkerSpec, barrier: Barrier) -> None:
        self.spec = spec
        self.barrier = barrier
        self.result = WorkerResult(index=spec.index)
        # (participant_id, raised) → when it was sent; receivers look it up on their clock
        self.sent_at: dict[tuple[str, bool], float] = {}
        self.clients: list[BenchClient] = []

    async def sync(self) -> None:
        await asyncio.to_thread(self.barrier.wait, PHASE_TIMEOUT)

    async def run(self) -> WorkerResult:
        connector = aiohttp.TCPConnector(limit=0, force_close=False)
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            for r, members in enumerate(self.spec.rooms):
                self.clients.extend(BenchClient(m, r) for m in members)
            self.result.clients = len(self.clients)
            await self.sync()  # 1: everyone ready, joins start
            cpu0 = time.process_time()
            sem = asyncio.Semaphore(self.spec.concurrency)
            await asyncio.wait_for(
                asyncio.gather(*(self.join(session, c, sem) for c in self.clients)), PHASE_TIMEOUT
            )
            self.result.cpu_join_s = time.process_time() - cpu0
            await self.sync()  # 2: everyone joined (parent samples RSS), hands start
            if self.spec.mode == "sanke":
                await self.hands()
            await self.sync()  # 3: hands done (parent samples RSS), close
            await asyncio.gather(*(self.close(c) for c in self.clients))
        return self.result

    async def join(
        self, session: aiohttp.ClientSession, client: BenchClient, sem: asyncio.Semaphore
    ) -> None:
        async with sem:
            loop = asyncio.get_running_loop()
            t0 = time.monotonic()
            self.result.first_start = min(self.result.first_start, t0)
            try:
                client.ws = await session.ws_connect(
                    self.spec.ws_url, autoping=True, heartbeat=None, max_msg_size=1 << 20
                )
                t1 = time.monotonic()
                client.first_reply = loop.create_future()
                client.reader = asyncio.create_task(self.read(client))
                await client.ws.send_str(json.dumps({"type": "join", "token": client.member.token}))
                reply = await asyncio.wait_for(client.first_reply, 30)
                t2 = time.monotonic()
            except Exception as exc:
                self.result.failed += 1
                if len(self.result.errors) < 5:
                    self.result.errors.append(f"join: {exc!r}")
                return
            if self.spec.mode == "sanke":
                if reply.get("type") != "joined":
                    self.result.failed += 1
                    if len(self.result.errors) < 5:
                        self.result.errors.append(f"join refused: {reply}")
                    return
                client.participant_id = str(reply["participant_id"])
            self.result.joined += 1
            self.result.connect_s.append(t1 - t0)
            self.result.join_s.append(t2 - t1)
            self.result.total_s.append(t2 - t0)
            self.result.last_joined = max(self.result.last_joined, t2)

    async def read(self, client: BenchClient) -> None:
        assert client.ws is not None
        async for msg in client.ws:
            if msg.type is not aiohttp.WSMsgType.TEXT:
                continue
            now = time.monotonic()
            data = json.loads(msg.data)
            assert client.first_reply is not None
            if not client.first_reply.done():
                client.first_reply.set_result(data)
                continue
            kind = data.get("type")
            if kind == "hand_raised":
                key = (data["participant_id"], bool(data["raised"]))
                sent = self.sent_at.get(key)
                if sent is not None:
                    self.result.fanout_s.append(now - sent)
                if data["participant_id"] == client.participant_id:
                    client.own_hand[key[1]].set()
                client.hands_seen += 1
                if client.hands_seen >= client.hands_expected > 0:
                    client.all_hands.set()
            elif kind == "error":
                self.result.hand_errors += 1
                if len(self.result.errors) < 5:
                    self.result.errors.append(f"error: {data}")

    async def hands(self) -> None:
        rng = random.Random(self.spec.seed)
        by_room: dict[int, list[BenchClient]] = {}
        for c in self.clients:
            if c.participant_id:
                by_room.setdefault(c.room_index, []).append(c)
        for members in by_room.values():
            raisers = sum(1 for c in members if c.member.role == "classroom")
            for c in members:
                c.hands_expected = 2 * raisers
                if c.hands_expected and c.hands_seen >= c.hands_expected:
                    c.all_hands.set()
            self.result.deliveries_expected += 2 * raisers * len(members)

        async def raise_and_lower(c: BenchClient) -> None:
            await asyncio.sleep(rng.uniform(0, self.spec.hand_spread))
            assert c.ws is not None
            for raised in (True, False):
                now = time.monotonic()
                self.result.hand_first = min(self.result.hand_first, now)
                self.sent_at[(c.participant_id, raised)] = now
                kind = "raise_hand" if raised else "lower_hand"
                await c.ws.send_str(json.dumps({"type": kind}))
                self.result.hands_sent += 1
                await asyncio.wait_for(c.own_hand[raised].wait(), 30)

        raisers = [c for c in self.clients if c.participant_id and c.member.role == "classroom"]
        waiting = [c for c in self.clients if c.participant_id and c.hands_expected]
        try:
            await asyncio.wait_for(
                asyncio.gather(*(raise_and_lower(c) for c in raisers)),
                PHASE_TIMEOUT,
            )
            await asyncio.wait_for(
                asyncio.gather(*(c.all_hands.wait() for c in waiting)), PHASE_TIMEOUT / 2
            )
        except TimeoutError as exc:
            self.result.errors.append(f"hand phase timed out: {exc!r}")
        self.result.hand_last = time.monotonic()

    async def close(self, client: BenchClient) -> None:
        if client.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.ws.close(), 5)
        if client.reader is not None:
            client.reader.cancel()
            with contextlib.suppress(BaseException):
                await client.reader


def worker_main(spec: WorkerSpec, barrier: Barrier, results: Any) -> None:
    raise_nofile(sum(len(r) for r in spec.rooms) + 256)
    try:
        result = asyncio.run(Worker(spec, barrier).run())
    except BaseException as exc:
        barrier.abort()
        result = WorkerResult(index=spec.index, errors=[f"worker crashed: {exc!r}"])
    results.put(result)


# --- one target -------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    clients: int
    results: list[WorkerResult]
    rss_before: int
    rss_joined: int
    rss_after_hands: int
    rss_peak: int
    server_cpu_join_s: float
    join_wall_s: float

    def all(self, attr: str) -> list[float]:
        return [v for r in self.results for v in getattr(r, attr)]

    def total(self, attr: str) -> int:
        return sum(int(getattr(r, attr)) for r in self.results)

    @property
    def joins_per_s(self) -> float:
        return self.total("joined") / self.join_wall_s if self.join_wall_s > 0 else 0.0


def drive(
    server: ServerProcess,
    name: str,
    mode: str,
    rooms: list[list[Member]],
    workers: int,
    concurrency: int,
    hand_spread: float,
) -> Run:
    ctx = mp.get_context("spawn")
    workers = max(1, min(workers, len(rooms)))
    barrier = ctx.Barrier(workers + 1)
    results = ctx.Queue()
    shares: list[list[list[Member]]] = [rooms[i::workers] for i in range(workers)]
    per_worker = max(1, concurrency // workers)
    procs = [
        ctx.Process(
            target=worker_main,
            args=(
                WorkerSpec(
                    index=i,
                    mode=mode,
                    ws_url=f"ws://127.0.0.1:{server.port}/ws",
                    rooms=share,
                    concurrency=per_worker,
                    hand_spread=hand_spread,
                    seed=1000 + i,
                ),
                barrier,
                results,
            ),
            daemon=True,
        )
        for i, share in enumerate(shares)
    ]
    rss_before = server.rss()
    server.peak_rss = rss_before
    server.start_sampling()
    for p in procs:
        p.start()
    collected: list[WorkerResult] = []
    rss_joined = rss_after = 0
    cpu_join = 0.0
    try:
        barrier.wait(PHASE_TIMEOUT)  # 1
        cpu0 = server.cpu_seconds()
        barrier.wait(PHASE_TIMEOUT)  # 2
        cpu_join = server.cpu_seconds() - cpu0
        rss_joined = server.rss()
        barrier.wait(PHASE_TIMEOUT)  # 3
        rss_after = server.rss()
    except threading.BrokenBarrierError:
        print(f"[{name}] a worker failed or timed out; collecting what there is", file=sys.stderr)
    deadline = time.monotonic() + PHASE_TIMEOUT
    while len(collected) < len(procs) and time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            collected.append(results.get(timeout=1))
        if all(not p.is_alive() for p in procs) and results.empty():
            break
    for p in procs:
        p.join(timeout=10)
        if p.is_alive():
            p.terminate()
            p.join(timeout=5)
    server._sampling = False
    starts = [r.first_start for r in collected if r.joined]
    ends = [r.last_joined for r in collected if r.joined]
    wall = (max(ends) - min(starts)) if starts and ends else 0.0
    return Run(
        name=name,
        clients=sum(len(r) for r in rooms),
        results=collected,
        rss_before=rss_before,
        rss_joined=rss_joined,
        rss_after_hands=rss_after,
        rss_peak=server.peak_rss,
        server_cpu_join_s=cpu_join,
        join_wall_s=wall,
    )


async def create_rooms(base: str, coordinator: str, room_ids: list[str], size: int) -> None:
    headers = {"Authorization": f"Bearer {coordinator}"}
    async with aiohttp.ClientSession(base_url=base, headers=headers) as session:
        sem = asyncio.Semaphore(32)

        async def one(room_id: str) -> None:
            async with sem:
                body = {"id": room_id, "name": f"bench {room_id}", "max_participants": size}
                async with session.post("/api/v1/rooms", json=body) as r:
                    if r.status != 201:
                        raise RuntimeError(f"creating {room_id}: {r.status} {await r.text()}")

        await asyncio.wait_for(asyncio.gather(*(one(r) for r in room_ids)), PHASE_TIMEOUT)


# --- main --------------------------------------------------------------------------------


def run_baseline(args: argparse.Namespace, n: int) -> Run:
    port = free_port()
    server = ServerProcess(
        "echo",
        [sys.executable, str(Path(__file__).resolve()), "--serve-echo", "--port", str(port)],
        dict(os.environ),
        port,
    )
    try:
        server.wait_healthy()
        rooms = [
            [Member(token="x" * 300, role="echo") for _ in range(args.room_size)]
            for _ in range(max(1, n // args.room_size))
        ]
        return drive(server, "aiohttp echo", "echo", rooms, args.workers, args.concurrency, 0)
    finally:
        server.stop()


def run_sanke(args: argparse.Namespace) -> Run:
    port = free_port()
    secret = secrets.token_urlsafe(30)[:40]
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "SANKE_REDIS_URL"}} | {
        "SANKE_MEDIA": "false",
        "SANKE_TOKEN_SECRET": secret,
        "SANKE_RECORDS_KEY": secret,
        "SANKE_WS_RATE_PER_SECOND": "10000",
        "SANKE_WS_RATE_BURST": "10000",
        "SANKE_ROOM_MAX_PARTICIPANTS": str(args.room_size),
        "SANKE_JOIN_TIMEOUT_SECONDS": "60",
        "SANKE_LOG_LEVEL": "WARNING",
    }
    prefix = f"sanke-bench-{uuid.uuid4().hex[:8]}:"
    if args.redis_url:
        env |= {"SANKE_REDIS_URL": args.redis_url, "SANKE_KEY_PREFIX": prefix}
    server = ServerProcess(
        "sanke",
        [sanke_binary(), "serve", "--dev", "--host", "127.0.0.1", "--port", str(port)],
        env,
        port,
    )
    try:
        server.wait_healthy()
        tokens = TokenService(secret)
        n_rooms = max(1, args.clients // args.room_size)
        room_ids = [f"bench-{i:05d}" for i in range(n_rooms)]
        coordinator = tokens.mint(subject="bench-coordinator", role=Role.coordinator)
        asyncio.run(create_rooms(server.base, coordinator, room_ids, args.room_size))
        rooms: list[list[Member]] = []
        for room_id in room_ids:
            members = []
            for seat in range(args.room_size):
                role = Role.teacher if seat == 0 else Role.classroom
                members.append(
                    Member(
                        token=tokens.mint(
                            subject=f"{room_id}-{seat}", role=role, room=room_id, ttl=3600
                        ),
                        role=role.value,
                    )
                )
            rooms.append(members)
        run = drive(
            server, "sanke", "sanke", rooms, args.workers, args.concurrency, args.hand_spread
        )
        if any(r.errors for r in run.results):
            print(f"sanke server log (tail):\n{server.tail()}", file=sys.stderr)
        return run
    finally:
        server.stop()
        if args.redis_url:
            import redis

            client = redis.Redis.from_url(args.redis_url)
            keys = list(client.scan_iter(match=prefix + "*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def ms(seconds: float) -> str:
    return "-" if seconds != seconds else f"{seconds * 1000:.1f}"


def mb(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


def report(runs: list[Run], args: argparse.Namespace) -> None:
    header = (
        "target",
        "clients",
        "joined",
        "joins/s",
        "connect p50/p99 ms",
        "join p50/p99 ms",
        "conn+join p99 ms",
        "fan-out p50/p99 ms",
        "deliveries",
        "srv CPU %",
        "cli CPU %",
        "RSS before/joined/peak MB",
        "KB/client",
    )
    rows = []
    for run in runs:
        fan = run.all("fanout_s")
        expected = run.total("deliveries_expected")
        client_cpu = sum(r.cpu_join_s for r in run.results)
        wall = run.join_wall_s or float("nan")
        rows.append(
            (
                run.name,
                str(run.clients),
                str(run.total("joined")),
                f"{run.joins_per_s:.0f}",
                f"{ms(pct(run.all('connect_s'), 50))}/{ms(pct(run.all('connect_s'), 99))}",
                f"{ms(pct(run.all('join_s'), 50))}/{ms(pct(run.all('join_s'), 99))}",
                ms(pct(run.all("total_s"), 99)),
                f"{ms(pct(fan, 50))}/{ms(pct(fan, 99))}" if expected else "n/a",
                f"{len(fan)}/{expected}" if expected else "n/a",
                f"{100 * run.server_cpu_join_s / wall:.0f}",
                f"{100 * client_cpu / wall:.0f}",
                f"{mb(run.rss_before)}/{mb(run.rss_joined)}/{mb(run.rss_peak)}",
                f"{(run.rss_joined - run.rss_before) / 1024 / max(1, run.total('joined')):.1f}",
            )
        )
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
    print()
    print(
        f"signaling load: rooms of {args.room_size} (1 teacher + {args.room_size - 1} classrooms), "
        f"{args.workers} client process(es), {args.concurrency} joins in flight, "
        f"hands spread over {args.hand_spread:g} s, {os.cpu_count()} CPUs, loopback, "
        f"load average before {args.load_before:.2f}"
    )
    print(line)
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
    print(
        "join = join sent → joined received (echo: one round trip); fan-out = hand raise/lower "
        "sent → each room member's hand_raised; CPU % is of one core during the join phase"
    )
    for run in runs:
        for r in run.results:
            for err in r.errors:
                print(f"  [{run.name} worker {r.index}] {err}")
        if run.total("failed"):
            print(f"  [{run.name}] {run.total('failed')} joins failed")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=2000, help="Sanke participants")
    parser.add_argument("--room-size", type=int, default=10)
    parser.add_argument(
        "--baseline-clients", type=int, default=None, help="echo clients (default clients/4)"
    )
    cpus = os.cpu_count() or 2
    parser.add_argument(
        "--workers",
        type=int,
        default=max(1, min(4, cpus - 1)),
        help="client processes (default: one core is left to the server)",
    )
    parser.add_argument("--concurrency", type=int, default=50, help="joins in flight (total)")
    parser.add_argument(
        "--hand-spread", type=float, default=3.0, help="seconds to spread hands over"
    )
    parser.add_argument("--redis-url", default=None, help="run the server in distributed mode")
    parser.add_argument("--serve-echo", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_echo:
        serve_echo(args.port)
        return 0
    if args.room_size < 2 or args.clients < args.room_size:
        parser.error("need at least one room of at least 2")
    raise_nofile(2 * args.clients + 512)
    # Other work on the machine skews every number: shown next to the table.
    args.load_before = os.getloadavg()[0]
    baseline_n = args.baseline_clients or max(args.room_size, args.clients // 4)
    runs = [run_baseline(args, baseline_n), run_sanke(args)]
    report(runs, args)
    sanke = runs[1]
    print(
        f"RESULT signaling_load clients={sanke.total('joined')} "
        f"joins_per_s={sanke.joins_per_s:.1f} p99_ms={pct(sanke.all('join_s'), 99) * 1000:.1f} "
        f"rss_mb={sanke.rss_joined / (1 << 20):.1f}"
    )
    return 0 if sanke.total("joined") == sanke.clients else 1


if __name__ == "__main__":
    sys.exit(main())
