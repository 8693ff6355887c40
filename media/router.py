"""A Router: one room's transports, and who consumes what (专递课堂 interaction rules)."""

from __future__ import annotations

import math
import time

from contracts.layers import ReceivedLayer
from contracts.rooms import Participant, Role
from media.allocation import VideoDemand, allocate
from media.consumer import Consumer
from media.frame_rate import without_slideshows
from media.hls_room import RoomHls
from media.recording_room import RoomRecording
from media.transport import Transport

KINDS = ("audio", "video")
# what a participant publishes: (media kind, source); a consumer per (source participant, kind
# or "screen")
SOURCES = (("audio", "microphone"), ("video", "camera"), ("video", "screen"))


def forwards(source: Participant, subscriber: Participant, kind: str) -> bool:
    """Whether ``subscriber`` should receive ``source``'s ``kind`` right now.

    - the teacher is received by everyone in the room;
    - the teacher receives every classroom's back-channel (video and audio);
    - a classroom (or a viewer brought on stage) reaches the others only while on stage;
    - a muted participant's audio is forwarded to no one;
    - observers never publish and are never received;
    - an ingest source (``publish_only``: a WHIP encoder) receives nothing.
    """
    if source.id == subscriber.id or source.role == Role.observer or subscriber.publish_only:
        return False
    if kind == "audio" and source.muted:
        return False
    if source.role == Role.teacher:
        return True
    if subscriber.role == Role.teacher and source.role == Role.classroom:
        return True
    return source.on_stage


class Router:
    def __init__(self, room_id: str) -> None:
        self.room_id = room_id
        self.transports: dict[str, Transport] = {}
        self.recording: RoomRecording | None = None  # when the node records
        self.hls: RoomHls | None = None  # when the node packages HLS

    def reconcile(self) -> None:
        """Create, pause, resume and remove consumers to match the rules; renegotiate."""
        for sub in self.transports.values():
            if sub.closed:
                continue
            changed = False
            wanted: set[tuple[str, str]] = set()
            for src in self.transports.values():
                if src is sub or src.closed:
                    continue
                for kind, source in SOURCES:
                    group = src.producer_group(kind, source)
                    if not group:
                        continue
                    key = (src.id, "screen" if source == "screen" else kind)
                    wanted.add(key)
                    forward = forwards(src.participant, sub.participant, kind)
                    consumer = sub.consumers.get(key)
                    if consumer is None:
                        if not forward:
                            continue  # created lazily, the first time it is forwarded
                        consumer = Consumer(sub.id, src.id, kind, source)
                        if not sub.add_consumer(consumer):
                            continue
                        changed = True
                    consumer.set_producers(group)
                    consumer.set_paused(not forward)
            for key in [k for k in sub.consumers if k not in wanted]:
                sub.remove_consumer(key)
                changed = True
            if changed:
                sub.schedule_renegotiation()
        if self.recording is not None:
            self.recording.update()
        if self.hls is not None:
            self.hls.update()

    def allocate_layers(self) -> None:
        """Choose every subscriber's video layers from its downlink estimate (and, as this
        runs every second, ask again for keyframes still waited for)."""
        for sub in list(self.transports.values()):
            self.allocate(sub)
            for c in list(sub.consumers.values()):
                c.ask_again()

    def allocate(self, sub: Transport) -> None:
        """One subscriber's layers: from its transport-wide estimate (transport-cc) when
        it has one, else each consumer from its share of the subscriber's REMB."""
        if sub.closed:
            return
        pinned = _as_layer(sub.pinned) if sub.pinned else None
        videos = [
            c for c in sub.consumers.values() if c.kind == "video" and not c.paused and not c.closed
        ]
        if sub.downlink.active:
            self._allocate_by_estimate(sub, videos, pinned)
            return
        for c in videos:
            rates = _usable(c)
            c.set_target(c.chooser.choose(_as_layer(c.target), rates, c.estimate.value(), pinned))

    def _allocate_by_estimate(
        self, sub: Transport, videos: list[Consumer], pinned: ReceivedLayer | None
    ) -> None:
        demands = [
            VideoDemand(
                key=c.id,
                rates=_rates(c),
                current=_as_layer(c.target),
                priority=self._priority(c),
                pinned=pinned,
            )
            for c in videos
        ]
        audio = sum(
            c.sending_bps()
            for c in sub.consumers.values()
            if c.kind == "audio" and not c.paused and not c.closed
        )
        estimate = sub.downlink.allocation_estimate_bps()
        allocation = allocate(math.inf if estimate is None else estimate, audio, demands)
        for c in videos:
            c.set_target(allocation.layers[c.id])
        if estimate is None:  # not known yet: probe for what the best layers need
            wanted = allocate(0.0, audio, demands).probe_bps
            sub.downlink.want(wanted)
        else:
            sub.downlink.want(allocation.probe_bps)

    def _priority(self, c: Consumer) -> int:
        """The teacher's camera and screen first, then a participant on stage, then the rest."""
        source = self.transports.get(c.source_id)
        if source is None:
            return 3
        if source.participant.role == Role.teacher:
            return 0 if c.source == "screen" else 1
        return 2 if source.participant.on_stage else 3


def _usable(c: Consumer) -> dict[str, float]:
    """The layers a consumer may get, by bitrate: not one that is a slideshow next to a
    fluid smaller layer (media/frame_rate.py): a classroom's own estimate cannot see it."""
    now = time.monotonic()
    producers = c.producers
    return without_slideshows(
        {layer: p.bitrate_bps for layer, p in producers.items()},
        {layer: p.rate.fps(now) for layer, p in producers.items()},
        {layer: p.slideshow for layer, p in producers.items()},
        now,
    )


def _rates(c: Consumer) -> dict[str, float]:
    """The layers a consumer may get with a whole-link estimate: the usable ones (above),
    and of them not one that lost frames for good lately while another did not; if all
    did, only the smallest (its keyframes get through a congested publisher uplink first).
    It comes back up once the layer is clean."""
    rates = _usable(c)
    broken = {layer for layer, p in c.producers.items() if layer in rates and p.broken()}
    if not broken:
        return rates
    if len(broken) < len(rates):
        return {layer: rate for layer, rate in rates.items() if layer not in broken}
    smallest = min(rates, key=lambda layer: rates[layer])
    return {smallest: rates[smallest]}


def _as_layer(layer: str) -> ReceivedLayer:
    if layer == "high":
        return "high"
    if layer == "low":
        return "low"
    return "audio"
