"""A participant whose offer failed half-way leaves cleanly (found by the SDP fuzz)."""

from __future__ import annotations

from aiortc import RTCPeerConnection

from contracts.media import MediaEvent
from contracts.rooms import Participant, Role
from media.worker import Worker


async def _offer_without_first_mline() -> str:
    pc = RTCPeerConnection()
    pc.addTransceiver("audio", direction="sendrecv")
    pc.addTransceiver("video", direction="sendonly")
    await pc.setLocalDescription(await pc.createOffer())
    lines = pc.localDescription.sdp.split("\r\n")
    await pc.close()
    first_m = next(i for i, line in enumerate(lines) if line.startswith("m="))
    return "\r\n".join(lines[:first_m] + lines[first_m + 1 :])


async def test_leave_after_an_offer_that_failed_half_way() -> None:
    """aiortc created the offer's transceivers, then refused the offer: closing the peer
    connection used to raise AttributeError on the transceiver without a transport (an
    unhandled task error, and the transports behind it left open)."""
    worker = Worker()

    async def send(message: MediaEvent) -> None:
        return None

    try:
        bad = Participant(id="p-bad", room_id="r", role=Role.classroom, subject="s", node_id="n")
        await worker.join(bad, send)
        sdp = await _offer_without_first_mline()
        try:
            await worker.offer("r", bad.id, sdp)
        except Exception as exc:
            assert "AttributeError" not in repr(exc)
        await worker.leave("r", bad.id)  # raised AttributeError before the fix
        assert worker.peer_connection_count() == 0
    finally:
        await worker.close()
