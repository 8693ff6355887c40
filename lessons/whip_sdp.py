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
    sections = _sections(offer.splitlines())
    for header, lines in sections[1:]:
        if header.startswith("m=video "):
            _check_video_codecs(lines)
    check_offer(offer)
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


def _check_video_codecs(lines: list[str]) -> None:
    """Name the encoder setting to change when its video codec is one the classrooms cannot
    be sent as is (the SFU never transcodes): H.265/VP9/AV1 only, or H264 only in profiles
    above constrained baseline (aiortc negotiates 42e01f/42001f only, for now)."""
    names: dict[str, str] = {}  # payload type -> codec name
    profiles: dict[str, str] = {}  # payload type -> profile-level-id
    for line in lines:
        if line.startswith("a=rtpmap:"):
            pt, _, rest = line[len("a=rtpmap:") :].partition(" ")
            names[pt] = rest.split("/", 1)[0].upper()
        elif line.startswith("a=fmtp:"):
            pt, _, params = line[len("a=fmtp:") :].partition(" ")
            for param in params.split(";"):
                key, _, value = param.strip().partition("=")
                if key.lower() == "profile-level-id":
                    profiles[pt] = value.lower()
    codecs = set(names.values()) - {"RTX", "RED", "ULPFEC", "FLEXFEC-03"}
    if not codecs or "VP8" in codecs:
        return
    if "H264" not in codecs:
        raise _rejected(
            f"the encoder offers {', '.join(sorted(codecs))}: set it to H.264 "
            "(baseline or main profile, no B-frames); the SFU does not transcode"
        )
    h264 = [profiles.get(pt, "42001f") for pt, name in names.items() if name == "H264"]
    if not any(profile.startswith("42") for profile in h264):
        raise _rejected(
            f"the encoder offers H.264 profile-level-id {', '.join(sorted(set(h264)))} only: "
            "set its profile to baseline (profile-level-id 42e01f), no B-frames"
        )


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
