"""SFU fan-out benchmark: Sanke's encoded forwarding vs aiortc's MediaRelay (decode + re-encode).

One publisher (720p ~1.5 Mbps H264 clip + Opus, pre-encoded: the publisher spends no CPU
encoding), N subscribers spread over subscriber processes (they count frames, never decode),
the server in its own process. For each N it measures, over a ``--seconds`` window after the
subscribers joined, the server process: CPU (cores: its own user + system CPU seconds from
psutil, all its threads, no other process), RSS, packets forwarded per second and per
CPU-second; packets lost publisher -> SFU (sequence gaps at the SFU); packets the SFU received
but did not forward (each consumer's packets sent, or still queued for its sender, against the
packets its producer received, over the consumers that kept forwarding one layer all along);
packets lost SFU -> subscribers (sequence gaps at the subscribers); video frames delivered;
video consumers the SFU stepped down to audio only; frames the SFU dropped (consumers that
fell behind). Then it runs MediaRelay the same way (up to ``--relay-max`` subscribers: it
collapses beyond that).

Packets per CPU-second depend on the machine's speed that day, so the same invocation also
calibrates, in this interpreter and build, with nothing else of the benchmark running (before
the runs and again after them), the raw per-packet cost of what an ideal forwarder does at
least for every packet it forwards: an ``aiortc.rtp.RtpPacket`` with a video-sized payload
(``--calibrate-payload``) and the header extensions the SFU's video senders write (mid,
abs-send-time), serialized with aiortc's ``HeaderExtensionsMap``, SRTP-protected by a
``pylibsrtp`` session with a random key (``--srtp-profile``; outbound, aiortc's window and
repeat settings), sent with ``sendto`` on loopback to a receiver process that drains and
counts every datagram (flow-controlled to its socket buffer: none is lost).
``--calibrate-packets`` packets are timed with ``time.process_time()``,
``--calibrate-repeats`` times per phase; the best rate of all is ``raw_pps_per_core``.
``limit`` = the SFU's packets per CPU-second / that raw rate: the share of an ideal Python
forwarder's speed the SFU reaches (1.0 = forwarding costs the SFU nothing beyond serialize +
protect + sendto). It only compares days when the workload is the same: when the subscribers
cannot keep up (``delivered`` well below 100 %, a warning says so) the SFU forwards a lighter
mix (consumers stepped down to audio only) and its per-packet cost is not comparable.

Prints the calibration, a table and one RESULT line (for the largest N):

    RESULT sfu_fanout subscribers=N pkts_per_core=X relay_ratio=Y sfu_loss=Z rss_mb=W
    up_loss=U fwd_loss=F delivered=D raw_pps_per_core=R limit_ratio=L

relay_ratio = SFU subscribers per core / MediaRelay subscribers per core, both counting only
the frames actually delivered; sfu_loss = sequence gaps at the subscribers; up_loss = sequence
gaps publisher -> SFU; fwd_loss = share of the packets the SFU received that it did not
forward (a difference of two snapshots: about +-0.5 %); delivered = video frames the
subscribers counted / frames published.

    .venv/bin/python benchmarks/sfu_fanout.py --subscribers 8,16,32,64 --seconds 10
    .venv/bin/python benchmarks/sfu_fanout.py --subscribers 32
    .venv/bin/python benchmarks/sfu_fanout.py --calibrate-only
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import fractions
import json
import multiprocessing
import os
import pstats
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import av  # noqa: E402
import psutil  # noqa: E402
from aiohttp import web  # noqa: E402
from aiortc import (  # noqa: E402
    RTCPeerConnection,
    RTCRtpParameters,
    RTCRtpSender,
    RTCSessionDescription,
)
from aiortc import rtcdtlstransport as dtls  # noqa: E402
from aiortc.clock import current_ntp_time  # noqa: E402
from aiortc.codecs import HEADER_EXTENSIONS  # noqa: E402
from aiortc.contrib.media import MediaRelay  # noqa: E402
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack  # noqa: E402
from aiortc.rtp import HeaderExtensionsMap, RtpPacket  # noqa: E402
from pylibsrtp import Policy, Session  # noqa: E402

from contracts.media import MediaEvent  # noqa: E402
from contracts.protocol import ServerOffer  # noqa: E402
from contracts.rooms import Participant, Role  # noqa: E402
from media import aiortc_seams as seams  # noqa: E402
from media.metrics import MediaObservability  # noqa: E402
from media.origin import rtp_receiver  # noqa: E402
from media.worker import Worker  # noqa: E402
from signaling.media_messages import protocol_message  # noqa: E402

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


# --- calibration: the raw send path, per packet ------------------------------------------

SRTP_PROFILES = {
    "AES128_CM_SHA1_80": dtls.SRTP_AES128_CM_SHA1_80,
    "AEAD_AES_128_GCM": dtls.SRTP_AEAD_AES_128_GCM,
    "AEAD_AES_256_GCM": dtls.SRTP_AEAD_AES_256_GCM,
}
ACK_EVERY = 64  # the receiver reports its count every this many datagrams
PACKETS_PER_FRAME = 6  # ~1.5 Mbps at 30 fps in ~1,150-byte payloads: the marker bit and timestamp


def _sink(rx: socket.socket, ack_to: tuple[str, int]) -> None:
    """The calibration's receiving end (its own process): drain and count every datagram."""
    rx.settimeout(60.0)
    buf = bytearray(65536)
    count = 0
    with contextlib.suppress(OSError):
        while True:
            if rx.recv_into(buf) <= 1:  # the sender is done: the final count
                rx.sendto(b"F" + count.to_bytes(8, "big"), ack_to)
                return
            count += 1
            if count % ACK_EVERY == 0:
                rx.sendto(count.to_bytes(8, "big"), ack_to)


class RawSender:
    """What an ideal forwarder does at least per forwarded packet, with aiortc's primitives.

    Builds an ``RtpPacket`` as aiortc's ``RTCRtpSender._run_rtp`` does (payload type, sequence
    number, timestamp, SSRC, marker, abs-send-time and mid extensions), serializes it with a
    ``HeaderExtensionsMap`` configured with aiortc's video extensions, protects it with a
    ``pylibsrtp`` outbound session set up as ``RTCDtlsTransport`` sets up its own, and sends
    it on a UDP socket on loopback to a receiver process. The sender never has more datagrams
    in flight than the receiver's socket buffer holds, so none is dropped.
    """

    def __init__(self, profile: str, payload_size: int) -> None:
        srtp = SRTP_PROFILES[profile]
        policy = Policy(
            key=os.urandom(srtp.key_length + srtp.salt_length),
            ssrc_type=Policy.SSRC_ANY_OUTBOUND,
            srtp_profile=srtp.libsrtp_profile,
        )
        policy.allow_repeat_tx = True
        policy.window_size = 1024
        self.srtp = Session(policy)
        self.extensions = HeaderExtensionsMap()
        self.extensions.configure(RTCRtpParameters(headerExtensions=HEADER_EXTENSIONS["video"]))
        self.payload = os.urandom(payload_size)
        self.ssrc = int.from_bytes(os.urandom(4), "big")
        self.seq = self.timestamp = self.sent = self.acked = 0
        self.received: int | None = None
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # capped by rmem_max
        rx.bind(("127.0.0.1", 0))
        self.dest = rx.getsockname()
        # A ~1.2 kB datagram takes ~2.3 kB of socket buffer (skb overhead): keep well inside.
        self.window = max(ACK_EVERY * 2, rx.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 4096)
        self.tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.tx.bind(("127.0.0.1", 0))
        # fork: no threads run here (the driver calibrates outside its event loop)
        self.sink = multiprocessing.get_context("fork").Process(
            target=_sink, args=(rx, self.tx.getsockname()), daemon=True
        )
        self.sink.start()
        rx.close()

    def send(self, count: int) -> float:
        """Send ``count`` packets; return the CPU seconds this process spent on them."""
        extensions, payload, srtp, tx, dest = (
            self.extensions, self.payload, self.srtp, self.tx, self.dest
        )  # fmt: skip
        start = time.process_time()
        for _ in range(count):
            packet = RtpPacket(payload_type=102, sequence_number=self.seq, timestamp=self.timestamp)
            packet.ssrc = self.ssrc
            packet.payload = payload
            self.seq = (self.seq + 1) & 0xFFFF
            packet.marker = 1 if self.seq % PACKETS_PER_FRAME == 0 else 0
            if packet.marker:
                self.timestamp = (self.timestamp + 3000) & 0xFFFFFFFF
            packet.extensions.abs_send_time = (current_ntp_time() >> 14) & 0x00FFFFFF
            packet.extensions.mid = "1"
            tx.sendto(srtp.protect(packet.serialize(extensions)), dest)
            self.sent += 1
            if self.sent - self.acked >= self.window:
                self._wait_acks()
            elif self.sent % ACK_EVERY == 0:
                self._read_acks()
        return time.process_time() - start

    def _read_acks(self) -> None:
        while True:
            try:
                ack = self.tx.recv(16, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            if ack[:1] == b"F":
                self.received = int.from_bytes(ack[1:], "big")
            else:
                self.acked = max(self.acked, int.from_bytes(ack, "big"))

    def _wait_acks(self) -> None:
        while self.sent - self.acked >= self.window:
            if not select.select([self.tx], [], [], 10.0)[0]:
                raise RuntimeError("calibration receiver stopped answering")
            self._read_acks()

    def close(self) -> int:
        """Stop the receiver; return how many datagrams it received."""
        self.tx.sendto(b"\0", self.dest)
        deadline = time.monotonic() + 10.0
        while self.received is None and time.monotonic() < deadline:
            if select.select([self.tx], [], [], 1.0)[0]:
                self._read_acks()
        self.sink.join(timeout=5.0)
        if self.sink.is_alive():
            self.sink.kill()
        self.tx.close()
        return self.received if self.received is not None else self.acked


@dataclass
class Calibration:
    rates: list[float]  # raw packets per CPU-second, one per repeat
    sent: int
    received: int

    @property
    def best(self) -> float:
        return max(self.rates)

    def describe(self) -> str:
        lost = self.sent - self.received
        return (
            f"{len(self.rates)} x {self.sent // len(self.rates)} packets: "
            f"{min(self.rates):,.0f} / {statistics.median(self.rates):,.0f} / "
            f"{self.best:,.0f} pkts per CPU-s (min / median / best), "
            f"{self.received} of {self.sent} received, {lost} lost"
        )


def calibrate(packets: int, repeats: int, profile: str, payload_size: int) -> Calibration:
    raw = RawSender(profile, payload_size)
    try:
        raw.send(min(packets, 5000))  # warm up: caches, the allocator, libsrtp's key schedule
        start = raw.sent
        rates = [packets / raw.send(packets) for _ in range(repeats)]
        sent = raw.sent - start
    finally:
        received = raw.close()
    return Calibration(rates, sent, received - (raw.sent - sent))


# --- the server (SFU worker or MediaRelay) --------------------------------------------


def media_streams(receiver: Any) -> list[Any]:
    """A receiver's per-SSRC stream statistics, without RTX: (packets_received, packets_lost).

    aiortc's own, read directly: ``getStats()`` gives every SSRC's inbound-rtp the same id,
    so with an RTX stream its report keeps only one of them.
    """
    streams: dict[int, Any] = receiver._RTCRtpReceiver__remote_streams
    return [streams[ssrc] for ssrc in seams.media_ssrcs(receiver)]


def packets_received(receiver: Any) -> int:
    """Media packets a receiver got: what a consumer of it should forward."""
    return sum(s.packets_received for s in media_streams(receiver))


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

        async def send(event: MediaEvent) -> None:
            await ws.send_str(protocol_message(event).model_dump_json())

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
        senders: list[tuple[Any, RTCRtpSender]] = []  # (its consumer, or None for MediaRelay)
        dropped = 0
        if worker is not None:
            for router in worker.routers.values():
                for t in router.transports.values():
                    for c in t.consumers.values():
                        dropped += c.frames_dropped
                        if c.transceiver is not None:
                            senders.append((c, c.transceiver.sender))
        else:
            senders = [(None, s) for pc in pcs for s in pc.getSenders() if s.track is not None]
        # aiortc's getStats() never awaits anything: the whole snapshot is one loop step
        sent = 0
        consumers: dict[str, list[Any]] = {}
        producers = {id(p): p for c, _ in senders if c is not None for p in c.producers.values()}
        upstream = [0, 0]  # publisher -> SFU: media packets received, lost (sequence gaps)
        for p in producers.values():
            for stream in media_streams(rtp_receiver(p.origin)):
                upstream[0] += stream.packets_received
                upstream[1] += stream.packets_lost
        for c, s in senders:
            n = sum(
                r.packetsSent for r in (await s.getStats()).values() if r.type == "outbound-rtp"
            )
            sent += n
            if c is not None:
                p = c.producers.get(c.layer)
                received = packets_received(rtp_receiver(p.origin)) if p is not None else 0
                # frames queued for the sender are not lost (yet): count them as forwarded
                queued = sum(len(frame.payloads) for _, frame in c.queue)
                consumers[c.id] = [c.layer, c.layer_switches, c.started, received, n + queued]
        cpu = proc.cpu_times()
        return web.json_response(
            {
                "cpu": cpu.user + cpu.system,
                "rss": proc.memory_info().rss,
                "sent": sent,
                "dropped": dropped,
                "consumers": consumers,
                "upstream": upstream,
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

                    seams.tap_receiver(t.receiver, sink)

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


async def wait_listening(url: str, server: subprocess.Popen[str], timeout: float = 60.0) -> None:
    """Until the server answers (a loaded machine can take far longer than 1.5 s to start it)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            await stats(url)
            return
        except aiohttp.ClientError:
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the benchmark server did not start") from None
            await asyncio.sleep(0.2)


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
    subs: list[subprocess.Popen[str]] = []
    try:
        await wait_listening(url, procs[0])
        procs.append(spawn("--role", "publisher", "--port", str(port), "--clip", str(clip)))
        await asyncio.sleep(1.5)
        groups = min(n, max(1, (os.cpu_count() or 2)))
        warmup = 4.0 + n * 0.05
        for g in range(groups):
            first, count = g * n // groups, (g + 1) * n // groups - g * n // groups
            subs.append(spawn("--role", "subscriber", "--mode", mode, "--port", str(port),
                              "--first", str(first), "--count", str(count), "--seconds",
                              str(seconds), "--warmup", str(warmup)))  # fmt: skip
        await asyncio.sleep(warmup)
        a = await stats(url)
        t0 = time.monotonic()
        await asyncio.sleep(seconds)
        b = await stats(url)
        elapsed = time.monotonic() - t0
        results = [
            json.loads(p.communicate(timeout=60 + seconds)[0].strip().splitlines()[-1])
            for p in subs
        ]
    finally:  # also when a run fails: leave no server, publisher or subscriber behind
        for p in [*procs, *subs]:
            if p.poll() is None:
                p.terminate()
            with contextlib.suppress(Exception):
                p.wait(timeout=10)
    cores = (b["cpu"] - a["cpu"]) / elapsed
    pps = (b["sent"] - a["sent"]) / elapsed
    video = sum(r["frames"]["video"] for r in results)
    received, lost = sum(r["received"] for r in results), sum(r["lost"] for r in results)
    delivered = video / (n * FPS * seconds)
    fwd = forwarding(a, b)
    up_received, up_lost = (
        y - x for x, y in zip(a.get("upstream", [0, 0]), b.get("upstream", [0, 0]), strict=True)
    )
    return {
        "mode": mode, "n": n, "cores": cores, "rss_mb": b["rss"] / 2**20, "pps": pps,
        "pkts_per_core": pps / cores if cores else 0.0, "delivered": delivered,
        "loss": lost / max(1, received + lost), "dropped": b["dropped"] - a["dropped"],
        "fwd_loss": fwd[0], "audio_only": fwd[1], "late": fwd[2],
        "up_loss": up_lost / (up_received + up_lost) if up_received + up_lost else float("nan"),
        "subs_per_core": n * min(1.0, delivered) / cores if cores else 0.0,
    }  # fmt: skip


def forwarding(a: dict[str, Any], b: dict[str, Any]) -> tuple[float, int, int]:
    """(fwd_loss, audio-only, late) between two SFU stats snapshots.

    fwd_loss: the share of the packets the SFU received for its consumers that it did not
    send on (frames still queued for a sender count as sent), over the consumers that were
    forwarding the same layer all along: one not started yet at the first snapshot, audio-only
    or switching layers is left out (the SFU chose not to forward there). NaN for MediaRelay
    (it re-encodes: no packet correspondence). audio-only: video consumers the SFU had stepped
    down to audio only (layer "audio") at the end. late: consumers that had not started
    forwarding when the window began (their subscriber was still connecting).
    """
    expected = sent = late = 0
    before: dict[str, list[Any]] = a.get("consumers", {})
    after: dict[str, list[Any]] = b.get("consumers", {})
    for cid, (layer, switches, _, received, n) in after.items():
        was = before.get(cid)
        if was is None or not was[2]:
            late += 1
            continue
        if was[:2] != [layer, switches] or layer == "audio":
            continue
        expected += received - was[3]
        sent += n - was[4]
    audio_only = sum(1 for layer, *_ in after.values() if layer == "audio")
    return (1.0 - sent / expected if expected > 0 else float("nan")), audio_only, late


async def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
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
    return rows


def percent(x: float) -> str:
    return "n/a" if x != x else f"{x:.2%}"  # NaN: not measured (MediaRelay)


def run_calibration(args: argparse.Namespace) -> Calibration:
    return calibrate(
        args.calibrate_packets, args.calibrate_repeats, args.srtp_profile, args.calibrate_payload
    )


def print_calibration(args: argparse.Namespace, phases: list[tuple[str, Calibration]]) -> float:
    """Print the calibration phases; return the raw rate (the best of every phase)."""
    print(
        f"calibration: raw send path per packet (RtpPacket with a {args.calibrate_payload}-byte "
        f"payload + mid + abs-send-time, serialize, SRTP {args.srtp_profile} protect, sendto on "
        f"loopback; this interpreter, CPU of this process)"
    )
    for name, cal in phases:
        print(f"  {name:7} {cal.describe()}")
    raw = max(cal.best for _, cal in phases)
    print(f"  raw_pps_per_core = {raw:,.0f} ({1e6 / raw:.2f} us per packet)")
    return raw


def drive(args: argparse.Namespace) -> None:
    # Calibrate with nothing else of the benchmark running, before the runs and after them.
    load = [os.getloadavg()[0]]
    phases = [("before", run_calibration(args))]
    rows = asyncio.run(run_all(args)) if args.subscribers else []
    if rows:
        phases.append(("after", run_calibration(args)))
        load.append(os.getloadavg()[0])
    raw = print_calibration(args, phases)
    loads = " -> ".join(f"{x:.1f}" for x in load)
    if len(load) > 1:
        loads += " (before the runs -> after them, which includes this benchmark's own)"
    print(f"machine: {os.cpu_count()} CPUs, 1-min load average {loads}\n")
    if not rows:
        print(f"RESULT sfu_fanout raw_pps_per_core={raw:.0f}")
        return
    for r in rows:
        r["limit"] = r["pkts_per_core"] / raw
    print(f"{'mode':6} {'subs':>5} {'cores':>6} {'rss MB':>7} {'pkts/s':>8} {'pkts/core':>10} "
          f"{'limit':>6} {'up loss':>7} {'fwd loss':>8} {'delivered':>9} {'audio-only':>10} "
          f"{'loss':>7} {'dropped':>7} {'subs/core':>9}")  # fmt: skip
    for r in rows:
        print(f"{r['mode']:6} {r['n']:>5} {r['cores']:>6.2f} {r['rss_mb']:>7.0f} {r['pps']:>8.0f} "
              f"{r['pkts_per_core']:>10.0f} {r['limit']:>6.3f} {percent(r['up_loss']):>7} "
              f"{percent(r['fwd_loss']):>8} {r['delivered']:>9.1%} {r['audio_only']:>10} "
              f"{r['loss']:>7.2%} {r['dropped']:>7} {r['subs_per_core']:>9.1f}")  # fmt: skip
    print(
        "(limit = pkts/core / raw_pps_per_core; up loss = sequence gaps publisher -> SFU; "
        "fwd loss = packets the SFU received but did not forward, over consumers that kept "
        "their layer; delivered = video frames the subscribers counted / frames published; "
        "audio-only = video consumers the SFU stepped down to audio only; loss = sequence gaps "
        "SFU -> subscribers)"
    )
    for r in rows:
        if r["mode"] == "sfu" and r["delivered"] < 0.95:
            print(
                f"warning: at {r['n']} subscribers only {r['delivered']:.0%} of the video reached "
                f"them ({r['audio_only']} video consumers audio-only at the end, {r['late']} "
                f"consumers not yet forwarding when the window began): the subscribers (or the "
                f"SFU) ran short of CPU, so pkts/core and limit measure a lighter, different mix"
            )
    top = max((r for r in rows if r["mode"] == "sfu"), key=lambda r: r["n"])
    relays = [r for r in rows if r["mode"] == "relay"]
    relay_best = max((r["subs_per_core"] for r in relays), default=0.0)
    ratio = top["subs_per_core"] / relay_best if relay_best else float("nan")
    if args.profile:
        print(f"\nprofile of the SFU process at {top['n']} subscribers (self time, top 25):")
        pstats.Stats(args.profile).sort_stats("tottime").print_stats(25)
    print(
        f"RESULT sfu_fanout subscribers={top['n']} pkts_per_core={top['pkts_per_core']:.0f} "
        f"relay_ratio={ratio:.1f} sfu_loss={top['loss']:.4f} rss_mb={top['rss_mb']:.0f} "
        f"up_loss={top['up_loss']:.4f} fwd_loss={top['fwd_loss']:.4f} "
        f"delivered={top['delivered']:.3f} "
        f"raw_pps_per_core={raw:.0f} limit_ratio={top['limit']:.3f}"
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
    p.add_argument("--calibrate-packets", type=int, default=50_000, help="per repeat")
    p.add_argument("--calibrate-repeats", type=int, default=5)
    p.add_argument("--calibrate-payload", type=int, default=1150, help="RTP payload bytes")
    p.add_argument(
        "--srtp-profile",
        default="AES128_CM_SHA1_80",
        choices=list(SRTP_PROFILES),
        help="the calibration's (two aiortc peers, as here, negotiate AEAD_AES_256_GCM)",
    )
    p.add_argument(
        "--calibrate-only", action="store_true", help="only the raw send path calibration"
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
        if args.calibrate_only:
            args.subscribers = ""
        drive(args)


if __name__ == "__main__":
    main()
