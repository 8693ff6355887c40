"""A Router: one room's transports, and who consumes what (专递课堂 interaction rules)."""

from __future__ import annotations

from media.consumer import Consumer
from media.layers import VideoLayer
from media.transport import Transport
from signaling.models import Participant, Role

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
    - observers never publish and are never received.
    """
    if source.id == subscriber.id or source.role == Role.observer:
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

    def allocate_layers(self) -> None:
        """Choose each video consumer's layer from its share of the subscriber's estimate."""
        for sub in self.transports.values():
            pinned = _as_layer(sub.pinned) if sub.pinned else None
            for c in sub.consumers.values():
                if c.kind != "video" or c.paused or c.closed:
                    continue
                rates = {layer: p.bitrate_bps for layer, p in c.producers.items()}
                c.set_target(
                    c.chooser.choose(_as_layer(c.target), rates, c.estimate.value(), pinned)
                )


def _as_layer(layer: str) -> VideoLayer:
    if layer == "high":
        return "high"
    if layer == "low":
        return "low"
    return "off"
