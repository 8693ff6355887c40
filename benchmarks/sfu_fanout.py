"""SFU fan-out benchmark: Sanke's encoded forwarding vs aiortc's MediaRelay (decode + re-encode).

One publisher (720p ~1.5 Mbps H264 clip + Opus, pre-encoded: the publisher spends no CPU
encoding), N subscribers spread over subscriber processes (they count frames, never decode),
the server in its own process. For each N it measures the server process: CPU (cores), RSS,
packets forwarded per second, packets lost on the way (sequence gaps at the subscribers) and
frames the SFU dropped (consumers that fell behind), then runs MediaRelay the same way (up to
``--relay-max`` subscribers: it collapses beyond that). Prints a table and a RESULT line:

    RESULT sfu_fanout subscribers=N pkts_per_core=X relay_ratio=Y sfu_loss=Z rss_mb=W

(the largest N; relay_ratio = SFU subscribers per core / MediaRelay subscribers per core,
both counting only the frames actually delivered).

    .venv/bin/python benchmarks/sfu_fanout.py --subscribers 8,16,32,64 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import fractions
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import av  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import RTCPeerConnection, RTCRtpSender, RTCSessionDescription  # noqa: E402
from aiortc.contrib.media import MediaRelay  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402

from media import aiortc_seams as seams  # noqa: E402
from media.metrics import MediaObservability  # noqa: E402
from media.worker import Worker  # noqa: E402
from signaling.models import Participant, Role  # noqa: E402
from signaling.protocol import ServerOffer  # noqa: E402

FPS = 30


def make_clip(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "clip720.ts"
    if not path.exists():
        subprocess.run(
            ["ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
             "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate={FPS}", "-f", "lavfi",
             "-i", "sine=frequency=440:sample_rate=48000", "-t", "10",
             "-c:v", "libx264", "-profile:v", "baseline", "-bf", "0", "-g", "60",
             "-tune", "zerolatency", "-b:v", "1500k", "-maxrate", "1500k", "-bufsize", "1500k",
             "-c:a", "libopus", "-b:a", "48k", str(path)],
            check=True,
        )  # fmt: skip
    return path


class ClipTrack(MediaStreamTrack):
    """Real-time playback of a clip's encoded packets, looping."""

    def __init__(self, path: Path, kind: str) -> None:
        super().__init__()
        self.kind = kind
        with av.open(str(path)) as c:
            stream = c.streams.video[0] if kind == "video" else c.streams.audio[0]
            self.tb = stream.time_base
            pk = [(bytes(p), int(p.pts)) for p in c.demux(stream) if p.size and p.pts is not None]
        pk.sort(key=lambda x: x[1])
        first = pk[0][1]
        self.packets = [(d, pts - first) for d, pts in pk]
        self.duration = self.packets[-1][1] + (self.packets[1][1] - self.packets[0][1])
        self.i = self.loop = 0
        self.start: float | None = None

    async def recv(self) -> Any:
        if self.readyState != "live":
            raise MediaStreamError
        self.start = self.start or time.monotonic()
        data, pts = self.packets[self.i]
        pts += self.loop * self.duration
        delay = self.start + float(pts * self.tb) - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        self.i += 1
        if self.i == len(self.packets):
            self.i, self.loop = 0, self.loop + 1
        packet = av.Packet(data)
        packet.pts, packet.time_base = pts, fractions.Fraction(self.tb)
        return packet


def prefer_h264(transceiver: Any) -> None:
    caps = RTCRtpSender.getCapabilities("video").codecs
    transceiver.setCodecPreferences([c for c in caps if c.mimeType in ("video/H264", "video/rtx")])


# --- the server (SFU worker or MediaRelay) --------------------------------------------


async def serve(mode: str, port: int, profile: str | None) -> None:
    worker = Worker() if mode == "sfu" else None
    if worker is not None:
        # As deployed: the quality sampler reads every stream's stats every 2 s.
        await MediaObservability(worker).start()
    relay = MediaRelay()
    pub_tracks: dict[str, MediaStreamTrack] = {}
    pcs: list[RTCPeerConnection] = []
    proc = psutil.Process()

    async def ws_handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=1 << 22)
        await ws.prepare(request)
        pid = request.query["pid"]
        role = Role(request.query["role"])
        pc: RTCPeerConnection | None = None

        async def send(msg: Any) -> None:
            await ws.send_str(msg.model_dump_json())

        if worker is not None:
            await worker.join(
                Participant(id=pid, room_id="r", subject=pid, role=role, node_id="b"), send
            )
        async for m in ws:
            msg = json.loads(m.data)
            if worker is not None:
                if msg["type"] == "offer":
                    answer = await worker.offer("r", pid, msg["sdp"])
                    await ws.send_str(json.dumps({"type": "answer", "sdp": answer}))
                elif msg["type"] == "answer":
                    await worker.answer("r", pid, msg["sdp"])
                continue
            # MediaRelay baseline: decode once, encode per subscriber
            pc = RTCPeerConnection()
            pcs.append(pc)
            if role == Role.teacher:
                pc.on("track", lambda t: pub_tracks.__setitem__(t.kind, t))
            await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
            if role != Role.teacher:
                for t in pc.getTransceivers():
                    pc_track = pub_tracks[t.kind]
                    t.sender.replaceTrack(relay.subscribe(pc_track, buffered=False))
                    t.direction = "sendonly"
            await pc.setLocalDescription(await pc.createAnswer())
            await ws.send_str(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))
        return ws

    async def stats(request: web.Request) -> web.Response:
        senders = []
        dropped = 0
        if worker is not None:
            for router in worker.routers.values():
                for t in router.transports.values():
                    for c in t.consumers.values():
                        dropped += c.frames_dropped
                        if c.transceiver is not None:
                            senders.append(c.transceiver.sender)
        else:
            senders = [s for pc in pcs for s in pc.getSenders() if s.track is not None]
        sent = 0
        for s in senders:
            for r in (await s.getStats()).values():
                if r.type == "outbound-rtp":
                    sent += r.packetsSent
        cpu = proc.cpu_times()
        return web.json_response(
            {
                "cpu": cpu.user + cpu.system,
                "rss": proc.memory_info().rss,
                "sent": sent,
                "dropped": dropped,
            }
        )

    app = web.Application()
    app.router.add_get("/ws", ws_handler)
    app.router.add_get("/stats", stats)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    prof = cProfile.Profile() if profile else None
    if prof:
        prof.enable()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        if prof and profile:
            prof.disable()
            prof.dump_stats(profile)


# --- clients ----------------------------------------------------------------------------


async def client(url: str, pid: str, role: str, pc: RTCPeerConnection, on_remote: Any) -> Any:
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(f"{url}/ws?pid={pid}&role={role}", max_msg_size=1 << 22)
    answered = asyncio.Event()

    async def loop() -> None:
        async for m in ws:
            msg = json.loads(m.data)
            if msg["type"] == "answer":
                await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                on_remote()
                answered.set()
            elif msg["type"] == ServerOffer.model_fields["type"].default:
                await answered.wait()
                await pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "offer"))
                on_remote()
                await pc.setLocalDescription(await pc.createAnswer())
                await ws.send_str(json.dumps({"type": "answer", "sdp": pc.localDescription.sdp}))

    task = asyncio.get_running_loop().create_task(loop())
    await pc.setLocalDescription(await pc.createOffer())
    await ws.send_str(json.dumps({"type": "offer", "sdp": pc.localDescription.sdp}))
    return session, ws, task


async def publish(url: str, clip: Path) -> None:
    pc = RTCPeerConnection()
    pc.addTransceiver(ClipTrack(clip, "audio"), direction="sendonly")
    prefer_h264(pc.addTransceiver(ClipTrack(clip, "video"), direction="sendonly"))
    await client(url, "teacher", "teacher", pc, lambda: None)
    await asyncio.Event().wait()


async def subscribe(
    url: str, first: int, count: int, mode: str, seconds: float, warmup: float
) -> None:
    frames = {"video": 0, "audio": 0}
    counting = False
    peers = []

    def tapper(pc: RTCPeerConnection) -> Any:
        def tap() -> None:
            for t in pc.getTransceivers():
                if not seams.is_tapped(t.receiver):

                    def sink(codec: str, data: bytes, ts: int, kind: str = t.kind) -> None:
                        if counting:
                            frames[kind] += 1

                    seams.tap_receiver(t.receiver, sink, low_latency=False)

        return tap

    for i in range(first, first + count):
        pc = RTCPeerConnection()
        if mode == "relay":
            pc.addTransceiver("audio", direction="recvonly")
            prefer_h264(pc.addTransceiver("video", direction="recvonly"))
        peers.append(pc)
        await client(url, f"sub-{i}", "classroom", pc, tapper(pc))
    await asyncio.sleep(warmup)
    counting = True
    await asyncio.sleep(seconds)
    counting = False
    received = lost = 0
    for pc in peers:
        for r in pc.getReceivers():
            for s in (await r.getStats()).values():
                if s.type == "inbound-rtp":
                    received += s.packetsReceived
                    lost += max(0, s.packetsLost)
    print(json.dumps({"frames": frames, "received": received, "lost": lost}), flush=True)
    os._exit(0)


# --- the driver --------------------------------------------------------------------------


def spawn(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, *args], stdout=subprocess.PIPE, text=True, cwd=str(ROOT)
    )


async def stats(url: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as s, s.get(f"{url}/stats") as r:
        data: dict[str, Any] = await r.json()
        return data


async def run_one(
    mode: str, n: int, clip: Path, seconds: float, port: int, profile: str | None
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    procs = [
        spawn(
            "--role",
            "server",
            "--mode",
            mode,
            "--port",
            str(port),
            *(["--profile", profile] if profile else []),
        )
    ]
    await asyncio.sleep(1.5)
    procs.append(spawn("--role", "publisher", "--port", str(port), "--clip", str(clip)))
    await asyncio.sleep(1.5)
    groups = min(n, max(1, (os.cpu_count() or 2)))
    warmup = 4.0 + n * 0.05
    subs = []
    for g in range(groups):
        first, count = g * n // groups, (g + 1) * n // groups - g * n // groups
        subs.append(spawn("--role", "subscriber", "--mode", mode, "--port", str(port), "--first",
                          str(first), "--count", str(count), "--seconds", str(seconds),
                          "--warmup", str(warmup)))  # fmt: skip
    await asyncio.sleep(warmup)
    a = await stats(url)
    t0 = time.monotonic()
    await asyncio.sleep(seconds)
    b = await stats(url)
    elapsed = time.monotonic() - t0
    results = [
        json.loads(p.communicate(timeout=60 + seconds)[0].strip().splitlines()[-1]) for p in subs
    ]
    for p in procs:
        p.terminate()
        with contextlib.suppress(Exception):
            p.wait(timeout=10)
    cores = (b["cpu"] - a["cpu"]) / elapsed
    pps = (b["sent"] - a["sent"]) / elapsed
    video = sum(r["frames"]["video"] for r in results)
    received, lost = sum(r["received"] for r in results), sum(r["lost"] for r in results)
    delivered = video / (n * FPS * seconds)
    return {
        "mode": mode, "n": n, "cores": cores, "rss_mb": b["rss"] / 2**20, "pps": pps,
        "pkts_per_core": pps / cores if cores else 0.0, "delivered": delivered,
        "loss": lost / max(1, received + lost), "dropped": b["dropped"] - a["dropped"],
        "subs_per_core": n * min(1.0, delivered) / cores if cores else 0.0,
    }  # fmt: skip


async def drive(args: argparse.Namespace) -> None:
    clip = make_clip(Path(args.clip_dir or tempfile.mkdtemp(prefix="sanke-bench-")))
    rows = []
    port = args.port
    for n in [int(x) for x in args.subscribers.split(",")]:
        rows.append(
            await run_one(
                "sfu", n, clip, args.seconds, port, args.profile if n == max_n(args) else None
            )
        )
        port += 1
        if n <= args.relay_max:
            rows.append(await run_one("relay", n, clip, args.seconds, port, None))
            port += 1
    print(f"{'mode':6} {'subs':>5} {'cores':>6} {'rss MB':>7} {'pkts/s':>8} {'pkts/core':>10} "
          f"{'delivered':>9} {'loss':>7} {'dropped':>7} {'subs/core':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['mode']:6} {r['n']:>5} {r['cores']:>6.2f} {r['rss_mb']:>7.0f} {r['pps']:>8.0f} "
              f"{r['pkts_per_core']:>10.0f} {r['delivered']:>9.1%} {r['loss']:>7.2%} "
              f"{r['dropped']:>7} {r['subs_per_core']:>9.1f}")  # fmt: skip
    top = max((r for r in rows if r["mode"] == "sfu"), key=lambda r: r["n"])
    relays = [r for r in rows if r["mode"] == "relay"]
    relay_best = max((r["subs_per_core"] for r in relays), default=0.0)
    ratio = top["subs_per_core"] / relay_best if relay_best else float("nan")
    if args.profile:
        print(f"\nprofile of the SFU process at {top['n']} subscribers (cumulative, top 25):")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
    print(
        f"RESULT sfu_fanout subscribers={top['n']} pkts_per_core={top['pkts_per_core']:.0f} "
        f"relay_ratio={ratio:.1f} sfu_loss={top['loss']:.4f} rss_mb={top['rss_mb']:.0f}"
    )


def max_n(args: argparse.Namespace) -> int:
    return max(int(x) for x in args.subscribers.split(","))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--role", default="driver", choices=["driver", "server", "publisher", "subscriber"]
    )
    p.add_argument("--mode", default="sfu", choices=["sfu", "relay"])
    p.add_argument("--subscribers", default="8,16,32,64")
    p.add_argument("--relay-max", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--port", type=int, default=18400)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--clip", default="")
    p.add_argument("--clip-dir", default="")
    p.add_argument(
        "--profile", default="", help="cProfile the SFU at the largest N (inflates its CPU ~2x)"
    )
    args = p.parse_args()
    url = f"http://127.0.0.1:{args.port}"
    if args.role == "server":
        asyncio.run(serve(args.mode, args.port, args.profile or None))
    elif args.role == "publisher":
        asyncio.run(publish(url, Path(args.clip)))
    elif args.role == "subscriber":
        asyncio.run(subscribe(url, args.first, args.count, args.mode, args.seconds, args.warmup))
    else:
        asyncio.run(drive(args))


if __name__ == "__main__":
    main()
