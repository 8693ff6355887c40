"""What WHIP asks of an offer beyond what the SFU checks, and trickle-ICE fragments (RFC 8840).

The media plane's own check (``media.sdp_check``, passed in: lessons do not import media)
reads the offer first, so a malformed one gets the same clear error as from a page. A WHIP
publish must then send video: an encoder whose offer has none (audio only, or every video
m-line inactive) is refused, as the classrooms would get no teacher picture.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from contracts.errors import ErrorCode, SankeError

MAX_FRAGMENT_CANDIDATES = 64
MAX_LINE_CHARS = 2048
SENDING = ("sendonly", "sendrecv")


def _rejected(message: str) -> SankeError:
    return SankeError(ErrorCode.invalid_sdp, message, 400)


def check_whip_offer(offer: str, check_offer: Callable[[str], None]) -> str | None:
    """Raise a 400 unless ``offer`` is an SDP offer that sends video; return the client's
    ICE username fragment (to tell a later trickle from an ICE restart)."""
    if not offer.strip():
        raise _rejected("the body is empty: POST the encoder's SDP offer")
    check_offer(offer)
    sections = _sections(offer.splitlines())
    sends_video = False
    for header, lines in sections[1:]:
        parts = header[2:].split()
        if parts[0] != "video" or parts[1] == "0":
            continue
        direction = next((a[2:] for a in lines if a[2:] in ("inactive", "recvonly", *SENDING)), "")
        if direction in ("", *SENDING):
            sends_video = True
    if not sends_video:
        raise _rejected("the offer sends no video: a lesson's source must send its picture")
    return _ufrag(sections)


def _sections(lines: list[str]) -> list[tuple[str, list[str]]]:
    """(the m= line, its lines) for each media section; the session part first ("")."""
    out: list[tuple[str, list[str]]] = [("", [])]
    for line in (raw.strip() for raw in lines):
        if line.startswith("m="):
            out.append((line, []))
        elif line:
            out[-1][1].append(line)
    return out


def _ufrag(sections: list[tuple[str, list[str]]]) -> str | None:
    for _, lines in sections:
        for line in lines:
            if line.startswith("a=ice-ufrag:"):
                return line.split(":", 1)[1]
    return None


@dataclass
class SdpFragment:
    ice_ufrag: str | None = None
    candidates: list[tuple[str | None, str]] = field(default_factory=list)  # (mid, candidate)


def parse_sdpfrag(text: str) -> SdpFragment:
    """The candidates of a trickle-ICE fragment by their m-line's mid, and its ICE ufrag.
    Each candidate is checked where it is applied (``MediaPlane.candidate``)."""
    fragment = SdpFragment()
    mid: str | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if len(line) > MAX_LINE_CHARS or not line.isascii() or not line.isprintable():
            raise _rejected("a line of the fragment is too long or has characters it cannot have")
        if line.startswith("m="):
            mid = None
        elif line.startswith("a=mid:"):
            mid = line[len("a=mid:") :] or None
        elif line.startswith("a=ice-ufrag:"):
            fragment.ice_ufrag = line[len("a=ice-ufrag:") :]
        elif line.startswith("a=candidate:"):
            if len(fragment.candidates) >= MAX_FRAGMENT_CANDIDATES:
                raise _rejected(f"at most {MAX_FRAGMENT_CANDIDATES} candidates in one fragment")
            fragment.candidates.append((mid, line[len("a=") :]))
    return fragment
