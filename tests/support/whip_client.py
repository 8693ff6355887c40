"""A real WHIP client (RFC 9725) on aiortc, as an encoder publishes: an H264 clip made by
ffmpeg (passed through, as a hardware encoder's stream is) and Opus audio, sendonly."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import aiohttp
from aiortc import RTCBundlePolicy, RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack
from multidict import CIMultiDict
from yarl import URL

from support.clips import Clip, ClipTrack, prefer

_MEDIA = (
    "c=IN IP4 0.0.0.0\r\na=mid:{mid}\r\na={direction}\r\na=rtcp-mux\r\n"
    "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n"
    "a=fingerprint:sha-256 " + ":".join(["AB"] * 32) + "\r\na=setup:actpass\r\n"
)


def static_offer(*, video: str | None = "sendonly") -> str:
    """A well-formed encoder offer (Opus, and H264 sent as ``video``; None: audio only),
    for requests that never reach ICE."""
    bundle = "0 1" if video else "0"
    sdp = f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\na=group:BUNDLE {bundle}\r\n"
    sdp += "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n" + _MEDIA.format(mid=0, direction="sendonly")
    sdp += "a=rtpmap:111 opus/48000/2\r\n"
    if video:
        sdp += "m=video 9 UDP/TLS/RTP/SAVPF 102\r\n" + _MEDIA.format(mid=1, direction=video)
        sdp += "a=rtpmap:102 H264/90000\r\n"
        sdp += "a=fmtp:102 packetization-mode=1;profile-level-id=42e01f\r\n"
    return sdp


@dataclass
class WhipReply:
    status: int
    headers: CIMultiDict[str]
    body: str

    def json_code(self) -> str:
        import json

        code: str = json.loads(self.body)["error"]["code"]
        return code


@dataclass
class WhipClient:
    session: aiohttp.ClientSession
    endpoint: str  # the server's URL of /whip/v1/{source_id}
    token: str
    clip: Clip
    audio: bool = True
    low: Clip | None = None  # a second video m-line: the encoder's low layer
    # one transport for every m-line, as encoders (OBS's libdatachannel) bundle
    pc: RTCPeerConnection = field(
        default_factory=lambda: RTCPeerConnection(
            RTCConfiguration(bundlePolicy=RTCBundlePolicy.MAX_BUNDLE)
        )
    )
    location: str | None = None

    async def offer(self, *, without_candidates: bool = False) -> str:
        if self.audio:
            self.pc.addTransceiver(AudioStreamTrack(), direction="sendonly")
        video = self.pc.addTransceiver(ClipTrack("video", self.clip), direction="sendonly")
        prefer(video, "video/H264")
        if self.low is not None:
            low = self.pc.addTransceiver(ClipTrack("video", self.low), direction="sendonly")
            prefer(low, "video/H264")
        await self.pc.setLocalDescription(await self.pc.createOffer())
        sdp = str(self.pc.localDescription.sdp)
        if without_candidates:  # for a trickle: the candidates come in PATCHes
            sdp = "".join(
                line
                for line in sdp.splitlines(keepends=True)
                if not line.startswith(("a=candidate:", "a=end-of-candidates"))
            )
        return sdp

    def candidates(self) -> list[tuple[str, str]]:
        """(mid, candidate line) of what the local description gathered."""
        found: list[tuple[str, str]] = []
        mid = ""
        for line in str(self.pc.localDescription.sdp).splitlines():
            if line.startswith("a=mid:"):
                mid = line[6:]
            elif line.startswith("a=candidate:"):
                found.append((mid, line))
        return found

    async def post(self, sdp: str, **headers: str) -> WhipReply:
        sent = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/sdp"}
        async with self.session.post(self.endpoint, data=sdp.encode(), headers=sent | headers) as r:
            return WhipReply(r.status, CIMultiDict(r.headers), await r.text())

    async def publish(self, *, without_candidates: bool = False) -> WhipReply:
        """Offer, POST, apply the answer; the reply of the POST."""
        reply = await self.post(await self.offer(without_candidates=without_candidates))
        if reply.status == 201:
            self.location = reply.headers["Location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(reply.body, "answer"))
        return reply

    def resource(self) -> str:
        assert self.location is not None
        return str(URL(self.endpoint).join(URL(self.location)))

    async def patch(self, fragment: str, **headers: str) -> WhipReply:
        sent = {
            "Authorization": f"Bearer {self.token}",
            "Content-Type": "application/trickle-ice-sdpfrag",
        }
        async with self.session.patch(
            self.resource(), data=fragment.encode(), headers=sent | headers
        ) as r:
            return WhipReply(r.status, CIMultiDict(r.headers), await r.text())

    async def delete(self) -> WhipReply:
        async with self.session.delete(
            self.resource(), headers={"Authorization": f"Bearer {self.token}"}
        ) as r:
            return WhipReply(r.status, CIMultiDict(r.headers), await r.text())

    async def connected(self, timeout: float = 20) -> None:
        async with asyncio.timeout(timeout):
            while self.pc.connectionState != "connected":
                await asyncio.sleep(0.05)

    async def close(self) -> None:
        await self.pc.close()
