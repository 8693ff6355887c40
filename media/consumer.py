"""A Consumer: what one subscriber receives of one source participant's audio or video.

A video consumer follows one of the source's video producers (its layer) and switches to
another only at a keyframe of that layer. Frames wait in a small bounded queue for the
aiortc sender; a consumer that falls behind drops the queue and waits for the next keyframe
(and asks for one) instead of buffering.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiortc import RTCRtpSender, RTCRtpTransceiver
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from aiortc.rtcrtpparameters import RTCRtpCodecCapability

from contracts.layers import ReceivedLayer
from media import aiortc_seams as seams
from media.frame_clock import FrameClock
from media.frame_rate import best_layer
from media.frames import EncodedFrame, h264_rtp_has_parameter_sets
from media.instruments import TIME_TO_FIRST_FRAME
from media.layers import Estimate, LayerChooser
from media.origin import CLOCK_RATE
from media.producer import Producer
from media.stats import ConsumerStats

MAX_QUEUE = {"audio": 25, "video": 30}  # frames (~0.5 s of audio, ~1 s of video)
# Retransmissions: a packet is resent at most once per 1.2 round trips (at least 50 ms),
# and at most the consumer's own rate (at least 8 packets/s, bursts of half a second):
# on a link whose losses come from congestion, resending everything asked for is what
# keeps it congested (libwebrtc caps retransmissions by its estimate too).
RTX_SPACING_MIN = 0.05
RTX_SHARE = 1.0
RTX_MIN_PPS = 8.0
RTX_PACKET_BYTES = 1000  # for turning a bitrate into packets
RESENT_MEMORY = 512
TS_STEP = {"audio": 960, "video": 3000}  # one frame, at 48 kHz / 90 kHz
# A consumer still waiting for a keyframe this long asks again, on a timer of its own: a
# classroom moved to the low layer because the high one lost frames shows a frozen picture
# until that keyframe comes, and one lost on the teacher's congested uplink was asked for
# again only at the router's next one-second round (measured: 1.4 s frozen). Not sooner
# than the producer's PLI interval, which would hold the request back anyway.
KEYFRAME_RETRY = 0.5


class ConsumerTrack(MediaStreamTrack):
    """What the consumer's sender sends from: already-encoded, already-packetized frames.

    The SFU's senders are fast senders (``seams.FastSender``): they set ``on_ready`` and
    ``poll`` each frame as soon as it is queued. ``recv`` serves an aiortc sender's own loop.
    """

    def __init__(self, consumer: Consumer) -> None:
        super().__init__()
        self.kind = consumer.kind
        self.on_ready: Callable[[], None] | None = None
        self._consumer = consumer
        self._waiter: asyncio.Future[None] | None = None

    def wake(self) -> None:
        if self.on_ready is not None:
            self.on_ready()
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def poll(self) -> seams.OutFrame | None:
        """The next frame to send, None when none is queued (MediaStreamError once stopped)."""
        if self.readyState != "live":
            raise MediaStreamError
        c = self._consumer
        if not c.started:
            c.start()
        if not c.queue:
            return None
        producer, frame = c.queue.popleft()
        if frame.keyframe and c.transceiver is not None:
            # the sender asks for the next frame once the last one's packets are all out
            c.keyframe_seq = seams.sender_next_sequence(c.transceiver.sender)
        return seams.OutFrame(frame.payloads, c.rebase(producer, frame))

    async def recv(self) -> Any:
        while True:
            frame = self.poll()
            if frame is not None:
                return frame
            self._waiter = asyncio.get_running_loop().create_future()
            await self._waiter

    def stop(self) -> None:
        super().stop()
        self.wake()


class Consumer:
    def __init__(
        self, subscriber_id: str, source_id: str, kind: str, source: str | None = None
    ) -> None:
        self.subscriber_id = subscriber_id
        self.source_id = source_id
        self.kind = kind
        self.source = source or ("microphone" if kind == "audio" else "camera")
        self.id = f"{subscriber_id}<{source_id}/{self.key[1]}"
        self.track = ConsumerTrack(self)
        self.transceiver: RTCRtpTransceiver | None = None
        self.producers: dict[str, Producer] = {}
        self.queue: deque[tuple[Producer, EncodedFrame]] = deque()
        self.started = False
        self.paused = True
        self.closed = False
        self.pinned: ReceivedLayer | None = None
        # video: the layer being forwarded and the one wanted ("audio": no video)
        self.layer: str = "main" if kind == "audio" else "audio"
        self.target: str = self.layer
        self.need_keyframe = kind == "video"
        self._initialized = False
        self._max = MAX_QUEUE[kind]
        self._src: Producer | None = None
        self._offset = 0
        self._last_out: int | None = None
        self.remb_bps: float | None = None
        self.estimate = Estimate()
        self.chooser = LayerChooser()
        self.fraction_lost = 0
        self.fraction_lost_at = -math.inf
        self.frames_sent = self.keyframes_sent = self.frames_dropped = 0
        self.layer_switches = self.nacks = self.plis = self.firs = 0
        self.clock = FrameClock()
        self.created_at = time.monotonic()
        self._resent: dict[int, float] = {}
        # Packets sent before the last layer switch are not worth resending: the
        # subscriber decodes from the new layer's keyframe on.
        self._rtx_floor: int | None = None
        self._rtx_tokens = RTX_MIN_PPS
        self._rtx_at = self.created_at
        self.retransmissions = self.retransmissions_refused = 0
        self._asked_at = -math.inf  # when a keyframe was last asked for
        self._retry: asyncio.TimerHandle | None = None
        # the first packet of the newest keyframe sent (None: not known), and how often a
        # lost parameter set made the consumer start again at a new keyframe
        self.keyframe_seq: int | None = None
        self.rekeys = 0

    @property
    def key(self) -> tuple[str, str]:
        """Its key in the subscriber's consumers: (source participant, audio | video | screen)."""
        return (self.source_id, "screen" if self.source == "screen" else self.kind)

    # --- wiring -----------------------------------------------------------------

    def set_producers(self, producers: dict[str, Producer]) -> None:
        for p in self.producers.values():
            if p not in producers.values() and self in p.sinks:
                p.sinks.remove(self)
        self.producers = dict(producers)
        for p in producers.values():
            if self not in p.sinks:
                p.sinks.append(self)
        if self.kind != "video" or not producers:
            return
        best = best_layer({layer: p.slideshow for layer, p in producers.items()})
        if self.target != "audio" and self.target not in producers:
            self.set_target(best)
        elif not self._initialized:
            self.set_target(self.pinned or best)
        self._initialized = True

    def set_paused(self, paused: bool) -> None:
        if paused == self.paused:
            return
        self.paused = paused
        if paused:
            self.queue.clear()
        elif self.kind == "video":
            self.need_keyframe = True
            self._request_keyframe()

    def start(self) -> None:
        """The sender pulled for the first time: start at a keyframe."""
        self.started = True
        self.need_keyframe = self.kind == "video"
        self._request_keyframe()

    def set_target(self, layer: str) -> None:
        if self.kind != "video" or layer == self.target:
            return
        self.target = layer
        if layer == "audio":
            self.layer = "audio"
            self.queue.clear()
        elif layer in self.producers:
            self._request_keyframe()

    def _request_keyframe(self) -> None:
        p = self.producers.get(self.target)
        if p is not None and not self.paused:
            self._asked_at = time.monotonic()
            p.request_keyframe()
            if self._retry is not None:
                self._retry.cancel()
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (a unit test driving it by hand): no timer
                return
            self._retry = loop.call_later(KEYFRAME_RETRY, self.ask_again)

    def ask_again(self, now: float | None = None) -> None:
        """Still waiting for a keyframe (to start, resume or switch) KEYFRAME_RETRY after
        asking: ask again. A request can come to nothing: a keyframe that arrives before
        the sender starts is not forwarded, Chromium ignores a request within 300 ms of
        the last one, and a keyframe can be lost upstream (measured: a classroom that
        joined got no picture for good in 2 of 8 starts when the requests were 300 ms
        apart)."""
        now = time.monotonic() if now is None else now
        waiting = self.need_keyframe or self.layer != self.target
        if (
            self.kind == "video"
            and self.started
            and not self.paused
            and not self.closed
            and self.target != "audio"
            and waiting
            and now - self._asked_at >= 0.9 * KEYFRAME_RETRY  # a timer may fire a hair early
        ):
            self._request_keyframe()

    # --- the forwarding path (called for every frame of every producer) ----------

    def on_frame(self, producer: Producer, frame: EncodedFrame) -> None:
        if not self.started or self.paused:
            return
        layer = producer.layer
        if layer != self.layer:
            if layer != self.target or not frame.keyframe:
                return
            if self.layer != "audio" or self.frames_sent:
                self.layer_switches += 1
                if self.transceiver is not None:
                    self._rtx_floor = seams.sender_next_sequence(self.transceiver.sender)
            self.layer = layer
            self.need_keyframe = False
            self.queue.clear()
        elif self.need_keyframe:
            if not frame.keyframe:
                return
            self.need_keyframe = False
        if len(self.queue) >= self._max:
            if self.kind == "video":  # fell behind: drop to the next keyframe
                self.frames_dropped += len(self.queue) + (0 if frame.keyframe else 1)
                self.queue.clear()
                if not frame.keyframe:
                    self.need_keyframe = True
                    producer.request_keyframe()
                    return
            else:
                self.queue.popleft()
                self.frames_dropped += 1
        self.queue.append((producer, frame))
        if self.frames_sent == 0 and self.kind == "video":
            TIME_TO_FIRST_FRAME.observe(time.monotonic() - self.created_at)
        self.frames_sent += 1
        self.clock.tick()
        if frame.keyframe and self.kind == "video":
            self.keyframes_sent += 1
        self.track.wake()

    def on_gap(self, producer: Producer) -> None:
        """The producer lost frames: what follows cannot be decoded before a keyframe. A
        layer that still flows takes over at once (the small one's keyframe gets through a
        congested publisher uplink far sooner than the big one's)."""
        if self.kind != "video" or not self.started or producer.layer != self.layer:
            return
        self.need_keyframe = True
        # Another layer takes over only if it is better off: one that lost nothing lately,
        # or a smaller one (never a bigger one that is losing frames too).
        others = [
            p
            for layer, p in self.producers.items()
            if layer != producer.layer
            and p.flowing()
            and not p.slideshow.active
            and self.pinned in (None, layer)
            and (not p.broken() or p.bitrate_bps < producer.bitrate_bps)
        ]
        if others:  # the healthiest, then the smallest: its keyframe is the first through
            fallback = min(others, key=lambda p: (p.broken(), p.bitrate_bps))
            self.set_target(fallback.layer)

    def on_cut(self, producer: Producer) -> None:
        """The producer dropped a frame its publisher cut short: resume at a keyframe (no
        fallback to another layer: nothing was lost, and a keyframe is normally next)."""
        if self.kind == "video" and self.started and producer.layer == self.layer:
            self.need_keyframe = True

    def wants(self, producer: Producer) -> bool:
        """This consumer forwards, or is switching to, ``producer``'s layer. A layer it is
        leaving after losing frames is not wanted: its keyframe would be asked for on the
        congested uplink that broke it, ahead of the target's (measured: a capped teacher's
        19 KB high keyframe asked for three times while the classroom waited 0.9 s frozen
        for the 1.5 KB low one)."""
        if self.paused or self.closed or self.kind != producer.kind:
            return False
        if producer.layer == self.target:
            return True
        return producer.layer == self.layer and not (
            self.need_keyframe and self.target != self.layer
        )

    def rebase(self, producer: Producer, frame: EncodedFrame) -> int:
        """RTP timestamp for the subscriber: continuous across layer switches."""
        if producer is not self._src:
            if self._last_out is None:
                self._offset = -frame.timestamp
            else:
                self._offset = self._last_out + TS_STEP[self.kind] - frame.timestamp
            self._src = producer
        out = (frame.timestamp + self._offset) & 0xFFFFFFFF
        self._last_out = out
        return out

    # --- RTCP from the subscriber ----------------------------------------------

    def on_rtcp(self, event: seams.RtcpEvent) -> None:
        if event.kind in ("pli", "fir"):
            if event.kind == "pli":
                self.plis += 1
            else:
                self.firs += 1
            p = self.producers.get(self.layer)
            if p is not None:
                p.request_keyframe()
        elif event.kind == "nack":
            self.nacks += event.nacks
        elif event.kind == "rr":
            self.fraction_lost = event.fraction_lost
            self.fraction_lost_at = time.monotonic()
            self.estimate.on_loss(event.fraction_lost, self.sending_bps())

    def filter_nack(self, lost: list[int]) -> list[int]:
        """Which NACKed packets to resend now (see RTX_SPACING_MIN and RTX_SHARE)."""
        self._rekey_if_parameter_sets_lost(lost)
        now = time.monotonic()
        rtt = seams.sender_rtt(self.transceiver.sender) if self.transceiver else None
        spacing = max(RTX_SPACING_MIN, 1.2 * (rtt or 0.1))
        rate = max(RTX_MIN_PPS, RTX_SHARE * self.sending_bps() / (8 * RTX_PACKET_BYTES))
        self._rtx_tokens = min(rate / 2, self._rtx_tokens + (now - self._rtx_at) * rate)
        self._rtx_at = now
        resend: list[int] = []
        floor = self._rtx_floor
        # Newest first: the packets of the picture being decoded matter before older ones.
        for seq in reversed(lost):  # NACKs list them oldest first
            if floor is not None and (floor - seq) & 0xFFFF < 0x8000 and seq != floor:
                continue  # before the layer switch
            last = self._resent.get(seq)
            if last is not None and now - last < spacing:
                continue  # the copy sent a moment ago may still be on its way
            if self._rtx_tokens < 1:
                self.retransmissions_refused += 1
                continue
            self._rtx_tokens -= 1
            self._resent[seq] = now
            resend.append(seq)
        if len(self._resent) > RESENT_MEMORY:
            for seq in sorted(self._resent, key=self._resent.__getitem__)[: RESENT_MEMORY // 2]:
                del self._resent[seq]
        self.retransmissions += len(resend)
        return resend

    def _rekey_if_parameter_sets_lost(self, lost: list[int]) -> None:
        """The subscriber lost the packet with the SPS/PPS of the keyframe it decodes from:
        start again at a new keyframe. Chromium's packet buffer hands out an H264 IDR whose
        parameter-set packet is missing (it takes the frame to begin where the gap ends),
        its decoder then decodes that IDR and every frame after it with the parameter sets
        it had: after a switch to low, the old layer's 1280x720 SPS, a garbage picture
        reported as 720p until the next keyframe, which a Chromium publisher sends only
        when asked (measured: one such packet lost left a classroom so for good). The
        retransmission comes after that frame went to the decoder, so only a keyframe
        mends it; the frames until then are not forwarded (they would decode to garbage)."""
        if self.transceiver is None or self.need_keyframe or not self._sends_h264():
            return
        newest = self.keyframe_seq
        sender = self.transceiver.sender
        for seq in lost:
            if newest is not None and (seq - newest) & 0xFFFF >= 0x8000:
                continue  # a keyframe before the newest one: replaced already
            payload = seams.sender_sent_payload(sender, seq)
            if payload is None or not h264_rtp_has_parameter_sets(payload):
                continue
            self.rekeys += 1
            self.need_keyframe = True
            self.queue.clear()
            self._request_keyframe()
            return

    def _sends_h264(self) -> bool:
        p = self.producers.get(self.layer)
        return p is not None and (p.mime or "").lower() == "video/h264"

    def on_remb_share(self, bps: float) -> None:
        self.remb_bps = bps
        self.estimate.on_remb(bps)

    def close(self) -> None:
        self.closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for p in self.producers.values():
            if self in p.sinks:
                p.sinks.remove(self)
        self.producers = {}
        self.queue.clear()
        self.track.stop()

    def sending_bps(self) -> float:
        if self.paused or self.closed:
            return 0.0
        p = self.producers.get(self.layer)
        return p.bitrate_bps if p is not None else 0.0

    async def stats(self) -> ConsumerStats:
        forwarded = self.producers.get(self.layer)
        best = best_layer({layer: p.slideshow for layer, p in self.producers.items()})
        s = ConsumerStats(
            id=self.id,
            subscriber_id=self.subscriber_id,
            source_id=self.source_id,
            kind=self.kind,
            layer=self.layer,
            target_layer=self.target,
            paused=self.paused,
            source=self.source,
            best_layer=best if self.kind == "video" else self.layer,
            pinned=self.pinned,
            width=forwarded.width if forwarded is not None else None,
            height=forwarded.height if forwarded is not None else None,
            nacks_received=self.nacks,
            plis_received=self.plis,
            firs_received=self.firs,
            frames_sent=self.frames_sent,
            keyframes_sent=self.keyframes_sent,
            frames_dropped=self.frames_dropped,
            layer_switches=self.layer_switches,
            rekeys=self.rekeys,
            remb_bps=self.remb_bps,
            fraction_lost=self.fraction_lost / 256.0,
            fps=self.clock.current_fps(),
            freezes=self.clock.freezes,
            freeze_seconds=self.clock.freeze_seconds,
            frozen=self.kind == "video"
            and not self.paused
            and self.layer != "audio"
            and self.clock.frozen(),
        )
        if self.transceiver is not None:
            report: Any = await self.transceiver.sender.getStats()
            for r in report.values():
                kind = getattr(r, "type", None)
                if kind == "outbound-rtp":
                    s.packets, s.bytes = r.packetsSent, r.bytesSent
                elif kind == "remote-inbound-rtp":
                    s.packets_lost, s.jitter, s.rtt = (
                        r.packetsLost,
                        float(r.jitter) / CLOCK_RATE[self.kind],
                        r.roundTripTime,
                    )
        return s


def codec_preferences(c: Consumer) -> list[RTCRtpCodecCapability]:
    """The consumer sends exactly the codec its producers receive (no transcoding)."""
    mime = next((p.mime for p in c.producers.values() if p.mime), None)
    caps = RTCRtpSender.getCapabilities(c.kind).codecs
    chosen = [cap for cap in caps if cap.mimeType.lower() == mime]
    rtx = [cap for cap in caps if cap.mimeType.lower() == f"{c.kind}/rtx"]
    return chosen + rtx if chosen else []
