"""What the SFU sends to one subscriber: transport-cc, the downlink estimate, pacing, probes.

When the subscriber's answer accepts transport-cc on the SFU's m-lines (Chromium does),
every packet the SFU sends on the transport gets a transport-wide sequence number and is
remembered (:class:`~media.bwe.SendSideEstimator`); the feedback the subscriber sends
gives the estimate the layer choice uses. The SFU's own sending must not cause the loss
it then reacts to: video (and its retransmissions) leaves through a pacer at 2.5 × the
estimate, so a keyframe's burst is spread instead of overflowing a classroom's queue;
audio is never held back. Going up a layer needs evidence the link carries it: a
**probe** — a short cluster of RTX retransmissions of packets the subscriber already has
(or RTX padding) sent at a chosen rate — whose arrival spread the estimator measures.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import struct
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import RTCPeerConnection, RTCRtpSender, RTCRtpTransceiver
from aiortc.sdp import SessionDescription

from media import aiortc_seams as seams
from media.bwe import SendSideEstimator
from media.transport_cc import FMT_TRANSPORT_CC, RTCP_RTPFB, parse_feedback, stamp_sequence

log = logging.getLogger(__name__)

PACING_FACTOR = 2.5  # libwebrtc's: the pacer may send 2.5 x the estimate
PACING_BURST_S = 0.02  # the pacer lets this much (at its rate) go at once
PROBE_MS = 40  # a probe cluster lasts at least this ...
PROBE_PACKETS = 6  # ... and has at least this many packets
PROBE_STEP = 2.0  # a probe asks for at most this x the estimate (+ PROBE_MIN_STEP_BPS)
PROBE_MIN_STEP_BPS = 300_000
PROBE_VERDICT_S = 0.6  # feedback on a probe arrives within this (100 ms interval + RTT)
PROBE_BACKOFF_S = 2.0  # after a failed probe; doubles up to PROBE_MAX_BACKOFF_S
PROBE_MAX_BACKOFF_S = 8.0
INITIAL_PROBE_BPS = 3_000_000  # what the first probe asks for (the high layer's cap + margin)
RECENT_PACKETS = 32  # video packets remembered per stream as probe material
# Layers follow a fall of the estimate once it has lasted this long: GCC cuts its estimate
# on one overuse signal, and a transient queue (a busy classroom PC) must not switch a
# lesson from 720p to 180p and back. A fall to below DOWN_SEVERE of the recent peak, or
# loss above DOWN_LOSS, is followed at once (a link that really got smaller).
DOWN_HOLD_S = 1.0
DOWN_SEVERE = 0.5
DOWN_LOSS = 0.1

_probe_cluster: contextvars.ContextVar[int | None] = contextvars.ContextVar(
    "probe_cluster", default=None
)


class FallHold:
    """Follows a rising estimate at once and a falling one after DOWN_HOLD_S: the highest
    estimate of that window, unless the estimate now is below DOWN_SEVERE of it or the
    link loses more than DOWN_LOSS."""

    def __init__(self) -> None:
        self._recent: deque[tuple[float, float]] = deque(maxlen=256)

    def clear(self) -> None:
        self._recent.clear()

    def update(self, now: float, estimate: float, loss: float) -> float:
        recent = self._recent
        recent.append((now, estimate))
        while recent and now - recent[0][0] > DOWN_HOLD_S:
            recent.popleft()
        peak = max(v for _, v in recent)
        if estimate < DOWN_SEVERE * peak or loss > DOWN_LOSS:
            return estimate
        return peak


class _Stream:
    """One consumer sender's stream as the pacer and the prober see it."""

    def __init__(self, sender: RTCRtpSender, kind: str) -> None:
        self.sender = sender
        self.kind = kind
        self.recent: deque[tuple[int, int]] = deque(maxlen=RECENT_PACKETS)  # (seq, size)
        self.timestamp = 0


class DownlinkControl:
    def __init__(self, pc: RTCPeerConnection, on_estimate: Callable[[], None]) -> None:
        self.pc = pc
        self.ext_id: int | None = None
        self.estimator = SendSideEstimator()
        self.feedback_received = 0
        self.probes_sent = 0
        self.closed = False
        self._on_estimate = on_estimate
        self._dtls: Any = None
        self._seq = 0
        self._streams: dict[int, _Stream] = {}  # by SSRC (media and RTX)
        self._tokens = 0.0
        self._tokens_at = time.monotonic()
        self._reported_bps: float | None = None
        self._probe_task: asyncio.Task[None] | None = None
        self._next_probe_at = 0.0
        self._backoff = PROBE_BACKOFF_S
        self._cluster = 0
        self._fall_hold = FallHold()

    @property
    def active(self) -> bool:
        """Transport-cc is negotiated and the subscriber's feedback arrives."""
        return self.ext_id is not None and self.feedback_received > 0

    def estimate_bps(self) -> float | None:
        """The downlink estimate; None while unknown (no transport-cc, or no evidence yet)."""
        if not self.active or not self.estimator.initialized:
            return None
        return self.estimator.target_bps()

    def allocation_estimate_bps(self) -> float | None:
        """The estimate the layers are chosen from (see ``FallHold``)."""
        current = self.estimate_bps()
        if current is None:
            self._fall_hold.clear()
            return None
        return self._fall_hold.update(time.monotonic(), current, self.estimator.loss_fraction)

    # --- negotiation --------------------------------------------------------------------

    def negotiated(self, answer_sdp: str, consumers: list[RTCRtpTransceiver]) -> None:
        """After the subscriber's answer: keep transport-cc on the m-lines it accepted it for
        (aiortc's own intersection drops it) and start stamping what the SFU sends."""
        media = SessionDescription.parse(answer_sdp).media
        for t in consumers:
            index = t._get_mline_index()
            if index is None or index >= len(media):
                continue
            seams.answer_transport_cc(t, media[index])
            ext = seams.negotiated_transport_cc(t)
            if ext is not None:
                self.ext_id = ext
        self.set_streams(consumers)
        if self.ext_id is None or not consumers:
            return
        dtls = seams.transport_of(consumers[0])
        if dtls is not self._dtls:
            self._dtls = dtls
            seams.hook_transport_send(dtls, self)
            seams.observe_transport_rtcp(dtls, self._on_rtcp)

    def set_streams(self, consumers: list[RTCRtpTransceiver]) -> None:
        streams: dict[int, _Stream] = {}
        for t in consumers:
            sender = t.sender
            old = self._streams.get(seams.sender_ssrc(sender))
            stream = old if old is not None and old.sender is sender else _Stream(sender, t.kind)
            streams[seams.sender_ssrc(sender)] = stream
            streams[int(sender._rtx_ssrc)] = stream
        self._streams = streams

    # --- sending ------------------------------------------------------------------------

    # The transport's send hooks (seams.SendHooks): every packet the SFU sends to this
    # subscriber, by aiortc or by a consumer's fast sender, goes through both.

    def delay(self, data: bytes) -> float:
        """How long the pacer holds this packet back (its budget is taken now): video and
        its retransmissions only, never audio, RTCP or a probe."""
        if self.ext_id is None or len(data) < 12 or 192 <= data[1] <= 223:
            return 0.0
        if _probe_cluster.get() is not None:
            return 0.0
        stream = self._streams.get(struct.unpack_from("!I", data, 8)[0])
        if stream is None or stream.kind != "video":
            return 0.0
        return self._pace(len(data))

    def stamp(self, data: bytes) -> bytes:
        """The packet with its transport-wide sequence number, remembered for the estimate."""
        if self.ext_id is None or len(data) < 12 or 192 <= data[1] <= 223:
            return data  # RTCP, or nothing negotiated
        cluster = _probe_cluster.get()
        ssrc = struct.unpack_from("!I", data, 8)[0]
        stream = self._streams.get(ssrc)
        if (
            stream is not None
            and stream.kind == "video"
            and ssrc == seams.sender_ssrc(stream.sender)
        ):
            stream.recent.append((struct.unpack_from("!H", data, 2)[0], len(data)))
            stream.timestamp = struct.unpack_from("!I", data, 4)[0]
        seq = self._seq & 0xFFFF
        self._seq += 1
        stamped = stamp_sequence(data, self.ext_id, seq)
        self.estimator.on_sent(seq, time.monotonic_ns() // 1000, len(stamped), cluster)
        return stamped

    def _pace(self, size: int) -> float:
        estimate = self.estimate_bps()
        if estimate is None:
            return 0.0
        rate = estimate * PACING_FACTOR / 8  # bytes per second
        now = time.monotonic()
        burst = max(rate * PACING_BURST_S, 3 * 1200)
        self._tokens = min(burst, self._tokens + (now - self._tokens_at) * rate)
        self._tokens_at = now
        self._tokens -= size
        return -self._tokens / rate if self._tokens < 0 else 0.0

    # --- feedback -----------------------------------------------------------------------

    def _on_rtcp(self, data: bytes) -> None:
        pos = 0
        changed = False
        while pos + 4 <= len(data):
            length = 4 * (struct.unpack_from("!H", data, pos + 2)[0] + 1)
            if data[pos + 1] == RTCP_RTPFB and data[pos] & 0x1F == FMT_TRANSPORT_CC:
                try:
                    feedback = parse_feedback(data[pos : pos + length])
                except ValueError:
                    log.debug("dropping a malformed transport-cc feedback")
                else:
                    self.feedback_received += 1
                    self.estimator.on_feedback(feedback, time.monotonic_ns() // 1000)
                    changed = True
            pos += length
        if changed:
            self._estimate_changed()

    def _estimate_changed(self) -> None:
        value = self.estimator.target_bps()
        last = self._reported_bps
        if last is None or value < 0.9 * last or value > 1.15 * last:
            self._reported_bps = value
            self._on_estimate()

    # --- probes -------------------------------------------------------------------------

    def want(self, target_bps: float | None) -> None:
        """The layer choice would use ``target_bps`` if the link carried it: probe for it
        when no probe runs and the last failure's back-off has passed."""
        if target_bps is None or self.ext_id is None or self.closed or self._dtls is None:
            return
        if self._probe_task is not None and not self._probe_task.done():
            return
        now = time.monotonic()
        if now < self._next_probe_at:
            return
        estimate = self.estimator.target_bps()
        if not self.estimator.initialized:
            rate = max(target_bps, INITIAL_PROBE_BPS)
        elif target_bps <= estimate:
            return
        else:
            rate = min(target_bps, max(PROBE_STEP * estimate, estimate + PROBE_MIN_STEP_BPS))
        self._probe_task = asyncio.get_running_loop().create_task(self._probe(rate))

    async def _probe(self, rate_bps: float) -> None:
        self._cluster += 1
        cluster = self._cluster
        try:
            sent = await self._send_cluster(cluster, rate_bps)
        except Exception:
            log.debug("probe failed to send", exc_info=True)
            sent = False
        if not sent:
            self._next_probe_at = time.monotonic() + self._backoff
            return
        self.probes_sent += 1
        await asyncio.sleep(PROBE_VERDICT_S)
        result = dict(self.estimator.probe_results).get(cluster)
        if result is not None and result >= 0.8 * rate_bps:
            self._backoff = PROBE_BACKOFF_S
            self._next_probe_at = 0.0
        else:
            self._next_probe_at = time.monotonic() + self._backoff
            self._backoff = min(self._backoff * 2, PROBE_MAX_BACKOFF_S)
        self._estimate_changed()

    async def _send_cluster(self, cluster: int, rate_bps: float) -> bool:
        material = [
            (s, seq, size)
            for ssrc, s in self._streams.items()
            if s.kind == "video" and ssrc == seams.sender_ssrc(s.sender)
            for seq, size in s.recent
        ]
        padding_streams = [s for s in self._streams.values() if s.kind == "video"]
        if not material and not padding_streams:
            return False
        budget = max(rate_bps * PROBE_MS / 8000, PROBE_PACKETS * 1000)
        token = _probe_cluster.set(cluster)
        try:
            start = time.monotonic()
            sent = 0
            k = 0
            while sent < budget and not self.closed:
                due = start + sent * 8 / rate_bps
                delay = due - time.monotonic()
                if delay > 0.002:
                    await asyncio.sleep(delay)
                if material:
                    stream, seq, size = material[k % len(material)]
                    await seams.retransmit(stream.sender, seq)
                else:
                    stream = padding_streams[k % len(padding_streams)]
                    size = 255
                    if not await seams.send_padding(stream.sender, size, stream.timestamp):
                        return False
                sent += size
                k += 1
        finally:
            _probe_cluster.reset(token)
        return True

    def close(self) -> None:
        self.closed = True
        if self._probe_task is not None:
            self._probe_task.cancel()
