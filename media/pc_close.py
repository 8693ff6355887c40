"""Closing an aiortc peer connection that a failed offer left half set up.

``RTCPeerConnection.setRemoteDescription`` creates the offer's transceivers before it has
checked the whole offer; when it then fails (say an SDP whose first m-line is missing, so
its attributes land at session level), those transceivers have no transport, and
``RTCPeerConnection.close`` stops at the first of them with ``AttributeError`` — leaving
the transports after it (their sockets) open. Such transceivers carry nothing: they are
stopped and forgotten before the close. (An aiortc internal: aiortc is pinned exactly.)
"""

from __future__ import annotations

import logging

from aiortc import RTCPeerConnection

log = logging.getLogger(__name__)
_TRANSCEIVERS = "_RTCPeerConnection__transceivers"


async def close_peer_connection(pc: RTCPeerConnection) -> None:
    transceivers = getattr(pc, _TRANSCEIVERS, None)
    if isinstance(transceivers, list):
        unbound = [t for t in transceivers if t.receiver.transport is None]
        for t in unbound:
            transceivers.remove(t)
            try:
                await t.stop()
            except Exception as exc:  # it never ran: nothing of it needs stopping
                log.debug("stopping an unbound transceiver: %r", exc)
    await pc.close()
