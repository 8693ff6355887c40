"""What a publisher hears about its uplink: transport-wide congestion-control feedback.

A browser that publishes estimates its own uplink (Chromium's send-side GCC) from the
arrival times the SFU reports for every packet it sent (transport-cc), probes above what
it sends, and sets its encoder's bitrate and resolution from that. aiortc's own answer to
a publisher would be a REMB per video receiver, which caps at 1.5 × what that receiver
already gets: the publisher never climbs past its start rate (320×180 at ~50 kbps was
measured). So for a client that offers transport-cc the SFU answers it, records every
packet's arrival where the datagram arrives, and reports every ``FEEDBACK_INTERVAL``;
the per-receiver REMB is switched off for that client.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiortc import RTCPeerConnection
from aiortc.rtp import RtpPacket
from aiortc.sdp import SessionDescription

from media import aiortc_seams as seams
from media.transport_cc import FeedbackRecorder

log = logging.getLogger(__name__)

# libwebrtc's receiver reports every 100 ms by default (50–250 ms by bitrate); GCC's
# reaction time follows the interval, and the feedback costs ~10 kbps at this rate.
FEEDBACK_INTERVAL = 0.05
# Report early when this many packets wait (a 2.5 Mbps publisher sends ~25 per 100 ms).
FEEDBACK_EARLY_PACKETS = 400


class UplinkFeedback:
    """Transport-cc feedback to one participant's peer connection about what it sends."""

    def __init__(self, pc: RTCPeerConnection) -> None:
        self.pc = pc
        self.transport_cc = False
        self.recorder: FeedbackRecorder | None = None
        self._dtls: Any = None
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self.feedback_sent = 0
        self.closed = False

    def negotiate(self, remote_sdp: str) -> None:
        """After ``setRemoteDescription`` of a client offer, before the answer: answer
        transport-cc on every m-line the client publishes on that offers it."""
        media = SessionDescription.parse(remote_sdp).media
        answered = False
        for t in self.pc.getTransceivers():
            index = t._get_mline_index()
            if index is None or index >= len(media) or t.kind not in ("audio", "video"):
                continue
            offered = media[index]
            if offered.direction not in ("sendonly", "sendrecv"):
                continue  # the client does not publish on it
            answered = seams.answer_transport_cc(t, offered) or answered
        if not answered:
            return
        self.transport_cc = True
        first = self.pc.getTransceivers()[0]
        if self.recorder is None:
            self.recorder = FeedbackRecorder(sender_ssrc=seams.sender_ssrc(first.sender))
        dtls = seams.transport_of(first)
        if dtls is not self._dtls:
            self._dtls = dtls
            seams.tap_transport_rtp(dtls, self._on_packet)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    def _on_packet(self, packet: RtpPacket, arrival_us: int) -> None:
        seq = packet.extensions.transport_sequence_number
        if seq is None or self.recorder is None:
            return
        self.recorder.record(seq, arrival_us, packet.ssrc)
        if self.recorder.pending >= FEEDBACK_EARLY_PACKETS:
            self._wake.set()

    async def _run(self) -> None:
        while not self.closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), FEEDBACK_INTERVAL)
            self._wake.clear()
            if self.recorder is None or self._dtls is None:
                continue
            if self._dtls.state != "connected":
                continue
            for packet in self.recorder.build():
                try:
                    await seams.send_rtcp(self._dtls, packet)
                except ConnectionError:
                    return
                except Exception:
                    log.debug("transport-cc feedback failed", exc_info=True)
                    continue
                self.feedback_sent += 1

    def close(self) -> None:
        self.closed = True
        if self._task is not None:
            self._task.cancel()
