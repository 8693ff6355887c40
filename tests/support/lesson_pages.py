"""A lesson in real Chromium pages: a teacher publishing, classrooms receiving, and what
each page's getStats() says, sampled inside the page every 250 ms.

The pages use the product's client (``/web/js/sfu-client.js``) with the teacher console's
settings (two layers, 1280x720 camera). The camera can be a file (``detailed_camera``): the
fake device's own pattern compresses to ~450 kbps at 720p; a detailed moving picture fills
the 2.5 Mbps the high layer allows, as a real camera does, which is what a weak link must
carry. (Sensor-like noise is too much: OpenH264's quality scaler then settles at 960x540.)
"""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support.browser import CHROMIUM, CHROMIUM_ARGS

PUBLISH = """async ([token, width, height, frameRate]) => {
  const m = await import('/web/js/sfu-client.js');
  const ws = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const c = new m.SfuClient({ wsUrl: ws, token, publish: true, layers: true,
                              keepResolution: true,  // as the teacher console publishes
                              videoConstraints: { width, height, frameRate } });
  window.client = c;
  try { await c.start(); } catch (e) { return 'failed: ' + (e.code || e.message || e); }
  return await c.mediaReady;
}"""

RECEIVE = """async ([token]) => {
  const m = await import('/web/js/sfu-client.js');
  const ws = (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  const c = new m.SfuClient({ wsUrl: ws, token, onTrack: (e) => {
    const el = document.createElement(e.track.kind);
    el.autoplay = true; el.muted = true; el.srcObject = new MediaStream([e.track]);
    document.body.appendChild(el);
  } });
  window.client = c;
  try { await c.start(); } catch (e) { return 'failed: ' + (e.code || e.message || e); }
  return await c.mediaReady;
}"""

# Every 250 ms: the received video (the largest inbound video stream) and what is sent.
SAMPLER = """() => {
  window.samples = [];
  window.sampler = setInterval(async () => {
    const pc = window.client && window.client.pc;
    if (!pc) return;
    const s = { t: performance.now() / 1000, inHeight: 0, inWidth: 0, frames: 0, inBytes: 0,
                freezes: 0, freezeSeconds: 0, outBytes: 0, outHigh: 0, outHighBytes: 0,
                limitation: '', available: 0, target: 0 };
    const report = await pc.getStats();
    let pairId;  // the selected pair: several can be nominated, only it carries the estimate
    report.forEach((r) => { if (r.type === 'transport' && r.selectedCandidatePairId) pairId = r.selectedCandidatePairId; });
    report.forEach((r) => {
      if (r.type === 'inbound-rtp' && r.kind === 'video' && (r.framesDecoded || 0) >= s.frames) {
        Object.assign(s, { inHeight: r.frameHeight || 0, inWidth: r.frameWidth || 0,
          frames: r.framesDecoded || 0, inBytes: r.bytesReceived || 0,
          freezes: r.freezeCount || 0, freezeSeconds: r.totalFreezesDuration || 0 });
      }
      if (r.type === 'candidate-pair' && (pairId ? r.id === pairId : r.nominated)) s.available = r.availableOutgoingBitrate || 0;
      if (r.type === 'outbound-rtp') {
        s.outBytes += r.bytesSent || 0;
        if (r.kind === 'video' && (r.frameHeight || 0) >= s.outHigh) {
          s.outHigh = r.frameHeight || 0; s.outHighBytes = r.bytesSent || 0;
          s.limitation = r.qualityLimitationReason || ''; s.target = r.targetBitrate || 0;
        }
      }
    });
    window.samples.push(s);
    if (window.samples.length > 2400) window.samples.shift();
  }, 250);
}"""


def detailed_camera(directory: Path) -> Path:
    """A 4 s 1280x720 30 fps Motion-JPEG loop of a moving test picture (with the JPEG's own
    fine texture), for Chromium's ``--use-file-for-fake-video-capture``: 720p at ~2.5 Mbps."""
    path = directory / "camera-720p.mjpeg"
    if not path.exists():
        subprocess.run(
            [
                "ffmpeg", "-v", "error", "-y", "-f", "lavfi",
                "-i", "testsrc2=size=1280x720:rate=30",
                "-t", "4", "-q:v", "5",
                "-f", "mjpeg", str(path),
            ],
            check=True,
            timeout=120,
        )  # fmt: skip
    return path


def chromium_args(camera: Path | None = None, secure_origin: str | None = None) -> list[str]:
    args = list(CHROMIUM_ARGS)
    if camera is not None:
        args.append(f"--use-file-for-fake-video-capture={camera}")
    if secure_origin is not None:
        # getUserMedia needs a secure context; a test origin on a veth address is plain http.
        args.append(f"--unsafely-treat-insecure-origin-as-secure={secure_origin}")
    return args


async def launch(pw: Any, *, executable: str = CHROMIUM, **kw: Any) -> Any:
    return await pw.chromium.launch(executable_path=executable, args=chromium_args(**kw))


@dataclass
class Sample:
    t: float
    in_height: int
    frames: int
    in_bytes: int
    freezes: int
    freeze_seconds: float
    out_bytes: int
    out_high: int
    out_high_bytes: int
    limitation: str
    available: float
    target: float


class LessonPage:
    """One page of the lesson (teacher or classroom) and its sampled stats."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.participant_id = ""

    @classmethod
    async def open(cls, browser: Any, origin: str) -> LessonPage:
        page = await browser.new_page()
        await page.goto(f"{origin}/web/index.html")
        return cls(page)

    async def publish(
        self, token: str, width: int = 1280, height: int = 720, frame_rate: int = 30
    ) -> None:
        result = await self.page.evaluate(PUBLISH, [token, width, height, frame_rate])
        assert result == "ok", result
        await self._started()

    async def receive(self, token: str) -> None:
        result = await self.page.evaluate(RECEIVE, [token])
        assert result == "ok", result
        await self._started()

    async def _started(self) -> None:
        self.participant_id = await self.page.evaluate("window.client.participantId")
        await self.page.evaluate(SAMPLER)

    async def samples(self) -> list[Sample]:
        raw = await self.page.evaluate("window.samples")
        return [
            Sample(
                t=r["t"],
                in_height=r["inHeight"],
                frames=r["frames"],
                in_bytes=r["inBytes"],
                freezes=r["freezes"],
                freeze_seconds=r["freezeSeconds"],
                out_bytes=r["outBytes"],
                out_high=r["outHigh"],
                out_high_bytes=r["outHighBytes"],
                limitation=r["limitation"],
                available=r["available"],
                target=r["target"],
            )
            for r in raw
        ]

    async def now(self) -> float:
        t: float = await self.page.evaluate("performance.now() / 1000")
        return t

    async def video_inbound(self) -> list[dict[str, Any]]:
        """Every video ``inbound-rtp`` record of the page's connection, whole (for a failure's
        message: packets lost, NACKs and PLIs sent, frames received, dropped and decoded)."""
        found: list[dict[str, Any]] = await self.page.evaluate(
            """async () => {
              const out = [];
              (await window.client.pc.getStats()).forEach((r) => {
                if (r.type === 'inbound-rtp' && r.kind === 'video') out.push(r);
              });
              return out;
            }"""
        )
        return found

    async def latest(self) -> Sample | None:
        got = await self.samples()
        return got[-1] if got else None


def window(samples: list[Sample], start: float, end: float | None = None) -> list[Sample]:
    return [s for s in samples if s.t >= start and (end is None or s.t <= end)]


def stalls(samples: list[Sample], over: float = 1.0) -> list[tuple[float, float]]:
    """(when it began, how long) for each time no frame was decoded for over ``over`` s."""
    found: list[tuple[float, float]] = []
    since: float | None = None
    for prev, cur in itertools.pairwise([*samples, None]):
        if cur is not None and cur.frames == prev.frames:
            since = prev.t if since is None else since
            continue
        if since is not None and prev.t - since > over:
            found.append((round(since, 2), round(prev.t - since, 2)))
        since = None
    return found


def longest_stall(samples: list[Sample]) -> float:
    """The longest time no new frame was decoded (seconds, to the 250 ms sample)."""
    longest, since = 0.0, None
    for prev, cur in itertools.pairwise(samples):
        if cur.frames == prev.frames:
            since = prev.t if since is None else since
            longest = max(longest, cur.t - since)
        else:
            since = None
    return longest


def freezes(samples: list[Sample]) -> list[tuple[float, float]]:
    """(when it ended, how long) for each freeze Chromium counted, to the 250 ms sample."""
    return [
        (round(cur.t, 2), round(cur.freeze_seconds - prev.freeze_seconds, 3))
        for prev, cur in itertools.pairwise(samples)
        if cur.freezes > prev.freezes
    ]


def longest_freeze(samples: list[Sample]) -> float:
    """The longest freeze Chromium counted (webrtc-stats: a gap between rendered frames
    over max(3 x the mean interval, mean + 150 ms)), from its freezeCount and
    totalFreezesDuration; two freezes ending within one 250 ms sample count as one."""
    longest = 0.0
    for prev, cur in itertools.pairwise(samples):
        if cur.freezes > prev.freezes:
            longest = max(longest, cur.freeze_seconds - prev.freeze_seconds)
    return longest


def rate_kbps(samples: list[Sample], field: str) -> float:
    """The mean rate of a byte counter over the samples."""
    if len(samples) < 2 or samples[-1].t <= samples[0].t:
        return 0.0
    delta = getattr(samples[-1], field) - getattr(samples[0], field)
    return float(delta) * 8 / 1000 / (samples[-1].t - samples[0].t)


def frame_rate(samples: list[Sample]) -> float:
    """Frames decoded per second over the samples (what the classroom's screen shows)."""
    if len(samples) < 2 or samples[-1].t <= samples[0].t:
        return 0.0
    return (samples[-1].frames - samples[0].frames) / (samples[-1].t - samples[0].t)


async def wait_until(predicate: Any, timeout: float, step: float = 0.25) -> float | None:
    """Seconds until ``await predicate()`` held, None if it did not within ``timeout``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if await predicate():
            return time.monotonic() - start
        await asyncio.sleep(step)
    return None
