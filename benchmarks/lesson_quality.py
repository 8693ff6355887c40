"""Lesson quality: what a classroom receives through the SFU vs a direct browser-to-browser call.

    .venv/bin/python benchmarks/lesson_quality.py [--classrooms 3] [--seconds 60] [--busy]
        [--only sfu|p2p] [--order p2p-first|sfu-first] [--json samples.json]

Two runs, one after the other in the same invocation (never at the same time: this machine
has 2 cores), with the same Chromium fake camera at the teacher page's capture size
(1280x720) and the same layer settings (``HIGH_LAYER`` and ``LOW_LAYER``, imported inside the
pages from ``/web/js/sfu-client.js``, so changing the caps there moves both runs):

- **p2p** (the baseline): two Chromium pages connected directly over loopback, SDP exchanged
  by this script; the sender publishes camera + microphone as the teacher console does (the
  camera on two transceivers, high then low), preferring H264 as the SFU does.
- **sfu**: the product's pages through a real Sanke server in its own process (a hidden
  ``--serve`` mode of this file: ``sanke.app.create_app`` on aiohttp, in-memory store, the
  SFU worker in-process): ``web/teacher.html?token=…`` (the script presses 开始上课), the
  first two classrooms ``web/kiosk.html?token=…`` in Chromium, the rest real aiortc
  receivers in a subprocess (hidden ``--receivers`` mode) that negotiate through the
  signaling WebSocket and decode the video. The classrooms join first, as kiosks do before
  a lesson; the clock starts when the teacher presses start (p2p: when the sender offers).
  ``--busy`` puts ~50 % of one core of unrelated pure-Python work into the SFU process's
  event loop (10 ms slices between sleeps) and prints the fraction actually achieved.

Each freeze of an aiortc classroom is printed with where its gap was: the longest gap, within
it, between the SFU's sending of consecutive video packets (their abs-send-time, the SFU's
clock) and between their arrivals at the classroom, and the SFU's event-loop stalls then
(with the CPU time its thread got meanwhile: little CPU means the process waited for a
core). An aiortc classroom decodes a frame the moment it is complete (no playout delay), so
it counts a 0.2 s sending gap that a Chromium classroom's jitter buffer absorbs.

Every second, per classroom: the teacher's video as received (frameWidth x frameHeight,
fps, kbps from bytesReceived, freezes) and the layer the SFU forwards to it (column L: h, l,
o = off, read from the SFU worker); the sender's outbound-rtp per layer (resolution, kbps,
qualityLimitationReason) and the nominated candidate pair's availableOutgoingBitrate.
Freezes are webrtc-stats': a gap between frames over max(3 x the average interval, average +
150 ms) (Chromium's freezeCount; the aiortc receivers time every decoded frame), and a gap of
5 s or more, which webrtc-stats calls a pause (pauseCount) rather than a freeze, counts as
one too, as does video that stopped 5 s or more before the end. Chromium's figures are read
once a second, so its times (first frame, first 720p frame) are to the second.

Then a summary (mean bitrate over the run, resolution at 30 s, time to the first 1280x720
frame, freezes) with PASS/FAIL per target, and as the last line:

    RESULT lesson_quality classrooms=N bitrate_ratio=B resolution_ratio=R time_to_720p_s=T
        p2p_time_to_720p_s=P freezes=F busy=0|1

(one line; bitrate_ratio = the worst classroom's mean received bitrate / the p2p receiver's,
resolution_ratio = the worst classroom's pixels at 30 s / p2p's, time_to_720p_s = the
slowest classroom's, "none" if one never got there; freezes = over all classrooms).
Targets: every classroom >= 0.8 x the p2p bitrate, the p2p resolution by 30 s, 720p no more
than 5 s after p2p, 0 freezes. Other processes using the CPU skew both runs: a warning says
so before the runs start.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import itertools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psutil

from contracts.rooms import Role
from signaling.tokens import TokenService

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# As tests/support/browser.py (kept in step by hand: the tests' helpers import pytest).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]
VIEWPORT = {"width": 1280, "height": 720}
ROOM = "bench-lesson"
KIOSKS = 2  # the first classrooms are Chromium kiosks, the rest aiortc receivers
AT_SECONDS = 30.0  # "the same resolution as p2p by 30 s"
TARGET_BITRATE = 0.8
TARGET_720P_LAG = 5.0
HD = (1280, 720)
PAUSE_SECONDS = 5.0  # webrtc-stats: a gap this long is a pause (pauseCount), not a freeze
# abs-send-time (RTP header extension): 24 bits, 6.18 fixed-point seconds, wrapping at 64 s.
ABS_SEND_TIME_UNITS = 1 << 18
ABS_SEND_TIME_WRAP = 64.0
LOOP_STALL_S = 0.05  # an SFU event-loop lag this long is remembered, to set beside freezes
ARRIVALS_KEPT = 4096  # video packets an aiortc classroom remembers (~15 s at 2.5 Mbps)
FREEZE_WHERE = {
    "sfu": "the SFU sent nothing for most of it",
    "read": "sent on time, read late by the receiver process (starved)",
    "decode": "arrived on time, decoded late by the receiver (its jitter buffer or decoder)",
    "unknown": "no abs-send-time to tell",
}

# --- in the pages -------------------------------------------------------------------------

# Every RTCPeerConnection a page makes, in window.__pcs: a fallback should a page stop
# exposing its client (the teacher console has window.sanke.client.pc, the kiosk
# window.sankeKiosk.client.pc).
COLLECT_PCS = """(() => {
  const Orig = window.RTCPeerConnection;
  if (!Orig || Orig.__bench) return;
  window.__pcs = [];
  class Collected extends Orig {
    constructor(...args) { super(...args); window.__pcs.push(this); }
  }
  Collected.__bench = true;
  window.RTCPeerConnection = Collected;
})();"""

# One getStats() of the page's peer connection, reduced to what the benchmark reads. Video
# m-lines are labelled by order, as the SFU does (media/transport.py VIDEO_LAYERS): the first
# sending video m-line is "high", the second "low"; inbound ones get their receiving index.
STATS_JS = """async () => {
  const bench = window.__bench, teacher = window.sanke, kiosk = window.sankeKiosk;
  const client = (teacher && teacher.client) || (kiosk && kiosk.client) || null;
  let pc = (bench && bench.pc) || (client && client.pc) || null;
  if (!pc && window.__pcs) pc = [...window.__pcs].reverse().find((p) => p.connectionState !== "closed") || null;
  const out = { now: Date.now(), state: pc ? pc.connectionState : "none", inbound: [], outbound: [], pair: null,
    teacher: kiosk ? kiosk.teacherId || null : null, capture: null };
  const stream = (bench && bench.stream) || (teacher && teacher.stream) || null;
  const camera = stream && stream.getVideoTracks()[0];
  if (camera) { const s = camera.getSettings(); out.capture = `${s.width}x${s.height}@${s.frameRate}`; }
  if (!pc) return out;
  const report = await pc.getStats();
  const byId = {}, codecs = {};
  report.forEach((r) => { byId[r.id] = r; if (r.type === "codec") codecs[r.id] = r.mimeType + (r.sdpFmtpLine ? " " + r.sdpFmtpLine : ""); });
  const sending = [], receiving = [];
  for (const t of pc.getTransceivers()) {
    if (t.mid === null || t.receiver.track.kind !== "video") continue;
    if (t.direction === "sendonly" || t.direction === "sendrecv") sending.push(t.mid);
    if (t.direction === "recvonly" || t.direction === "sendrecv") receiving.push(t.mid);
  }
  let pairId = null;
  report.forEach((r) => {
    if (r.type === "inbound-rtp" && r.kind === "video") {
      out.inbound.push({ id: r.id, mid: r.mid || null, index: receiving.indexOf(r.mid),
        owner: client && client.owners ? client.owners.get(r.trackIdentifier) || null : null,
        ts: r.timestamp, w: r.frameWidth || 0, h: r.frameHeight || 0, frames: r.framesDecoded || 0,
        bytes: r.bytesReceived || 0, freezes: r.freezeCount || 0, freeze_s: r.totalFreezesDuration || 0,
        pauses: r.pauseCount || 0, pause_s: r.totalPausesDuration || 0,
        codec: codecs[r.codecId] || "" });
    } else if (r.type === "outbound-rtp" && r.kind === "video") {
      const i = sending.indexOf(r.mid);
      out.outbound.push({ id: r.id, layer: i === 0 ? "high" : i === 1 ? "low" : "mid" + r.mid,
        ts: r.timestamp, w: r.frameWidth || 0, h: r.frameHeight || 0, frames: r.framesEncoded || 0,
        bytes: r.bytesSent || 0, qlr: r.qualityLimitationReason || "", target: r.targetBitrate || 0,
        codec: codecs[r.codecId] || "", encoder: r.encoderImplementation || "" });
    } else if (r.type === "transport" && r.selectedCandidatePairId) {
      pairId = r.selectedCandidatePairId;
    }
  });
  let pair = pairId ? byId[pairId] : null;
  if (!pair) report.forEach((r) => { if (r.type === "candidate-pair" && r.nominated && r.state === "succeeded") pair = r; });
  if (pair) out.pair = { out: pair.availableOutgoingBitrate || 0, rtt: pair.currentRoundTripTime || 0 };
  return out;
}"""

# The baseline pages: a blank page at the server's origin (fulfilled by Playwright, so
# /web/js/sfu-client.js is importable), the sender built as SfuClient.makePc builds it.
P2P_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>p2p baseline</title></head>"
    "<body style='margin:0;background:#000'>"
    "<video id='v' autoplay muted playsinline style='width:100vw;height:100vh'></video>"
    "</body></html>"
)
GATHERED_JS = """const gathered = (pc) => pc.iceGatheringState === "complete" ? Promise.resolve() :
  new Promise((ok) => {
    const done = () => { if (pc.iceGatheringState === "complete") ok(); };
    pc.addEventListener("icegatheringstatechange", done);
    setTimeout(ok, 3000);
  });"""
P2P_SENDER_SETUP = """async ({ width, height, layers, codec }) => {
  const { HIGH_LAYER, LOW_LAYER, keepResolution } = await import("/web/js/sfu-client.js");
  const stream = await navigator.mediaDevices.getUserMedia({ video: { width, height }, audio: true });
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.__bench = { pc, stream };
  const audio = stream.getAudioTracks()[0], video = stream.getVideoTracks()[0];
  if (audio) pc.addTransceiver(audio, { direction: "sendonly", streams: [stream] });
  const videos = [pc.addTransceiver(video, { direction: "sendonly", streams: [stream], sendEncodings: [layers ? HIGH_LAYER : {}] })];
  if (layers) videos.push(pc.addTransceiver(video.clone(), { direction: "sendonly", streams: [stream], sendEncodings: [LOW_LAYER] }));
  if (layers) await keepResolution(videos[0].sender);  // as the teacher console does
  if (codec !== "any") {
    const want = "video/" + codec.toUpperCase();
    const rank = (c) => (c.mimeType.toUpperCase() === want.toUpperCase() ? 0 : 1) +
      (want === "video/H264" && !(c.sdpFmtpLine || "").includes("packetization-mode=1") ? 0.5 : 0);
    for (const t of videos) {
      for (const caps of [RTCRtpSender.getCapabilities("video"), RTCRtpReceiver.getCapabilities("video")]) {
        const sorted = [...caps.codecs].map((c, i) => [c, i]).sort((a, b) => rank(a[0]) - rank(b[0]) || a[1] - b[1]).map((x) => x[0]);
        try { t.setCodecPreferences(sorted); break; } catch (e) { /* try the other list */ }
      }
    }
  }
  return { high: HIGH_LAYER, low: LOW_LAYER };
}"""
P2P_OFFER = (
    "async () => { "
    + GATHERED_JS
    + """
  const pc = window.__bench.pc;
  await pc.setLocalDescription();
  await gathered(pc);
  return pc.localDescription.sdp;
}"""
)
P2P_RECEIVER_SETUP = """() => {
  const pc = new RTCPeerConnection({ iceServers: [] });
  window.__bench = { pc, stream: null };
  const video = document.getElementById("v");
  pc.ontrack = (e) => {
    if (e.track.kind !== "video" || video.srcObject) return; // the first video m-line: high
    video.srcObject = new MediaStream([e.track]);
    video.play().catch(() => {});
  };
}"""
P2P_ANSWER = (
    "async (sdp) => { "
    + GATHERED_JS
    + """
  const pc = window.__bench.pc;
  await pc.setRemoteDescription({ type: "offer", sdp });
  await pc.setLocalDescription();
  await gathered(pc);
  return pc.localDescription.sdp;
}"""
)
P2P_ACCEPT = (
    """async (sdp) => { await window.__bench.pc.setRemoteDescription({ type: "answer", sdp }); }"""
)


def teacher_capture_size() -> tuple[int, int]:
    """The camera size the teacher console asks for (``param("video") || "WxH"``)."""
    text = (ROOT / "web" / "js" / "teacher.js").read_text(encoding="utf-8")
    found = re.search(r'param\("video"\)\s*\|\|\s*"(\d+)x(\d+)"', text)
    return (int(found.group(1)), int(found.group(2))) if found else HD


# --- samples --------------------------------------------------------------------------------


@dataclass
class RecvSnap:
    """One classroom's view of the teacher's video at one moment (counters since the start)."""

    t: float  # seconds since the run's start
    w: int = 0
    h: int = 0
    frames: float = 0
    bytes: float = 0
    freezes: float = 0
    freeze_s: float = 0.0
    pauses: float = 0  # webrtc-stats: no frame for >= 5 s is a pause, not a freeze
    pause_s: float = 0.0
    codec: str = ""
    state: str = ""
    sfu_layer: str = ""  # the layer the SFU forwards to this classroom (its own stats)
    sfu_estimate_bps: float | None = None


@dataclass
class LayerSnap:
    w: int = 0
    h: int = 0
    frames: float = 0
    bytes: float = 0
    qlr: str = ""
    target: float = 0
    codec: str = ""
    encoder: str = ""


@dataclass
class SendSnap:
    t: float
    layers: dict[str, LayerSnap] = field(default_factory=dict)
    avail_bps: float = 0.0
    rtt_s: float = 0.0
    capture: str = ""
    state: str = ""


@dataclass
class RecvRow:
    t: float
    w: int
    h: int
    fps: float
    kbps: float
    freezes: int
    sfu_layer: str


@dataclass
class LayerRow:
    w: int
    h: int
    fps: float
    kbps: float
    qlr: str
    target_kbps: float


@dataclass
class SendRow:
    t: float
    layers: dict[str, LayerRow]
    avail_kbps: float


class Totals:
    """Cumulative counters summed over stats objects (a new peer connection starts at 0)."""

    def __init__(self) -> None:
        self.last: dict[str, float] = {}
        self.retired = 0.0

    def update(self, values: dict[str, float]) -> float:
        for key, value in values.items():
            old = self.last.get(key)
            if old is not None and value < old:
                self.retired += old
            self.last[key] = value
        return self.retired + sum(self.last.values())


class ChromiumReceiver:
    """A classroom (kiosk) or the p2p receiver: the teacher's video in one page's stats."""

    def __init__(self, name: str, page: Any, pick: Callable[[dict[str, Any], Any], bool]) -> None:
        self.name = name
        self.page = page
        self.pick = pick
        self.totals = {
            k: Totals() for k in ("frames", "bytes", "freezes", "freeze_s", "pauses", "pause_s")
        }

    async def snapshot(self, t0: float) -> RecvSnap:
        raw: dict[str, Any] = await self.page.evaluate(STATS_JS)
        streams = [s for s in raw["inbound"] if self.pick(s, raw)]
        snap = RecvSnap(t=raw["now"] / 1000 - t0, state=raw["state"])
        if streams:
            snap.t = max(s["ts"] for s in streams) / 1000 - t0
            for k, totals in self.totals.items():
                setattr(snap, k, totals.update({s["id"]: float(s[k]) for s in streams}))
            main = max(streams, key=lambda s: (s["frames"] > 0, s["ts"], s["bytes"]))
            snap.w, snap.h, snap.codec = int(main["w"]), int(main["h"]), str(main["codec"])
        else:
            for k, totals in self.totals.items():
                setattr(snap, k, totals.update({}))
        return snap


def from_teacher(stream: dict[str, Any], raw: Any) -> bool:
    """A kiosk's inbound video from the teacher (all of it if the owner is unknown)."""
    teacher = raw.get("teacher")
    owners = {s["owner"] for s in raw["inbound"]}
    return teacher is None or teacher not in owners or stream["owner"] == teacher


def first_video_mline(stream: dict[str, Any], raw: Any) -> bool:
    return bool(stream["index"] == 0)


class ChromiumSender:
    """The teacher console or the p2p sender: outbound-rtp per layer and the candidate pair."""

    def __init__(self, name: str, page: Any) -> None:
        self.name = name
        self.page = page
        self.totals: dict[tuple[str, str], Totals] = {}

    async def snapshot(self, t0: float) -> SendSnap:
        raw: dict[str, Any] = await self.page.evaluate(STATS_JS)
        snap = SendSnap(t=raw["now"] / 1000 - t0, capture=raw["capture"] or "", state=raw["state"])
        if raw["outbound"]:
            snap.t = max(s["ts"] for s in raw["outbound"]) / 1000 - t0
        by_layer: dict[str, list[dict[str, Any]]] = {}
        for s in raw["outbound"]:
            by_layer.setdefault(s["layer"], []).append(s)
        for layer, streams in by_layer.items():
            main = max(streams, key=lambda s: (s["ts"], s["bytes"]))
            ls = LayerSnap(
                w=int(main["w"]),
                h=int(main["h"]),
                qlr=str(main["qlr"]),
                target=float(main["target"]),
                codec=str(main["codec"]),
                encoder=str(main["encoder"]),
            )
            for k in ("frames", "bytes"):
                totals = self.totals.setdefault((layer, k), Totals())
                setattr(ls, k, totals.update({s["id"]: float(s[k]) for s in streams}))
            snap.layers[layer] = ls
        if raw["pair"]:
            snap.avail_bps = float(raw["pair"]["out"])
            snap.rtt_s = float(raw["pair"]["rtt"])
        return snap


class AiortcReceivers:
    """The ``--receivers`` subprocess: its latest cumulative sample per classroom."""

    def __init__(self, proc: subprocess.Popen[str], names: list[str]) -> None:
        self.proc = proc
        self.names = names
        self.latest: dict[str, dict[str, Any]] = {}
        self.joined: set[str] = set()
        self.problems: list[str] = []
        self.freezes: list[dict[str, Any]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if msg.get("event") == "joined":
                self.joined.add(msg["name"])
            elif msg.get("event") == "sample":
                self.latest[msg["name"]] = msg
            elif msg.get("event") == "problem":
                self.problems.append(f"{msg['name']}: {msg['message']}")
            elif msg.get("event") == "freeze":
                self.freezes.append(msg)

    def snapshot(self, name: str, t0: float) -> RecvSnap:
        msg = self.latest.get(name)
        if msg is None:
            return RecvSnap(t=time.time() - t0)
        return RecvSnap(
            t=float(msg["wall"]) - t0,
            w=int(msg["w"]),
            h=int(msg["h"]),
            frames=float(msg["frames"]),
            bytes=float(msg["bytes"]),
            freezes=float(msg["freezes"]),
            freeze_s=float(msg["freeze_s"]),
            pauses=float(msg["pauses"]),
            pause_s=float(msg["pause_s"]),
            codec=str(msg.get("codec", "")),
            state=str(msg.get("state", "")),
        )

    def exact(self, name: str, key: str, t0: float) -> float | None:
        """First frame / first 720p frame as the receiver timed it (per frame, not per second)."""
        msg = self.latest.get(name)
        value = msg.get(key) if msg else None
        return None if value is None else float(value) - t0


def recv_rows(snaps: Sequence[RecvSnap]) -> list[RecvRow]:
    rows = []
    prev = RecvSnap(t=0.0)
    for s in snaps:
        dt = max(1e-3, s.t - prev.t)
        rows.append(
            RecvRow(
                t=s.t,
                w=s.w,
                h=s.h,
                fps=max(0.0, s.frames - prev.frames) / dt,
                kbps=max(0.0, s.bytes - prev.bytes) * 8 / dt / 1000,
                freezes=int(s.freezes + s.pauses),
                sfu_layer=s.sfu_layer,
            )
        )
        prev = s
    return rows


def send_rows(snaps: Sequence[SendSnap]) -> list[SendRow]:
    rows = []
    prev = SendSnap(t=0.0)
    for s in snaps:
        dt = max(1e-3, s.t - prev.t)
        layers = {}
        for name, ls in s.layers.items():
            before = prev.layers.get(name, LayerSnap())
            layers[name] = LayerRow(
                w=ls.w,
                h=ls.h,
                fps=max(0.0, ls.frames - before.frames) / dt,
                kbps=max(0.0, ls.bytes - before.bytes) * 8 / dt / 1000,
                qlr=ls.qlr,
                target_kbps=ls.target / 1000,
            )
        rows.append(SendRow(t=s.t, layers=layers, avail_kbps=s.avail_bps / 1000))
        prev = s
    return rows


# --- summaries ------------------------------------------------------------------------------


@dataclass
class RecvSummary:
    name: str
    kbps: float
    res_at: tuple[int, int]
    first_frame_s: float | None
    time_to_720p_s: float | None
    freezes: int
    freeze_s: float
    pauses: int  # counted by the receiver, plus one if the video stopped >= 5 s before the end
    pause_s: float
    stalled_s: float  # after the first frame, sampling intervals in which no frame came
    codec: str


@dataclass
class SendSummary:
    name: str
    kbps_high: float
    kbps_low: float
    res_at: tuple[int, int]
    time_to_720p_s: float | None
    qlr: str
    avail_kbps: float
    codec: str
    encoder: str
    capture: str


def at_time(snaps: Sequence[Any], at: float) -> Any:
    """The last sample taken by ``at`` seconds (half a sampling interval of slack)."""
    before = [s for s in snaps if s.t <= at + 0.5]
    return before[-1] if before else (snaps[0] if snaps else None)


def is_hd(w: int, h: int) -> bool:
    return w >= HD[0] and h >= HD[1]


def summarize_recv(
    name: str,
    snaps: Sequence[RecvSnap],
    at: float,
    exact_first: float | None = None,
    exact_720: float | None = None,
) -> RecvSummary:
    last = snaps[-1] if snaps else RecvSnap(t=1.0)
    snap_at = at_time(snaps, at)
    first = next((s.t for s in snaps if s.frames > 0), None)
    hd = next((s.t for s in snaps if is_hd(s.w, s.h)), None)
    stalled, trailing, prev_t, started = 0.0, 0.0, 0.0, False
    for s, row in zip(snaps, recv_rows(snaps), strict=True):
        if started and row.fps < 0.5:
            stalled += s.t - prev_t
            trailing += s.t - prev_t
        else:
            trailing = 0.0
        started = started or s.frames > 0
        prev_t = s.t
    ongoing = trailing >= PAUSE_SECONDS  # the receiver counts a pause only once frames resume
    return RecvSummary(
        name=name,
        kbps=last.bytes * 8 / max(1e-3, last.t) / 1000,
        res_at=(snap_at.w, snap_at.h) if snap_at else (0, 0),
        first_frame_s=exact_first if exact_first is not None else first,
        time_to_720p_s=exact_720 if exact_720 is not None else hd,
        freezes=int(last.freezes),
        freeze_s=last.freeze_s,
        pauses=int(last.pauses) + ongoing,
        pause_s=last.pause_s + (trailing if ongoing else 0.0),
        stalled_s=stalled,
        codec=next((s.codec for s in reversed(snaps) if s.codec), ""),
    )


def summarize_send(name: str, snaps: Sequence[SendSnap], at: float) -> SendSummary:
    last = snaps[-1] if snaps else SendSnap(t=1.0)
    high = [s.layers.get("high", LayerSnap()) for s in snaps]
    snap_at = at_time(snaps, at)
    high_at = snap_at.layers.get("high", LayerSnap()) if snap_at else LayerSnap()
    hd = next((s.t for s, h in zip(snaps, high, strict=True) if is_hd(h.w, h.h)), None)
    qlrs = Counter(h.qlr for h in high if h.qlr)
    avail = [s.avail_bps for s in snaps if s.avail_bps > 0]
    span = max(1e-3, last.t)
    return SendSummary(
        name=name,
        kbps_high=last.layers.get("high", LayerSnap()).bytes * 8 / span / 1000,
        kbps_low=last.layers.get("low", LayerSnap()).bytes * 8 / span / 1000,
        res_at=(high_at.w, high_at.h),
        time_to_720p_s=hd,
        qlr=", ".join(f"{q} {n}s" for q, n in qlrs.most_common(3)),
        avail_kbps=sum(avail) / len(avail) / 1000 if avail else 0.0,
        codec=next((h.codec for h in reversed(high) if h.codec), ""),
        encoder=next((h.encoder for h in reversed(high) if h.encoder), ""),
        capture=next((s.capture for s in reversed(snaps) if s.capture), ""),
    )


@dataclass
class Run:
    kind: str  # "p2p" | "sfu"
    seconds: float
    sender_name: str
    receiver_names: list[str]
    send: list[SendSnap] = field(default_factory=list)
    recv: dict[str, list[RecvSnap]] = field(default_factory=dict)
    exact: dict[str, tuple[float | None, float | None]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def receivers(self) -> list[RecvSummary]:
        at = min(AT_SECONDS, self.seconds)
        return [
            summarize_recv(n, self.recv[n], at, *self.exact.get(n, (None, None)))
            for n in self.receiver_names
        ]

    def sender(self) -> SendSummary:
        return summarize_send(self.sender_name, self.send, min(AT_SECONDS, self.seconds))


# --- printing -------------------------------------------------------------------------------


def res(w: int, h: int) -> str:
    return f"{w}x{h}" if w and h else "-"


def secs(value: float | None) -> str:
    return "none" if value is None else f"{value:.1f}"


class Table:
    """The compact per-second table, printed as the run goes."""

    def __init__(self, kind: str, receivers: list[str]) -> None:
        self.receivers = receivers
        sender = "teacher" if kind == "sfu" else "p2p sender"
        head1 = f"{'':>4} | {sender + ' high':<25} | {'low':<15} | {'avail':>6}"
        head2 = (
            f"{'t':>4} | {'res':>9} {'kbps':>5} {'qlr':<9} | {'res':>9} {'kbps':>5} | {'kbps':>6}"
        )
        for name in receivers:
            head1 += f" | {name:<24}"
            head2 += f" | {'res':>9} {'fps':>3} {'kbps':>5} {'fz':>2} {'L'}"
        print(head1)
        print(head2, flush=True)

    def row(self, send: SendRow, recv: dict[str, RecvRow]) -> None:
        hi = send.layers.get("high")
        lo = send.layers.get("low")
        line = f"{send.t:>4.0f} | "
        line += (
            f"{res(hi.w, hi.h):>9} {hi.kbps:>5.0f} {hi.qlr[:9]:<9}" if hi else f"{'-':>9} {'':>15}"
        )
        line += f" | {res(lo.w, lo.h):>9} {lo.kbps:>5.0f}" if lo else f" | {'-':>9} {'':>5}"
        line += f" | {send.avail_kbps:>6.0f}"
        for name in self.receivers:
            r = recv[name]
            layer = r.sfu_layer[:1] or "-"
            line += f" | {res(r.w, r.h):>9} {r.fps:>3.0f} {r.kbps:>5.0f} {r.freezes:>2} {layer}"
        print(line, flush=True)


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


def pixels(size: tuple[int, int]) -> int:
    return size[0] * size[1]


def report(runs: dict[str, Run], args: argparse.Namespace) -> dict[str, Any]:
    """Print the summary tables and the targets; returns the figures for RESULT and JSON."""
    p2p = runs["p2p"].receivers()[0] if "p2p" in runs else None
    classrooms = runs["sfu"].receivers() if "sfu" in runs else []
    at = min(AT_SECONDS, args.seconds)
    print()
    print(
        f"summary: mean received kbps over the run, resolution at {at:.0f} s, "
        "times in seconds from the sender's start"
    )
    print(
        f"{'receiver':<14} {'kbps':>6} {f'res@{at:.0f}s':>9} {'first_frame':>11} "
        f"{'time_to_720p':>12} {'freezes':>7} {'freeze_s':>8} {'pauses':>6} {'pause_s':>7} {'stalled_s':>9} {'kbps/p2p':>8} {'px/p2p':>6}  codec"
    )
    for r in ([p2p] if p2p else []) + classrooms:
        kratio = r.kbps / p2p.kbps if p2p and p2p.kbps else float("nan")
        pratio = (
            pixels(r.res_at) / pixels(p2p.res_at) if p2p and pixels(p2p.res_at) else float("nan")
        )
        label = "p2p receiver" if r is p2p else r.name
        print(
            f"{label:<14} {r.kbps:>6.0f} {res(*r.res_at):>9} {secs(r.first_frame_s):>11} "
            f"{secs(r.time_to_720p_s):>12} {r.freezes:>7} {r.freeze_s:>8.1f} {r.pauses:>6} {r.pause_s:>7.1f} "
            f"{r.stalled_s:>9.1f} "
            f"{kratio:>8.2f} "
            f"{pratio:>6.2f}  {r.codec}"
        )
    print()
    print(
        f"{'sender (high)':<14} {'kbps':>6} {f'res@{at:.0f}s':>9} {'time_to_720p':>12} "
        f"{'avail kbps':>10} {'low kbps':>8}  qualityLimitationReason (seconds) / codec / capture"
    )
    for kind in ("p2p", "sfu"):
        if kind in runs:
            s = runs[kind].sender()
            label = "p2p sender" if kind == "p2p" else "teacher (SFU)"
            print(
                f"{label:<14} {s.kbps_high:>6.0f} {res(*s.res_at):>9} {secs(s.time_to_720p_s):>12} "
                f"{s.avail_kbps:>10.0f} {s.kbps_low:>8.0f}  {s.qlr or '-'} / {s.codec} "
                f"{s.encoder} / {s.capture}"
            )
    for run in runs.values():
        for note in run.notes:
            print(f"{run.kind}: {note}")

    figures: dict[str, Any] = {"classrooms": len(classrooms)}
    worst_kbps = min(classrooms, key=lambda r: r.kbps) if classrooms else None
    worst_px = min(classrooms, key=lambda r: pixels(r.res_at)) if classrooms else None
    hd_times = [r.time_to_720p_s for r in classrooms]
    slowest = (
        None if not classrooms or None in hd_times else max(t for t in hd_times if t is not None)
    )
    freezes = sum(r.freezes + r.pauses for r in classrooms)
    pauses = sum(r.pauses for r in classrooms)
    bitrate_ratio = worst_kbps.kbps / p2p.kbps if worst_kbps and p2p and p2p.kbps else float("nan")
    resolution_ratio = (
        pixels(worst_px.res_at) / pixels(p2p.res_at)
        if worst_px and p2p and pixels(p2p.res_at)
        else float("nan")
    )
    ok_bitrate = None if not (classrooms and p2p) else bitrate_ratio >= TARGET_BITRATE
    ok_res = None if not (classrooms and p2p) else resolution_ratio >= 1.0
    if not (classrooms and p2p) or p2p.time_to_720p_s is None:
        ok_720 = None
    else:
        ok_720 = slowest is not None and slowest <= p2p.time_to_720p_s + TARGET_720P_LAG
    ok_freeze = None if not classrooms else freezes == 0
    print()
    print("targets (each classroom vs the p2p receiver):")
    worst_name = worst_kbps.name if worst_kbps else "-"
    print(
        f"  {verdict(ok_bitrate)}  bitrate >= {TARGET_BITRATE} x p2p        "
        f"worst {worst_name}: {bitrate_ratio:.2f} x"
    )
    print(
        f"  {verdict(ok_res)}  p2p resolution by {at:.0f} s       worst "
        f"{res(*worst_px.res_at) if worst_px else '-'} vs {res(*p2p.res_at) if p2p else '-'}"
    )
    print(
        f"  {verdict(ok_720)}  720p <= {TARGET_720P_LAG:.0f} s after p2p        slowest "
        f"{secs(slowest)} s vs p2p {secs(p2p.time_to_720p_s) if p2p else 'n/a'} s"
    )
    print(
        f"  {verdict(ok_freeze)}  0 freezes                     {freezes} in all classrooms "
        f"(of which {pauses} pauses: no frame for >= {PAUSE_SECONDS:.0f} s)"
    )
    figures.update(
        bitrate_ratio=bitrate_ratio,
        resolution_ratio=resolution_ratio,
        time_to_720p_s=slowest,
        p2p_time_to_720p_s=p2p.time_to_720p_s if p2p else None,
        freezes=freezes,
        targets={
            "bitrate": ok_bitrate,
            "resolution": ok_res,
            "time_to_720p": ok_720,
            "freezes": ok_freeze,
        },
    )
    return figures


def result_line(figures: dict[str, Any], busy: bool) -> str:
    return (
        f"RESULT lesson_quality classrooms={figures['classrooms']} "
        f"bitrate_ratio={figures['bitrate_ratio']:.3f} "
        f"resolution_ratio={figures['resolution_ratio']:.3f} "
        f"time_to_720p_s={secs(figures['time_to_720p_s'])} "
        f"p2p_time_to_720p_s={secs(figures['p2p_time_to_720p_s'])} "
        f"freezes={figures['freezes']} busy={int(busy)}"
    )


# --- processes ------------------------------------------------------------------------------


class Processes:
    """Every subprocess this benchmark starts, stopped at the end whatever happens."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.procs: list[subprocess.Popen[str]] = []
        atexit.register(self.stop_all)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
        log = (self.workdir / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), *args],
            cwd=str(ROOT),
            env=env,
            stdin=subprocess.PIPE,  # closed when we die: the child exits on EOF
            stdout=subprocess.PIPE if name.startswith("receivers") else log,
            stderr=log,
            text=True,
            start_new_session=True,  # Ctrl-C reaches us, and we stop them in order
        )
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen[str]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                proc.wait(timeout=8)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        for pipe in (proc.stdin, proc.stdout):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()

    def stop_all(self) -> None:
        while self.procs:
            self.stop(self.procs.pop())

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def machine_load() -> list[str]:
    """A warning when other processes already use the CPU (this machine has few cores)."""
    procs = list(psutil.process_iter(["pid", "cmdline"]))
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.cpu_percent(None)
    total = psutil.cpu_percent(interval=1.0)
    if total < 25:
        return []
    busy = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            used = proc.cpu_percent(None)
            if used >= 10 and proc.pid != os.getpid():
                command = " ".join(proc.info["cmdline"] or [])[:70]
                busy.append((used, f"pid {proc.pid} {used:.0f} % {command}"))
    lines = [
        f"warning: the machine is {total:.0f} % busy before the runs "
        f"({psutil.cpu_count()} cores); the figures will be noisy"
    ]
    return lines + [f"  {what}" for _, what in sorted(busy, reverse=True)[:5]]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def child_env(secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "SANKE_REDIS_URL")}
    env.update(
        SANKE_TOKEN_SECRET=secret,
        SANKE_RECORDS_KEY=secret,
        SANKE_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_ready(base: str, proc: subprocess.Popen[str], procs: Processes) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited ({proc.returncode}):\n{procs.log('server')}")
        try:
            with urllib.request.urlopen(base + "/readyz", timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the server is not ready:\n{procs.log('server')}")


# --- the ``--serve`` mode: the SFU process ---------------------------------------------------


class BusyLoad:
    """Unrelated CPU work inside the event loop: ~10 ms slices of pure Python between sleeps,
    paced so that it takes ``fraction`` of the wall time; plus an event-loop lag probe."""

    SLICE = 0.010

    def __init__(self) -> None:
        self.fraction = 0.0
        self.task: asyncio.Task[None] | None = None
        self.probe: asyncio.Task[None] | None = None
        self.reset()

    def reset(self) -> None:
        self.since = time.monotonic()
        self.cpu = 0.0
        self.lags: list[float] = []
        # (wall at the end, lag, CPU time the loop's thread got meanwhile): a stall with
        # little CPU is the process waiting for a core, not its own work
        self.stalls: deque[tuple[float, float, float]] = deque(maxlen=500)

    def set(self, fraction: float) -> None:
        if self.task is not None:
            self.task.cancel()
            self.task = None
        self.fraction = fraction
        if fraction > 0:
            self.task = asyncio.get_running_loop().create_task(self._work())
        if self.probe is None:
            self.probe = asyncio.get_running_loop().create_task(self._probe())

    async def _work(self) -> None:
        start, done = time.monotonic(), 0.0
        while True:
            t = time.thread_time()
            x = 0
            while time.thread_time() - t < self.SLICE:
                for i in range(500):
                    x += i * i
            spent = time.thread_time() - t
            done += spent
            self.cpu += spent
            # next slice when the work so far is `fraction` of the time so far; behind that
            # (the loop was busy), slices follow each other with one loop turn in between,
            # and a debt of more than 250 ms is forgiven rather than worked off
            start = max(start, time.monotonic() - done / self.fraction - 0.25)
            await asyncio.sleep(max(0.0, start + done / self.fraction - time.monotonic()))

    async def _probe(self) -> None:
        while True:
            t, cpu = time.monotonic(), time.thread_time()
            await asyncio.sleep(0.02)
            lag = time.monotonic() - t - 0.02
            self.lags.append(lag)
            if lag >= LOOP_STALL_S:
                self.stalls.append((time.time(), lag, time.thread_time() - cpu))

    def figures(self) -> dict[str, Any]:
        wall = max(1e-3, time.monotonic() - self.since)
        lags = sorted(self.lags) or [0.0]
        return {
            "stalls": list(self.stalls),
            "fraction": self.fraction,
            "achieved": self.cpu / wall,
            "wall": wall,
            "lag_mean_ms": 1000 * sum(lags) / len(lags),
            "lag_p95_ms": 1000 * lags[int(0.95 * (len(lags) - 1))],
            "lag_max_ms": 1000 * lags[-1],
        }


def loop_stall(busy: dict[str, Any], freeze: dict[str, Any]) -> tuple[float, float]:
    """The SFU's longest event-loop lag (of those over LOOP_STALL_S) that overlapped a
    freeze of an aiortc classroom (both clocks are this machine's wall clock), and the CPU
    time its thread got during it."""
    end = float(freeze["wall"])
    start = end - float(freeze["gap"])
    return max(
        ((lag, cpu) for at, lag, cpu in busy.get("stalls", []) if at >= start and at - lag <= end),
        default=(0.0, 0.0),
    )


def consumer_layers(worker: Any) -> dict[str, dict[str, Any]]:
    """Per classroom: the layer the SFU forwards of the teacher's video and its estimate.

    Diagnostics only, read from the worker's objects (routers, transports, consumers) without
    awaiting anything; an empty answer if those internals move."""
    out: dict[str, dict[str, Any]] = {}
    with contextlib.suppress(Exception):
        for router in list(worker.routers.values()):
            transports = list(router.transports.values())
            teachers = {t.id for t in transports if str(t.participant.role) == "teacher"}
            for t in transports:
                name = t.participant.classroom_id or t.participant.name or t.id
                for c in list(t.consumers.values()):
                    if c.kind == "video" and c.source_id in teachers:
                        value = c.estimate.value() if hasattr(c, "estimate") else None
                        out[name] = {"layer": c.layer, "target": c.target, "estimate": value}
    return out


def exit_on_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Stop when stdin closes (the driver is gone)."""

    def wait() -> None:
        with contextlib.suppress(Exception):
            sys.stdin.buffer.read()
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait, daemon=True).start()


async def serve(port: int) -> None:
    import logging

    from aiohttp import web

    from sanke.app import create_app
    from sanke.settings import Settings

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from media.worker import Worker

    settings = Settings(host=["127.0.0.1"], port=port, redis_url=None, media=True)
    worker = Worker()  # what create_app makes by itself; kept to read its layer choices
    app = create_app(settings, media=worker)
    busy = BusyLoad()

    async def sfu_layers(request: web.Request) -> web.Response:
        return web.json_response(consumer_layers(worker))

    async def busy_get(request: web.Request) -> web.Response:
        return web.json_response(busy.figures())

    async def busy_post(request: web.Request) -> web.Response:
        body = await request.json()
        if "fraction" in body:
            busy.set(float(body["fraction"]))
        busy.reset()
        return web.json_response(busy.figures())

    app.router.add_get("/bench/busy", busy_get)
    app.router.add_get("/bench/layers", sfu_layers)
    app.router.add_post("/bench/busy", busy_post)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, shutdown_timeout=1.0).start()
    loop = asyncio.get_running_loop()
    busy.set(0.0)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    exit_on_eof(loop, stop)
    try:
        await stop.wait()
    finally:
        busy.set(0.0)
        await runner.cleanup()


# --- the ``--receivers`` mode: aiortc classrooms ---------------------------------------------


class AiortcClassroom:
    """A classroom as a real aiortc peer: joins over the signaling WebSocket, answers the
    SFU's offers, decodes the teacher's video, counts its payload bytes and freezes."""

    def __init__(self, name: str, token: str, session: aiohttp.ClientSession, url: str) -> None:
        self.name = name
        self.token = token
        self.session = session
        self.url = url
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self.pc: Any = None
        self.answered = asyncio.Event()
        self.lock = asyncio.Lock()
        self.tasks: set[asyncio.Task[None]] = set()
        self.roles: dict[str, str] = {}
        self.owners: dict[str, str] = {}
        self.frames = self.bytes = self.w = self.h = self.freezes = self.pauses = 0
        self.freeze_s = self.pause_s = 0.0
        self.durations: deque[float] = deque(maxlen=30)
        # (arrival, the SFU's send time from abs-send-time) of recent video packets: where a
        # freeze's gap was (see ``attribute``)
        self.arrivals: deque[tuple[float, float]] = deque(maxlen=ARRIVALS_KEPT)
        self.last_frame: float | None = None
        self.first_frame: float | None = None
        self.first_hd: float | None = None
        self.codec = ""

    def spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def send(self, message: dict[str, Any]) -> None:
        assert self.ws is not None
        await self.ws.send_str(json.dumps(message))

    async def start(self) -> None:
        self.ws = await self.session.ws_connect(self.url, max_msg_size=1 << 22)
        await self.send({"type": "join", "token": self.token})
        while True:
            msg = json.loads((await self.ws.receive(timeout=15)).data)
            if msg["type"] == "joined":
                self.roles = {p["id"]: p["role"] for p in msg["participants"]}
                break
            if msg["type"] == "error":
                raise RuntimeError(f"{self.name}: join refused: {msg}")
        self.spawn(self.read())
        self.spawn(self.ping())
        await self.negotiate()

    async def ping(self) -> None:
        while True:
            await asyncio.sleep(10)
            await self.send({"type": "ping"})

    async def negotiate(self) -> None:
        from aiortc import RTCPeerConnection

        if self.pc is not None:
            await self.pc.close()
        self.answered = asyncio.Event()
        self.pc = RTCPeerConnection()
        self.pc.on("track", self.on_track)
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.send({"type": "offer", "sdp": self.pc.localDescription.sdp, "rid": "offer"})

    async def read(self) -> None:
        from aiortc import RTCSessionDescription

        assert self.ws is not None
        async for raw in self.ws:
            if raw.type is not aiohttp.WSMsgType.TEXT:
                break
            msg = json.loads(raw.data)
            kind = msg["type"]
            try:
                if kind == "answer":
                    await self.pc.setRemoteDescription(RTCSessionDescription(msg["sdp"], "answer"))
                    self.answered.set()
                elif kind == "offer":
                    self.spawn(self.apply_offer(msg["sdp"]))
                elif kind == "participant_joined":
                    self.roles[msg["participant"]["id"]] = msg["participant"]["role"]
                elif kind == "tracks":
                    for t in msg["tracks"]:
                        self.owners[t["track_id"]] = t["participant_id"]
                elif kind == "rejoin":
                    await self.negotiate()
                elif kind == "error":
                    emit({"event": "problem", "name": self.name, "message": str(msg)})
            except Exception as exc:
                emit({"event": "problem", "name": self.name, "message": repr(exc)})

    async def apply_offer(self, sdp: str) -> None:
        from aiortc import RTCSessionDescription

        async with self.lock:
            try:
                await asyncio.wait_for(self.answered.wait(), 15)
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp, "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.send({"type": "answer", "sdp": self.pc.localDescription.sdp})
            except Exception as exc:
                emit({"event": "problem", "name": self.name, "message": repr(exc)})

    def on_track(self, track: Any) -> None:
        if track.kind != "video":
            return
        owner = self.owners.get(track.id)
        counted = owner is None or self.roles.get(owner, "teacher") == "teacher"
        for t in self.pc.getTransceivers():
            if t.receiver.track is track and counted:
                self.count_bytes(t)
        self.spawn(self.decode(track, counted))

    def count_bytes(self, transceiver: Any) -> None:
        """Payload bytes as RTP arrives (bytesReceived: aiortc's stats have no such field)."""
        receiver = transceiver.receiver
        handle = receiver._handle_rtp_packet
        codecs = getattr(transceiver, "_codecs", None) or []
        self.codec = str(codecs[0].mimeType) if codecs else ""

        async def counting(packet: Any, arrival_time_ms: int) -> None:
            self.bytes += max(0, len(packet.payload) - int(getattr(packet, "padding_size", 0)))
            sent = packet.extensions.abs_send_time
            if sent is not None:
                self.arrivals.append((time.monotonic(), sent / ABS_SEND_TIME_UNITS))
            await handle(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtp_packet = counting

    async def decode(self, track: Any, counted: bool) -> None:
        from aiortc.mediastreams import MediaStreamError

        with contextlib.suppress(MediaStreamError):
            while True:
                frame = await track.recv()
                if not counted:
                    continue
                now, wall = time.monotonic(), time.time()
                self.frames += 1
                self.w, self.h = int(frame.width), int(frame.height)
                if self.last_frame is not None:
                    gap = now - self.last_frame
                    avg = sum(self.durations) / len(self.durations) if self.durations else gap
                    if gap >= PAUSE_SECONDS:
                        self.pauses += 1
                        self.pause_s += gap
                    elif self.durations and gap >= max(3 * avg, avg + 0.150):
                        self.freezes += 1
                        self.freeze_s += gap
                        emit(self.attribute(self.last_frame, now, wall))
                    else:  # the average is of the frames that were on time
                        self.durations.append(gap)
                self.last_frame = now
                if self.first_frame is None:
                    self.first_frame = wall
                if self.first_hd is None and is_hd(self.w, self.h):
                    self.first_hd = wall

    def attribute(self, start: float, end: float, wall: float) -> dict[str, Any]:
        """Where a freeze (no frame decoded from ``start`` to ``end``) was: the longest gap,
        within it, between the SFU's sending of consecutive packets (abs-send-time, the SFU's
        clock), and between their arrivals here. The SFU (or what it forwards) paused if it
        sent nothing for most of the gap; this process was starved if packets were sent on
        time but read late; its decoding was late if they also arrived on time."""
        got = [a for a in self.arrivals if start <= a[0] <= end]
        before = [a for a in self.arrivals if a[0] < start][-1:]
        seq = before + got
        send_gap = max(
            ((b[1] - a[1]) % ABS_SEND_TIME_WRAP for a, b in itertools.pairwise(seq)), default=0.0
        )
        arrival_gap = max((b[0] - a[0] for a, b in itertools.pairwise(seq)), default=0.0)
        # Retransmissions carry their own (later) send time; a wrap backwards is reordering.
        send_gap = send_gap if send_gap < ABS_SEND_TIME_WRAP / 2 else 0.0
        gap = end - start
        if not seq:
            where = "unknown"  # no abs-send-time negotiated
        elif send_gap >= gap / 2:
            where = "sfu"
        elif arrival_gap >= gap / 2:
            where = "read"
        else:
            where = "decode"
        return {
            "event": "freeze",
            "name": self.name,
            "wall": wall,
            "gap": round(gap, 3),
            "send_gap": round(send_gap, 3),
            "arrival_gap": round(arrival_gap, 3),
            "packets": len(got),
            "where": where,
        }

    def sample(self) -> dict[str, Any]:
        return {
            "event": "sample",
            "name": self.name,
            "wall": time.time(),
            "w": self.w,
            "h": self.h,
            "frames": self.frames,
            "bytes": self.bytes,
            "freezes": self.freezes,
            "freeze_s": self.freeze_s,
            "pauses": self.pauses,
            "pause_s": self.pause_s,
            "first_frame": self.first_frame,
            "first_hd": self.first_hd,
            "codec": self.codec,
            "state": self.pc.connectionState if self.pc is not None else "none",
        }

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()


def emit(message: dict[str, Any]) -> None:
    print(json.dumps(message), flush=True)


async def receivers(url: str, specs: list[str]) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    exit_on_eof(loop, stop)
    async with aiohttp.ClientSession() as session:
        pairs = [spec.split("=", 1) for spec in specs]
        rooms = [AiortcClassroom(name, token, session, url) for name, token in pairs]
        try:
            for r in rooms:
                await r.start()
                emit({"event": "joined", "name": r.name})
            while not stop.is_set():
                for r in rooms:
                    emit(r.sample())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.25)
        finally:
            for r in rooms:
                with contextlib.suppress(Exception):
                    await r.close()


# --- the driver -----------------------------------------------------------------------------


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    def raise_interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, raise_interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


async def new_page(browser: Any, name: str, errors: dict[str, list[str]]) -> Any:
    # The pages' CSP forbids eval, which wait_for_function polls with: this measures media,
    # not the CSP (tests/web/test_page_security.py does that), so the benchmark bypasses it.
    context = await browser.new_context(viewport=VIEWPORT, locale="zh-CN", bypass_csp=True)
    await context.add_init_script(COLLECT_PCS)
    page = await context.new_page()
    seen = errors.setdefault(name, [])
    page.on("console", lambda m: seen.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.append(f"pageerror: {e}"))
    return page


async def launch(pw: Any) -> Any:
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing: apt-get install -y chromium")
    return await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)


class Clock:
    """Ticks every second from the run's start (monotonic), with the run's wall-clock zero."""

    def __init__(self) -> None:
        self.mono = time.monotonic()
        self.wall = time.time()

    async def ticks(self, seconds: float) -> Any:
        k = 1
        while k <= seconds:
            await asyncio.sleep(max(0.0, self.mono + k - time.monotonic()))
            yield k
            k += 1


def page_notes(errors: dict[str, list[str]]) -> list[str]:
    notes = []
    for name, seen in errors.items():
        if seen:
            notes.append(f"{name}: {len(seen)} console errors, first: {seen[0][:200]}")
    return notes


async def run_p2p(pw: Any, base: str, args: argparse.Namespace) -> Run:
    width, height = teacher_capture_size()
    run = Run("p2p", args.seconds, "p2p sender", ["p2p recv"])
    errors: dict[str, list[str]] = {}
    browser = await launch(pw)
    try:
        url = f"{base}/web/__lesson_quality_p2p.html"
        pages = []
        for name in ("p2p-sender", "p2p-receiver"):
            page = await new_page(browser, name, errors)
            await page.route(
                url, lambda route: route.fulfill(body=P2P_PAGE, content_type="text/html")
            )
            await page.goto(url)
            pages.append(page)
        sender_page, receiver_page = pages
        layers = await sender_page.evaluate(
            P2P_SENDER_SETUP,
            {"width": width, "height": height, "layers": True, "codec": args.p2p_codec},
        )
        run.notes.append(f"layers from /web/js/sfu-client.js: {json.dumps(layers)}")
        await receiver_page.evaluate(P2P_RECEIVER_SETUP)
        sender = ChromiumSender("p2p sender", sender_page)
        receiver = ChromiumReceiver("p2p recv", receiver_page, first_video_mline)
        print(f"\np2p baseline: Chromium → Chromium over loopback, {args.seconds:.0f} s")
        table = Table("p2p", run.receiver_names)
        psutil.cpu_percent()
        clock = Clock()
        offer = await sender_page.evaluate(P2P_OFFER)
        answer = await receiver_page.evaluate(P2P_ANSWER, offer)
        await sender_page.evaluate(P2P_ACCEPT, answer)
        run.recv["p2p recv"] = []
        async for _ in clock.ticks(args.seconds):
            s, r = await asyncio.gather(sender.snapshot(clock.wall), receiver.snapshot(clock.wall))
            run.send.append(s)
            run.recv["p2p recv"].append(r)
            table.row(send_rows(run.send)[-1], {"p2p recv": recv_rows(run.recv["p2p recv"])[-1]})
        machine = psutil.cpu_percent()
        run.extra.update(machine_cpu_percent=machine)
        run.notes.append(f"machine CPU {machine:.0f} % of {psutil.cpu_count()} cores")
    finally:
        run.notes.extend(page_notes(errors))
        with contextlib.suppress(Exception):
            await browser.close()
    return run


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url) as reply:
        return await reply.json()


async def post_json(session: aiohttp.ClientSession, url: str, body: Any, token: str = "") -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with session.post(url, json=body, headers=headers) as reply:
        data = await reply.json()
        if reply.status >= 300:
            raise RuntimeError(f"POST {url}: {reply.status} {data}")
        return data


async def run_sfu(
    pw: Any,
    base: str,
    args: argparse.Namespace,
    tokens: TokenService,
    procs: Processes,
    server: subprocess.Popen[str],
    env: dict[str, str],
) -> Run:
    n = args.classrooms
    kiosk_names = [f"kiosk-{i + 1}" for i in range(min(KIOSKS, n))]
    aiortc_names = [f"aiortc-{i + 1}" for i in range(len(kiosk_names), n)]
    run = Run("sfu", args.seconds, "teacher", kiosk_names + aiortc_names)
    errors: dict[str, list[str]] = {}
    room = f"{ROOM}-{secrets.token_hex(3)}"

    def mint(role: Role, subject: str, **kw: Any) -> str:
        return tokens.mint(subject=subject, role=role, room=room, ttl=3600, **kw)

    async with aiohttp.ClientSession() as session:
        coordinator = tokens.mint(subject="bench-coordinator", role=Role.coordinator)
        await post_json(session, f"{base}/api/v1/rooms", {"id": room}, coordinator)
        await post_json(session, f"{base}/bench/busy", {"fraction": args.busy_fraction})
        browser = await launch(pw)
        aiortc: AiortcReceivers | None = None
        try:
            teacher_page = await new_page(browser, "teacher", errors)
            await teacher_page.goto(
                f"{base}/web/teacher.html?token={mint(Role.teacher, 'bench-teacher', name='主讲')}"
            )
            # the camera is open and listed (openDevices, then listDevices)
            await teacher_page.wait_for_function(
                "document.querySelectorAll('#camera option').length > 0 && window.sanke.stream",
                timeout=30_000,
            )
            kiosks = []
            for name in kiosk_names:
                page = await new_page(browser, name, errors)
                token = mint(Role.classroom, name, classroom_id=name, name=name)
                await page.goto(f"{base}/web/kiosk.html?token={token}")
                kiosks.append(page)
            if aiortc_names:
                ws = base.replace("http://", "ws://") + "/ws"
                specs = [
                    f"{name}={mint(Role.classroom, name, classroom_id=name)}"
                    for name in aiortc_names
                ]
                proc = procs.spawn("receivers", ["--receivers", ws, *specs], env)
                aiortc = AiortcReceivers(proc, aiortc_names)
            # the classrooms are in the room (kiosks connected: they publish their cameras)
            for page in kiosks:
                await page.wait_for_function(
                    "window.sankeKiosk && sankeKiosk.client && sankeKiosk.client.pc && "
                    "sankeKiosk.client.pc.connectionState === 'connected'",
                    timeout=30_000,
                )
            deadline = time.monotonic() + 30
            while aiortc is not None and aiortc.joined != set(aiortc_names):
                if aiortc.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"aiortc classrooms did not join:\n{procs.log('receivers')}")
                await asyncio.sleep(0.1)
            cpu_proc = psutil.Process(server.pid)
            print(
                f"\nSFU run: teacher.html → {len(kiosk_names)} kiosk.html + {len(aiortc_names)} "
                f"aiortc classrooms, {args.seconds:.0f} s, busy={int(args.busy)}"
            )
            table = Table("sfu", run.receiver_names)
            for name in run.receiver_names:
                run.recv[name] = []
            await post_json(session, f"{base}/bench/busy", {})  # counters from here
            cpu0 = cpu_proc.cpu_times()
            psutil.cpu_percent()
            clock = Clock()
            await teacher_page.click("#start")  # 开始上课
            teacher = ChromiumSender("teacher", teacher_page)
            receivers = [
                ChromiumReceiver(n, p, from_teacher)
                for n, p in zip(kiosk_names, kiosks, strict=True)
            ]
            async for _ in clock.ticks(args.seconds):
                layers, sent, *got = await asyncio.gather(
                    get_json(session, f"{base}/bench/layers"),
                    teacher.snapshot(clock.wall),
                    *(r.snapshot(clock.wall) for r in receivers),
                )
                assert isinstance(sent, SendSnap)
                run.send.append(sent)
                for r, snap in zip(receivers, got, strict=True):
                    assert isinstance(snap, RecvSnap)
                    run.recv[r.name].append(snap)
                if aiortc is not None:
                    for name in aiortc_names:
                        run.recv[name].append(aiortc.snapshot(name, clock.wall))
                for name in run.receiver_names:
                    seen = layers.get(name) or {}
                    run.recv[name][-1].sfu_layer = str(seen.get("layer") or "")
                    run.recv[name][-1].sfu_estimate_bps = seen.get("estimate")
                table.row(
                    send_rows(run.send)[-1],
                    {name: recv_rows(run.recv[name])[-1] for name in run.receiver_names},
                )
            elapsed = time.monotonic() - clock.mono
            cpu1 = cpu_proc.cpu_times()
            machine = psutil.cpu_percent()
            busy = await get_json(session, f"{base}/bench/busy")
            sfu_cores = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / elapsed
            run.extra.update(sfu_cores=sfu_cores, machine_cpu_percent=machine, busy=busy)
            run.notes.append(
                f"SFU process CPU {sfu_cores:.2f} cores; machine CPU {machine:.0f} % of "
                f"{psutil.cpu_count()} cores; event-loop lag mean {busy['lag_mean_ms']:.1f} ms, "
                f"p95 {busy['lag_p95_ms']:.1f} ms, max {busy['lag_max_ms']:.0f} ms"
            )
            if args.busy:
                run.notes.append(
                    f"busy: {busy['achieved']:.2f} of one core of unrelated work in the SFU's "
                    f"event loop (asked {busy['fraction']:.2f})"
                )
            if aiortc is not None:
                for name in aiortc_names:
                    run.exact[name] = (
                        aiortc.exact(name, "first_frame", clock.wall),
                        aiortc.exact(name, "first_hd", clock.wall),
                    )
                run.notes.extend(f"aiortc {p}" for p in aiortc.problems[:5])
                run.notes.extend(
                    f"aiortc freeze {f['name']} at {f['wall'] - clock.wall:.1f} s: "
                    f"{f['gap']:.2f} s without a decoded frame; the SFU's longest send gap "
                    f"in it {f['send_gap']:.2f} s, longest arrival gap {f['arrival_gap']:.2f} s, "
                    f"{f['packets']} packets arrived: {FREEZE_WHERE[f['where']]}; the SFU's "
                    f"event loop stalled up to {1000 * loop_stall(busy, f)[0]:.0f} ms then, "
                    f"on the CPU {1000 * loop_stall(busy, f)[1]:.0f} ms of it"
                    for f in aiortc.freezes
                    if f["wall"] >= clock.wall
                )
                run.extra["aiortc_freezes"] = aiortc.freezes
            message = await teacher_page.text_content("#message")
            if message:
                run.notes.append(f"teacher page says: {message}")
        finally:
            run.notes.extend(page_notes(errors))
            with contextlib.suppress(Exception):
                await post_json(session, f"{base}/bench/busy", {"fraction": 0.0})
            if aiortc is not None:
                procs.stop(aiortc.proc)
            with contextlib.suppress(Exception):
                await browser.close()
    return run


async def drive(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    workdir = Path(tempfile.mkdtemp(prefix="sanke-lesson-quality-"))
    procs = Processes(workdir)
    secret = secrets.token_urlsafe(48)
    env = child_env(secret)
    port = args.port or free_port()
    base = f"http://127.0.0.1:{port}"
    runs: dict[str, Run] = {}
    for line in machine_load():
        print(line)
    ok = False
    try:
        server = procs.spawn("server", ["--serve", "--port", str(port)], env)
        wait_ready(base, server, procs)
        order = ["p2p", "sfu"] if args.order == "p2p-first" else ["sfu", "p2p"]
        async with async_playwright() as pw:
            for kind in order:
                if args.only and kind != args.only:
                    continue
                if kind == "p2p":
                    runs[kind] = await run_p2p(pw, base, args)
                else:
                    runs[kind] = await run_sfu(
                        pw, base, args, TokenService(secret), procs, server, env
                    )
                await asyncio.sleep(2)  # let the CPU settle between the runs
        ok = True
    finally:
        procs.stop_all()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"logs of the server and the aiortc classrooms: {workdir}", file=sys.stderr)
    figures = report(runs, args)
    if args.json:
        dump = {
            "args": vars(args),
            "figures": figures,
            "runs": {
                kind: {
                    "notes": run.notes,
                    "extra": run.extra,
                    "sender": asdict(run.sender()),
                    "receivers": [asdict(r) for r in run.receivers()],
                    "send_samples": [asdict(s) for s in run.send],
                    "send_rows": [asdict(r) for r in send_rows(run.send)],
                    "recv_samples": {n: [asdict(s) for s in v] for n, v in run.recv.items()},
                    "recv_rows": {
                        n: [asdict(r) for r in recv_rows(v)] for n, v in run.recv.items()
                    },
                }
                for kind, run in runs.items()
            },
        }
        Path(args.json).write_text(json.dumps(dump, indent=1, default=str), encoding="utf-8")
        print(f"samples written to {args.json}")
    print(result_line(figures, args.busy))


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--classrooms", type=int, default=3, help="classrooms (first 2 Chromium)")
    p.add_argument("--seconds", type=float, default=60.0, help="length of each run")
    p.add_argument("--busy", action="store_true", help="~50 %% of a core of work in the SFU loop")
    p.add_argument("--busy-fraction", type=float, default=0.5, help=argparse.SUPPRESS)
    p.add_argument("--only", choices=["sfu", "p2p"], help="one run only (for debugging)")
    p.add_argument("--order", choices=["p2p-first", "sfu-first"], default="p2p-first")
    p.add_argument(
        "--p2p-codec",
        choices=["h264", "vp8", "any"],
        default="h264",
        help="codec the baseline prefers (the SFU prefers H264)",
    )
    p.add_argument("--json", default="", help="write every sample and the summary here")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--receivers", default="", help=argparse.SUPPRESS)
    p.add_argument("specs", nargs="*", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        asyncio.run(serve(args.port))
    elif args.receivers:
        asyncio.run(receivers(args.receivers, args.specs))
    else:
        if args.classrooms < 1:
            p.error("--classrooms must be at least 1")
        if not args.busy:
            args.busy_fraction = 0.0
        with interrupt_on_sigterm():
            try:
                asyncio.run(drive(args))
            except KeyboardInterrupt:
                print("interrupted: every process and browser stopped", file=sys.stderr)
                sys.exit(130)


if __name__ == "__main__":
    main()
