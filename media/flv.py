"""FLV tags as RTMP carries them (video message 9, audio message 8; FLV spec 10.1, E.4.3).

Video: a byte of frame type and codec id, then for AVC (codec id 7) a packet type (0: the
AVCDecoderConfigurationRecord with SPS/PPS; 1: NAL units, length-prefixed, with a signed
24-bit composition time offset; 2: end of sequence). Enhanced RTMP (its ``IsExHeader``
bit) names the codec with a FourCC instead (``hvc1``: H.265, ``av01``, ``vp09``).
Audio: a byte of sound format (10: AAC), then an AAC packet type (0: AudioSpecificConfig;
1: a raw AAC frame).
"""

from __future__ import annotations

from dataclasses import dataclass

CODEC_AVC = 7
CODEC_HEVC = 12  # the pre-enhanced-RTMP convention some Chinese encoders use
CODEC_NAMES = {2: "Sorenson H.263", 3: "Screen video", 4: "VP6", 5: "VP6 alpha", 12: "H.265"}
FOURCC_NAMES = {b"hvc1": "H.265", b"av01": "AV1", b"vp09": "VP9", b"avc1": "H.264"}
AVC_SEQUENCE_HEADER, AVC_NALU, AVC_END = 0, 1, 2
KEY_FRAME = 1
SOUND_AAC = 10
SOUND_NAMES = {0: "PCM", 1: "ADPCM", 2: "MP3", 3: "PCM", 7: "G.711 A-law", 8: "G.711 µ-law"}
SOUND_NAMES |= {11: "Speex", 14: "MP3", 4: "Nellymoser", 5: "Nellymoser", 6: "Nellymoser"}


class FlvError(ValueError):
    """A tag too short or malformed to read."""


@dataclass(frozen=True, slots=True)
class VideoTag:
    codec: str  # "h264", or the name of what it is ("H.265", "VP6", …)
    keyframe: bool
    packet_type: int  # AVC_SEQUENCE_HEADER, AVC_NALU, AVC_END (meaningful for h264)
    composition_ms: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class AudioTag:
    codec: str  # "aac", or the name of what it is
    sequence_header: bool
    payload: bytes


def video_tag(body: bytes) -> VideoTag:
    if len(body) < 1:
        raise FlvError("an empty video tag")
    first = body[0]
    if first & 0x80:  # enhanced RTMP: frame type in bits 4-6, a FourCC after the byte
        if len(body) < 5:
            raise FlvError("a short enhanced video tag")
        fourcc = bytes(body[1:5])
        name = FOURCC_NAMES.get(fourcc, fourcc.decode("latin-1"))
        return VideoTag(name, (first >> 4) & 0x07 == KEY_FRAME, -1, 0, b"")
    frame_type, codec_id = first >> 4, first & 0x0F
    if codec_id != CODEC_AVC:
        name = CODEC_NAMES.get(codec_id, f"video codec {codec_id}")
        return VideoTag(name, frame_type == KEY_FRAME, -1, 0, b"")
    if len(body) < 5:
        raise FlvError("a short AVC video tag")
    composition = int.from_bytes(body[2:5], "big", signed=True)
    return VideoTag("h264", frame_type == KEY_FRAME, body[1], composition, bytes(body[5:]))


def audio_tag(body: bytes) -> AudioTag:
    if len(body) < 1:
        raise FlvError("an empty audio tag")
    sound = body[0] >> 4
    if sound != SOUND_AAC:
        return AudioTag(SOUND_NAMES.get(sound, f"audio format {sound}"), False, b"")
    if len(body) < 2:
        raise FlvError("a short AAC audio tag")
    return AudioTag("aac", body[1] == 0, bytes(body[2:]))
