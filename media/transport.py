"""A Transport: one participant's RTCPeerConnection with the SFU, and its negotiation.

The client offers first (its send tracks; the SFU answers). Whenever the consumers a
participant should receive change, the SFU tells it ``TracksChanged`` and an
``OfferToParticipant`` and the client answers. Negotiations of one participant are serialized by a lock; a change that
arrives while a server offer is outstanding is coalesced into the next offer. The SFU is the
impolite peer: a client offer while a server offer is outstanding gets a ``conflict`` error
(answer the server's offer, then offer again).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any

from aiortc import (
    RTCBundlePolicy,
    RTCConfiguration,
    RTCIceCandidate,
    RTCPeerConnection,
    RTCRtpReceiver,
    RTCRtpTransceiver,
    RTCSessionDescription,
)
from aiortc.sdp import candidate_from_sdp

from contracts.addresses import ip_version
from contracts.errors import ErrorCode, SankeError
from contracts.layers import SimulcastLayer
from contracts.media import (
    IceCandidate,
    OfferToParticipant,
    PullRequest,
    PullState,
    PullStatus,
    SendToParticipant,
    TrackInfo,
    TracksChanged,
)
from contracts.rooms import Participant, Role
from media import aiortc_seams as seams
from media.consumer import Consumer, codec_preferences
from media.downlink import DownlinkControl
from media.ice_policy import IcePolicy
from media.ingest_audio import IngestAudio
from media.layers import MIN_RATE_BPS
from media.origin import RtpOrigin, rtp_receiver
from media.pc_close import close_peer_connection
from media.producer import Producer
from media.publisher_mlines import (
    VIDEO_PREFERENCE,
    follow_directions,
    keep_producer_codecs,
    producer_payload_types,
)
from media.remb import UplinkRemb
from media.rtmp_ingest import PushTable, RtmpIngest
from media.rtsp_origin import RtspPull
from media.sdp_check import check_candidate, check_sdp, mlines, without_empty_bundle
from media.srt_origin import SrtPull
from media.stats import TransportStats
from media.uplink import UplinkFeedback

log = logging.getLogger(__name__)

VIDEO_LAYERS: tuple[SimulcastLayer, ...] = ("high", "low")  # its video m-lines, in order
MAX_CONSUMERS = 128
# Where a publisher's estimate starts (Chromium's default is 300 kbps, at which its encoder
# starts a 720p camera at 320x180 and climbs one step per ~4 s: 720p after ~17 s). School
# links are 100 Mbps (the work plan's item 9); a smaller uplink is found within a second.
START_BITRATE_KBPS = 2500


class Transport:
    def __init__(
        self,
        participant: Participant,
        send: SendToParticipant,
        on_change: Callable[[Transport], None],
        on_failed: Callable[[Transport], None],
        on_estimate: Callable[[Transport], None] = lambda t: None,
        ice_policy: IcePolicy | None = None,
        pushes: PushTable | None = None,
    ) -> None:
        self.participant = participant
        self.pushes = pushes if pushes is not None else PushTable()
        self.send = send
        # No STUN server: aiortc's default (stun.l.google.com) is unreachable from Chinese
        # school networks and each connection's gathering would wait out its timeout; the
        # SFU runs on addresses classrooms reach (host networking on public nodes).
        self.pc = RTCPeerConnection(
            RTCConfiguration(iceServers=[], bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
        # STUN goes only where the policy allows or the client proved it is (its checks)
        seams.guard_ice(self.pc, ice_policy or IcePolicy())
        self.producers: dict[str, Producer] = {}  # by mid
        self.consumers: dict[tuple[str, str], Consumer] = {}  # by (source id, kind)
        self.pinned: str | None = None
        self.closed = False
        self._on_change = on_change
        self._on_failed = on_failed
        self._lock = asyncio.Lock()
        self._negotiated = False
        self._dirty = False
        self._to_add: list[Consumer] = []
        self._to_remove: list[Consumer] = []
        self._task: asyncio.Task[None] | None = None
        # payload types and extension ids of this connection's BUNDLE (the client's first)
        self._numbers = seams.BundleNumbers()
        self._sources: dict[str, str] = {}  # mid -> "camera" | "screen", as the client said
        # by layer: an RTSP camera it publishes, or the RTMP push it expects ("high")
        self.pulls: dict[str, RtspPull | RtmpIngest] = {}
        self.uplink = UplinkFeedback(self.pc)
        self.remb = UplinkRemb(self._video_receivers)  # for a client without transport-cc
        self.downlink = DownlinkControl(self.pc, on_estimate=lambda: on_estimate(self))
        self.pc.on("connectionstatechange", self._state_changed)

    @property
    def id(self) -> str:
        return self.participant.id

    def _state_changed(self) -> None:
        # "failed": ICE consent or DTLS failed; "closed": the client closed DTLS (went away).
        if self.pc.connectionState in ("failed", "closed") and not self.closed:
            self._on_failed(self)

    # --- client offer / answer --------------------------------------------------

    async def handle_offer(self, sdp: str) -> str:
        async with self._lock:
            if self.closed:
                raise SankeError(ErrorCode.media_error, "the media connection is closed")
            if self.pc.signalingState != "stable":
                raise SankeError(
                    ErrorCode.conflict,
                    "a server offer is outstanding: answer it, then offer again",
                    status=409,
                )
            check_sdp(sdp, "offer", negotiated=mlines(self.pc.remoteDescription))
            try:
                self._numbers.learn(sdp)
                sending = producer_payload_types(self.pc, self.producers)
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
                transceivers = self.pc.getTransceivers()
                if transceivers:
                    dtls = seams.transport_of(transceivers[0])
                    seams.route_rtx_and_mid(dtls)  # retransmissions reach their receiver
                    seams.drain_sockets(dtls)  # a busy loop does not back up its sockets
                keep_producer_codecs(self.pc, sending)
                follow_directions(sdp, self.producers)
                self._add_producers()
                for t in self.pc.getTransceivers():  # every answer: a re-offer resets them
                    if t.kind == "audio" and str(t.mid) in self.producers:
                        seams.answer_opus_fec_dtx(t)
                    elif t.kind == "video" and str(t.mid) in self.producers:
                        seams.raise_h264_level(t)
                        seams.answer_start_bitrate(t, START_BITRATE_KBPS)
                self.uplink.negotiate(sdp)
                if self.uplink.transport_cc:
                    for p in self.producers.values():
                        seams.disable_remb(_receiver(p))  # the client estimates its uplink itself
                elif any(p.kind == "video" for p in self.producers.values()):
                    self.remb.start()  # one REMB for all its video, not one per receiver
                await self.pc.setLocalDescription(await self.pc.createAnswer())
            except SankeError:
                raise
            except Exception as exc:
                # What aiortc says is for the log, not for the client.
                log.info("applying an offer of %s failed: %r", self.id, exc)
                raise SankeError(
                    ErrorCode.media_error, "the SFU could not apply this offer"
                ) from None
            self._negotiated = True
            answer = without_empty_bundle(str(self.pc.localDescription.sdp))
        self._on_change(self)
        if self._dirty or self._to_add or self._to_remove:
            self.schedule_renegotiation()
        return str(answer)

    def _video_receivers(self) -> list[RTCRtpReceiver]:
        return [_receiver(p) for p in self.producers.values() if p.kind == "video" and p.active]

    def _free_layer(self, kind: str, source: str, exclude: Producer | None = None) -> str | None:
        if source == "screen":
            layers = ["high"]  # one layer
        else:
            layers = ["main"] if kind == "audio" else list(VIDEO_LAYERS)
        used = {
            p.layer
            for p in self.producers.values()
            if p.kind == kind and p.source == source and p is not exclude and not p.closed
        }
        return next((layer for layer in layers if layer not in used), None)

    def _add_producers(self) -> None:
        for t in self.pc.getTransceivers():
            if t.mid in self.producers or t.receiver.track is None or t.sender.track is not None:
                continue
            if any(c.transceiver is t for c in self.consumers.values()):
                continue
            source = "microphone" if t.kind == "audio" else self._sources.get(str(t.mid), "camera")
            layer = self._free_layer(t.kind, source)
            if self.participant.role == Role.observer or layer is None:
                t.direction = "inactive"  # observers never publish; extra tracks are refused
                continue
            if t.kind == "video":
                seams.prefer_codecs(t, VIDEO_PREFERENCE)
            producer = Producer(
                self.id, t.kind, layer, RtpOrigin(t.receiver, t.kind), source=source
            )
            if t.kind == "video":
                producer.on_link_loss = lambda f, r=t.receiver: self.remb.on_loss(r, f)
            codecs = seams.negotiated_codecs(t)
            producer.negotiated_mime = codecs[0].mimeType.lower() if codecs else None
            self.producers[str(t.mid)] = producer

    def pull(self, request: PullRequest) -> None:
        """Its camera is an RTSP source the SFU pulls (media.rtsp_origin), or an RTMP push
        the SFU expects (media.rtmp_ingest): a Producer per stream, the main stream
        ``high`` and an RTSP sub-stream ``low``, on pseudo m-lines no client negotiates. It
        replaces an earlier pull."""
        if self.closed:
            raise SankeError(ErrorCode.media_error, "the media connection is closed")
        if self.participant.role == Role.observer:
            raise SankeError(ErrorCode.forbidden, "observers never publish", 403)
        self._stop_pulls()
        audio = IngestAudio()  # the main stream's audio, transcoded to Opus
        mic = Producer(self.id, "audio", "main", audio)
        mic.negotiated_mime = "audio/opus"
        mic.active = False  # until the source's first audio frame: one without none

        def heard(producer: Producer = mic) -> None:
            if not producer.closed and not self.closed:
                producer.active = True
                self._on_change(self)

        audio.on_first = heard
        self.producers["rtsp-audio"] = mic
        origins: list[tuple[SimulcastLayer, RtspPull | RtmpIngest]] = []
        if request.push_key_sha256 is not None:
            origins.append(("high", RtmpIngest(request.push_key_sha256, self.pushes, audio)))
        elif request.url is not None and request.url.startswith("srt://"):
            origins.append(("high", SrtPull(request.url, audio=audio)))
        elif request.url is not None:
            origins.append(("high", RtspPull(request.url, "high", request.transport, audio=audio)))
            if request.low_url is not None:
                origins.append(("low", RtspPull(request.low_url, "low", request.transport)))
        for layer, origin in origins:
            producer = Producer(self.id, "video", layer, origin, source="camera")
            producer.negotiated_mime = "video/h264"
            if isinstance(origin, RtmpIngest):  # no picture before the encoder pushes one
                producer.active = False
                origin.on_first = functools.partial(heard, producer)
            elif layer == "low":  # a sub-stream is a layer while it connects: one refused
                producer.active = False  # (MJPEG) is never a classroom's dead low layer
                origin.on_state = functools.partial(self._sub_stream, producer)
            self.pulls[layer] = origin
            self.producers[f"rtsp-{layer}"] = producer
        self._on_change(self)

    def _sub_stream(self, producer: Producer, state: PullState) -> None:
        """The sub-stream connected or went away (refused, reconnecting): the main stream is
        the only layer meanwhile."""
        active = state == "connected"
        if producer.closed or self.closed or producer.active == active:
            return
        producer.active = active
        self._on_change(self)

    def pull_status(self) -> list[PullStatus]:
        statuses = []
        for layer, origin in self.pulls.items():
            status = origin.status()
            p = self.producers.get(f"rtsp-{layer}")
            if p is not None and status.state == "connected":
                status.width, status.height = p.width, p.height
                status.fps = min(240.0, p.clock.current_fps())
                status.bitrate_bps = p.bitrate_bps
            statuses.append(status)
        return statuses

    def _stop_pulls(self) -> None:
        mic = self.producers.pop("rtsp-audio", None)
        if mic is not None:
            mic.close()
        for layer, origin in self.pulls.items():
            origin.close()
            p = self.producers.pop(f"rtsp-{layer}", None)
            if p is not None:
                p.close()
        self.pulls.clear()

    def set_source(self, mid: str, source: str) -> None:
        """The client says what its m-line ``mid`` carries (before or after offering it)."""
        self._sources[mid] = source
        p = self.producers.get(mid)
        if p is None or p.kind != "video" or p.source == source or self.closed:
            return
        layer = self._free_layer("video", source, exclude=p)
        if layer is None:
            raise SankeError(ErrorCode.invalid_request, f"already sending a {source} video")
        p.relabel(source, layer)
        self._on_change(self)

    async def handle_answer(self, sdp: str) -> None:
        async with self._lock:
            if self.pc.signalingState != "have-local-offer":
                raise SankeError(ErrorCode.conflict, "no server offer is outstanding", status=409)
            check_sdp(sdp, "answer", negotiated=mlines(self.pc.localDescription))
            try:
                self._numbers.learn(sdp)
                await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="answer"))
                consumers = self._consumer_transceivers()
                for t in consumers:
                    seams.raise_h264_level(t)  # aiortc's intersection put level 3.1 back
                self.downlink.negotiated(sdp, consumers)
            except Exception as exc:
                log.info("applying an answer of %s failed: %r", self.id, exc)
                raise SankeError(
                    ErrorCode.media_error, "the SFU could not apply this answer"
                ) from None
        if self._dirty or self._to_add or self._to_remove:
            self.schedule_renegotiation()

    async def add_candidate(self, c: IceCandidate) -> None:
        text = c.candidate.strip()
        if not text:
            return  # end of candidates
        if text.startswith("candidate:"):
            text = text[len("candidate:") :]
        check_candidate(text)
        try:
            candidate: RTCIceCandidate = candidate_from_sdp(text)
        except Exception:
            raise SankeError(ErrorCode.invalid_sdp, "the ICE candidate could not be read") from None
        candidate.sdpMid = c.sdp_mid
        candidate.sdpMLineIndex = c.sdp_mline_index
        if c.sdp_mid is None and c.sdp_mline_index is None:
            candidate.sdpMLineIndex = 0
        await self.pc.addIceCandidate(candidate)

    # --- consumers and server offers ---------------------------------------------

    def add_consumer(self, consumer: Consumer) -> bool:
        if len(self.consumers) >= MAX_CONSUMERS:
            return False
        self.consumers[consumer.key] = consumer
        if self.pinned is not None:
            consumer.pinned = self.pinned  # type: ignore[assignment]
        self._to_add.append(consumer)
        return True

    def remove_consumer(self, key: tuple[str, str]) -> None:
        consumer = self.consumers.pop(key, None)
        if consumer is None:
            return
        consumer.close()
        if consumer in self._to_add:
            self._to_add.remove(consumer)
        else:
            self._to_remove.append(consumer)

    def schedule_renegotiation(self) -> None:
        if self.closed:
            return
        if self._task is not None and not self._task.done():
            self._dirty = True
            return
        self._task = asyncio.get_running_loop().create_task(self._renegotiate())

    async def _renegotiate(self) -> None:
        async with self._lock:
            if self.closed or not self._negotiated or self.pc.signalingState != "stable":
                self._dirty = True
                return
            if not (self._dirty or self._to_add or self._to_remove):
                return
            self._dirty = False
            try:
                await self._apply_consumer_changes()
                # aiortc's own createOffer would renumber the client's codecs and extensions
                offer = await seams.create_offer(self.pc, self._numbers, transport_cc=True)
                await self.pc.setLocalDescription(offer)
            except Exception:
                # Closing mid-negotiation is not a failure, nor a peer connection aiortc
                # closed itself (its ICE/DTLS failed) before this transport is freed.
                if not self.closed and self.pc.signalingState != "closed":
                    log.exception("renegotiation of %s failed", self.id)
                return
            sdp = str(self.pc.localDescription.sdp)
            tracks = self.track_infos()
        await self.send(TracksChanged(tracks=tracks))
        await self.send(OfferToParticipant(sdp=sdp))

    async def _apply_consumer_changes(self) -> None:
        removed, self._to_remove = self._to_remove, []
        for c in removed:
            if c.transceiver is not None:
                c.transceiver.direction = "inactive"
                await c.transceiver.sender.stop()
        added, self._to_add = self._to_add, []
        for c in added:
            if c.closed:
                continue
            t = self.pc.addTransceiver(c.track, direction="sendonly")
            seams.install_packer(t.sender)  # should aiortc's own loop ever run: pack, never encode
            seams.install_fast_sender(t.sender, c.track)
            seams.set_stream_id(t.sender, c.source_id)
            seams.observe_sender_rtcp(t.sender, self._rtcp_observer(c), c.filter_nack)
            t.setCodecPreferences(codec_preferences(c))
            c.transceiver = t

    def _consumer_transceivers(self) -> list[RTCRtpTransceiver]:
        return [
            c.transceiver
            for c in self.consumers.values()
            if c.transceiver is not None and not c.closed
        ]

    def _rtcp_observer(self, c: Consumer) -> seams.RtcpObserver:
        def observe(event: seams.RtcpEvent) -> None:
            c.on_rtcp(event)
            if event.kind == "remb" and c.kind == "video":
                # A REMB covers the streams it lists: c's share is in proportion to its rate.
                listed = [
                    o
                    for o in self.consumers.values()
                    if o.transceiver is not None
                    and seams.sender_ssrc(o.transceiver.sender) in event.ssrcs
                ]
                rates = {id(o): max(o.sending_bps(), MIN_RATE_BPS) for o in listed}
                total = sum(rates.values()) or 1.0
                c.on_remb_share(event.remb_bps * rates.get(id(c), total) / total)

        return observe

    def sending_bps(self) -> float:
        return sum(c.sending_bps() for c in self.consumers.values())

    def track_infos(self) -> list[TrackInfo]:
        return [
            TrackInfo(
                stream_id=c.source_id,
                track_id=c.track.id,
                participant_id=c.source_id,
                kind="audio" if c.kind == "audio" else "video",
                source="screen"
                if c.source == "screen"
                else ("microphone" if c.kind == "audio" else "camera"),
            )
            for c in self.consumers.values()
            if c.transceiver is not None and not c.closed
        ]

    def producer_group(self, kind: str, source: str | None = None) -> dict[str, Producer]:
        """The active producers of one source, by layer (the camera: high, low; a screen: high)."""
        source = source or ("microphone" if kind == "audio" else "camera")
        return {
            p.layer: p
            for p in self.producers.values()
            if p.kind == kind and p.source == source and p.active and not p.closed
        }

    # --- teardown and stats ------------------------------------------------------

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._task is not None:
            self._task.cancel()
        self.uplink.close()
        self.remb.close()
        self.downlink.close()
        for origin in self.pulls.values():
            origin.close()
        for p in self.producers.values():
            p.close()
        for c in self.consumers.values():
            c.close()
        self._to_add.clear()
        self._to_remove.clear()
        await close_peer_connection(self.pc)

    async def stats(self) -> TransportStats:
        return TransportStats(
            participant_id=self.id,
            role=str(self.participant.role),
            room_id=self.participant.room_id,
            school_id=self.participant.school_id,
            classroom_id=self.participant.classroom_id,
            name=self.participant.name,
            connection_state=self.pc.connectionState,
            producers=[await p.stats() for p in self.producers.values()],
            consumers=[await c.stats() for c in self.consumers.values()],
            **self._link_stats(),
        )

    def _link_stats(self) -> dict[str, Any]:
        transceivers = self.pc.getTransceivers()
        if not transceivers:
            return {}
        dtls = seams.transport_of(transceivers[0])
        sent, received = seams.transport_bytes(dtls)
        hosts = seams.selected_pair_hosts(dtls)
        version = None if hosts is None else ip_version(hosts[1])
        return {"ice_ip_version": version, "bytes_sent": sent, "bytes_received": received}


def _receiver(producer: Producer) -> RTCRtpReceiver:
    """A browser's producers all come from its RTP receivers."""
    receiver = rtp_receiver(producer.origin)
    assert receiver is not None, producer.origin
    return receiver
