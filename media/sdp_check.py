"""A client's SDP checked before aiortc sees it: structure, size, limits, required fields.

aiortc's parser trusts its input: garbage raises ``ValueError``/``AssertionError``/``KeyError``
with parser internals in the message, and a few mistakes (a media section without a codec the
SFU can receive, a re-offer that reorders or retypes m-lines) are found only after aiortc has
created transceivers for the new sections, leaving the connection half-changed. Everything
here is checked on the text first, then on aiortc's parse of it, then against what the
connection already negotiated, and a problem becomes one ``invalid_sdp`` error that says what
is wrong in the client's terms (never a traceback, never the parser's words).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Literal

from aiortc.sdp import SessionDescription

from contracts.errors import ErrorCode, SankeError
from contracts.media import MAX_SDP_BYTES
from media import aiortc_seams as seams

# A publisher has audio, two camera layers and a screen share; every stream it receives adds
# one (media.transport.MAX_CONSUMERS, 128), and a re-offer lists them all.
MAX_MEDIA_SECTIONS = 136
MAX_LINE_CHARS = 2048
MAX_CANDIDATES = 64  # in one SDP (a browser gathers a handful per interface)
MAX_FORMATS = 64  # payload types on one m-line

RTP_PROFILES = {"UDP/TLS/RTP/SAVPF", "UDP/TLS/RTP/SAVP", "RTP/SAVPF", "RTP/SAVP"}
FINGERPRINT_HASHES = {"sha-1", "sha-224", "sha-256", "sha-384", "sha-512"}
DIRECTIONS = {"sendrecv", "sendonly", "recvonly", "inactive"}

_LINE = re.compile(r"[a-z]=")
_M_LINE = re.compile(r"m=([a-z]+) ([0-9]{1,5}) ([A-Z/]{3,32})((?: [^ ]+)+)")
_ICE_CHARS = re.compile(r"[A-Za-z0-9+/]+")
_MID = re.compile(r"[A-Za-z0-9_.~+-]{1,32}")
_FINGERPRINT = re.compile(r"([A-Za-z0-9-]{1,16}) ((?:[0-9A-Fa-f]{2}:){15,63}[0-9A-Fa-f]{2})")
_RTPMAP = re.compile(r"([0-9]{1,3}) ([A-Za-z0-9_.-]{1,32})/([0-9]{1,6})(?:/([0-9]{1,2}))?")
_PT_ATTR = re.compile(r"([0-9]{1,3})(?: .*)?")
_RTCP_FB = re.compile(r"(\*|[0-9]{1,3}) [a-z-]{1,32}(?: [a-z0-9-]{1,32})?")
_EXTMAP = re.compile(r"([0-9]{1,3})(?:/[a-z]{6,8})? [^ ]{1,256}(?: .*)?")
_SSRC = re.compile(r"([0-9]{1,10})(?: .*)?")
_SSRC_GROUP = re.compile(r"[A-Z]{2,8}((?: [0-9]{1,10})+)")
_GROUP = re.compile(r"BUNDLE((?: [A-Za-z0-9_.~+-]{1,32})*) ?|LS(?: [^ ]+)*")
# RFC 8839: foundation component transport priority address port "typ" type [extensions]
CANDIDATE = re.compile(
    r"(?:candidate:)?([A-Za-z0-9+/]{1,32}) ([0-9]{1,3}) ([A-Za-z]{3,8}) ([0-9]{1,10}) "
    r"([A-Za-z0-9.:%_-]{1,255}) ([0-9]{1,5}) typ (host|srflx|prflx|relay)"
    r"((?: [A-Za-z0-9_-]{1,32} [^ ]{1,255})*)"
)


class SdpRejected(SankeError):
    """An SDP that is not accepted, with what is wrong with it."""

    def __init__(self, message: str) -> None:
        super().__init__(ErrorCode.invalid_sdp, message, 400)


def check_candidate(text: str) -> None:
    """A trickled candidate's ``candidate:`` value (without ``a=``), or ``SdpRejected``."""
    if len(text) > 512 or not text.isascii() or not text.isprintable():
        raise SdpRejected("the ICE candidate is too long or has characters it cannot have")
    m = CANDIDATE.fullmatch(text)
    if m is None:
        raise SdpRejected(
            "the ICE candidate is not 'foundation component transport priority address port "
            "typ type' (RFC 8839)"
        )
    if not 1 <= int(m.group(2)) <= 256 or int(m.group(4)) >= 1 << 32 or int(m.group(6)) > 65535:
        raise SdpRejected("the ICE candidate's component, priority or port is out of range")


def check_sdp(
    sdp: str,
    kind: Literal["offer", "answer"],
    *,
    negotiated: Sequence[tuple[str, str]] = (),
) -> None:
    """Raise ``SdpRejected`` unless ``sdp`` is an offer (or answer) the SFU can apply.

    ``negotiated`` is the (kind, mid) of each m-line the connection has: an offer keeps them
    in place and may add more; an answer has exactly these.
    """
    lines = _lines(sdp)
    sections = _sections(lines)
    description = _parse(sdp)
    _check_parsed(description, sections, kind, negotiated)


def _lines(sdp: str) -> list[str]:
    size = len(sdp.encode("utf-8", "surrogatepass"))
    if size > MAX_SDP_BYTES:
        raise SdpRejected(f"the SDP has {size} bytes; at most {MAX_SDP_BYTES}")
    text = sdp.replace("\r\n", "\n")
    lines = text.split("\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != "v=0":
        raise SdpRejected("not an SDP session description: it must start with v=0")
    for number, line in enumerate(lines, start=1):
        if len(line) > MAX_LINE_CHARS:
            raise SdpRejected(f"line {number} has {len(line)} characters; at most {MAX_LINE_CHARS}")
        if not _LINE.match(line):
            raise SdpRejected(f"line {number} is not '<letter>=<value>'")
        printable = line.isprintable() and "\r" not in line
        if not printable or (not line.isascii() and line[0] not in "si"):
            raise SdpRejected(f"line {number} has characters an SDP line cannot have")
    return lines


def _sections(lines: list[str]) -> list[list[str]]:
    """The session section (first) and each media section, each checked on its own."""
    sections: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("m="):
            if len(sections) > MAX_MEDIA_SECTIONS:
                raise SdpRejected(f"more than {MAX_MEDIA_SECTIONS} media sections (m= lines)")
            sections.append([])
        sections[-1].append(line)
    session = sections[0]
    for prefix, what in (("o=", "origin (o=)"), ("s=", "session name (s=)"), ("t=", "time (t=)")):
        if not any(line.startswith(prefix) for line in session):
            raise SdpRejected(f"the session has no {what} line")
    origin = next(line for line in session if line.startswith("o="))
    if len(origin[2:].split(" ")) != 6:
        raise SdpRejected("the origin (o=) line does not have its six fields")
    candidates = 0
    for index, section in enumerate(sections):
        candidates += sum(line.startswith("a=candidate:") for line in section)
        _check_section(section, index)
    if candidates > MAX_CANDIDATES:
        raise SdpRejected(f"the SDP has {candidates} ICE candidates; at most {MAX_CANDIDATES}")
    return sections


def _check_section(section: list[str], index: int) -> None:
    where = "the session" if index == 0 else f"media section {index}"
    if index > 0:
        m = _M_LINE.fullmatch(section[0])
        if m is None:
            raise SdpRejected(f"{where}: the m= line is not 'm=<media> <port> <proto> <fmt>'")
        media, port, proto, formats = m.group(1), int(m.group(2)), m.group(3), m.group(4).split()
        if media == "application":
            raise SdpRejected(f"{where}: data channels (m=application) are not supported")
        if media not in ("audio", "video"):
            raise SdpRejected(f"{where}: media {media!r} is not audio or video")
        if port > 65535 or proto not in RTP_PROFILES:
            raise SdpRejected(f"{where}: port or protocol {proto!r} is not one WebRTC uses")
        if len(formats) > MAX_FORMATS or not all(f.isdigit() and int(f) < 128 for f in formats):
            raise SdpRejected(f"{where}: payload types are numbers below 128, at most 64")
        if any(72 <= int(f) <= 76 for f in formats):
            raise SdpRejected(f"{where}: payload types 72-76 collide with RTCP")
    for line in section[1 if index else 0 :]:
        if line.startswith("a="):
            _check_attribute(line[2:], where)


def _check_attribute(attr: str, where: str) -> None:
    name, _, value = attr.partition(":")
    pattern = {
        "rtpmap": _RTPMAP,
        "fmtp": _PT_ATTR,
        "rtcp-fb": _RTCP_FB,
        "extmap": _EXTMAP,
        "ssrc": _SSRC,
        "ssrc-group": _SSRC_GROUP,
        "fingerprint": _FINGERPRINT,
        "mid": _MID,
        "group": _GROUP,
    }.get(name)
    if pattern is not None:
        m = pattern.fullmatch(value)
        if m is None:
            raise SdpRejected(f"{where}: a={name} is malformed")
        if name == "ssrc" and int(m.group(1)) >= 1 << 32:
            raise SdpRejected(f"{where}: an SSRC is a 32-bit number")
        if name in ("rtpmap", "fmtp") and int(m.group(1)) >= 128:
            raise SdpRejected(f"{where}: a={name} names a payload type above 127")
        if name == "fingerprint" and m.group(1).lower() not in FINGERPRINT_HASHES:
            raise SdpRejected(f"{where}: the fingerprint's hash is not one DTLS uses")
    elif name in ("ice-ufrag", "ice-pwd"):
        low, high = (4, 256) if name == "ice-ufrag" else (22, 256)
        if not (low <= len(value) <= high and _ICE_CHARS.fullmatch(value)):
            raise SdpRejected(f"{where}: a={name} must be {low}-{high} ICE characters")
    elif name == "setup" and value not in ("actpass", "active", "passive"):
        raise SdpRejected(f"{where}: a=setup is actpass, active or passive")
    elif name == "candidate":
        check_candidate(value)
    elif name in ("rtcp", "sctp-port", "max-message-size") and not value.split(" ")[0].isdigit():
        raise SdpRejected(f"{where}: a={name} needs a number")


def _parse(sdp: str) -> Any:
    try:
        return SessionDescription.parse(sdp)
    except Exception:
        # The text passed every check above, so this is rare; what aiortc says stays here.
        raise SdpRejected("the SDP could not be read") from None


def _check_parsed(
    description: Any,
    sections: list[list[str]],
    kind: Literal["offer", "answer"],
    negotiated: Sequence[tuple[str, str]],
) -> None:
    mids: list[str] = []
    for index, media in enumerate(description.media, start=1):
        where = f"media section {index}"
        mid = media.rtp.muxId
        if not mid:
            raise SdpRejected(f"{where} has no a=mid")
        if mid in mids:
            raise SdpRejected(f"{where} repeats mid {mid!r}")
        mids.append(mid)
        if not media.ice.usernameFragment or not media.ice.password:
            raise SdpRejected(f"{where} has no ICE credentials (a=ice-ufrag, a=ice-pwd)")
        if not media.dtls.fingerprints:
            raise SdpRejected(f"{where} has no DTLS fingerprint (a=fingerprint)")
        if kind == "answer" and media.dtls.role not in ("client", "server"):
            raise SdpRejected(f"{where}: an answer's a=setup is active or passive")
        if not media.rtcp_mux:
            raise SdpRejected(f"{where} does not multiplex RTCP (a=rtcp-mux)")
        if not seams.receivable_codecs(media.kind, media.rtp.codecs):
            raise SdpRejected(
                f"{where} ({media.kind}) offers no codec the SFU forwards "
                f"({', '.join(seams.codec_names(media.kind))})"
            )
    bundle = next((g for g in description.group if g.semantic == "BUNDLE"), None)
    if not mids:
        pass  # a receive-only client offers nothing; the SFU offers what it should receive
    elif bundle is None or not bundle.items:
        raise SdpRejected("the SDP has no a=group:BUNDLE: the SFU needs every m-line bundled")
    if bundle is not None and any(item not in mids for item in bundle.items):
        raise SdpRejected("a=group:BUNDLE names a mid that no media section has")
    have = [(media.kind, media.rtp.muxId) for media in description.media]
    if kind == "answer" and have != list(negotiated):
        raise SdpRejected("the answer's media sections do not match the offer's (kind and mid)")
    if kind == "offer" and have[: len(negotiated)] != list(negotiated):
        raise SdpRejected(
            "an offer keeps every negotiated media section in place (same kind and mid) "
            "and adds new ones after them"
        )


def mlines(description: Any) -> list[tuple[str, str]]:
    """(kind, mid) of each m-line of an ``RTCSessionDescription`` (none for ``None``)."""
    if description is None:
        return []
    media = SessionDescription.parse(str(description.sdp)).media
    return [(m.kind, str(m.rtp.muxId)) for m in media]


def without_empty_bundle(sdp: str) -> str:
    """aiortc writes ``a=group:BUNDLE`` with no mids for an answer without media; browsers reject it."""
    lines = sdp.split("\r\n")
    return "\r\n".join(line for line in lines if line.strip() != "a=group:BUNDLE")
