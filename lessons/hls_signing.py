"""Signed, expiring HLS URLs in Aliyun CDN's URL authentication type A (鉴权方式A), which
Tencent Cloud CDN's type A verifies the same way, so a district's CDN in front can check
them itself and the app (the origin) checks them too:

    http://cdn.example.cn/hls/room-1/master.m3u8?auth_key={timestamp}-{rand}-{uid}-{md5hash}
    md5hash = md5("{URI}-{timestamp}-{rand}-{uid}-{PrivateKey}")  (hex, URI: the path)

A URL is valid until ``timestamp + ttl`` (the CDN's 有效时长 setting must be the same).

**Per lesson, not per viewer**: ``timestamp`` is the issuing time rounded down to
``bucket_seconds`` and ``rand`` is derived from the key, the room and that timestamp, with
``uid`` 0, so every viewer of a lesson within a bucket gets the same URLs and a CDN caches
one copy. **Inner URIs**: the origin rewrites each URI of a playlist it serves to carry the
same timestamp/rand/uid signed for that URI's own path, so segments and variant playlists
validate at the CDN and here, and expire with the master URL.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from urllib.parse import urljoin

AUTH_KEY = "auth_key"
_AUTH_VALUE = re.compile(r"^(\d{10})-([0-9a-zA-Z]{1,64})-([0-9a-zA-Z]{1,64})-([0-9a-f]{32})$")
_URI_ATTRIBUTE = re.compile(r'URI="([^"]+)"')


@dataclass(frozen=True, slots=True)
class AuthParts:
    timestamp: int
    rand: str
    uid: str


class Verdict:
    ok = "ok"
    missing = "missing"
    malformed = "malformed"
    wrong = "wrong"
    expired = "expired"


class UrlSigner:
    def __init__(self, key: str, ttl_seconds: float, bucket_seconds: float = 600) -> None:
        if not key:
            raise ValueError("the HLS URL key must not be empty")
        self._key = key
        self.ttl = ttl_seconds
        self.bucket = max(1.0, bucket_seconds)

    def _hash(self, uri: str, parts: AuthParts) -> str:
        text = f"{uri}-{parts.timestamp}-{parts.rand}-{parts.uid}-{self._key}"
        return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()

    def lesson_parts(self, room_id: str, now: float | None = None) -> AuthParts:
        """The timestamp/rand/uid every viewer of ``room_id`` gets now."""
        now = time.time() if now is None else now
        timestamp = int(now // self.bucket * self.bucket)
        rand = hmac.new(
            self._key.encode(), f"{room_id}|{timestamp}".encode(), hashlib.sha256
        ).hexdigest()[:32]
        return AuthParts(timestamp, rand, "0")

    def auth_value(self, uri: str, parts: AuthParts) -> str:
        return f"{parts.timestamp}-{parts.rand}-{parts.uid}-{self._hash(uri, parts)}"

    def sign(self, uri: str, parts: AuthParts) -> str:
        """``uri`` (a path) with its ``auth_key``."""
        return f"{uri}?{AUTH_KEY}={self.auth_value(uri, parts)}"

    def expires_at(self, parts: AuthParts) -> float:
        return parts.timestamp + self.ttl

    def check(
        self, uri: str, value: str | None, now: float | None = None
    ) -> tuple[str, AuthParts | None]:
        """Whether ``auth_key=value`` is valid for ``uri`` now: a ``Verdict``, and its parts."""
        if not value:
            return Verdict.missing, None
        match = _AUTH_VALUE.match(value)
        if match is None:
            return Verdict.malformed, None
        parts = AuthParts(int(match[1]), match[2], match[3])
        if not hmac.compare_digest(self._hash(uri, parts), match[4]):
            return Verdict.wrong, None
        now = time.time() if now is None else now
        if now > self.expires_at(parts):
            return Verdict.expired, None
        return Verdict.ok, parts

    def sign_playlist(self, text: str, playlist_uri: str, parts: AuthParts) -> str:
        """Every URI of a playlist (lines and ``URI="…"`` attributes) resolved against the
        playlist's own path and signed with the same parts: relative URIs stay relative in
        path form, so the playlist works behind any host (a CDN's, the app's)."""
        out = []
        for line in text.splitlines():
            if line and not line.startswith("#"):
                line = self._signed_relative(line, playlist_uri, parts)
            elif line.startswith("#") and 'URI="' in line:
                line = _URI_ATTRIBUTE.sub(
                    lambda m: f'URI="{self._signed_relative(m[1], playlist_uri, parts)}"', line
                )
            out.append(line)
        return "\n".join(out) + "\n"

    def _signed_relative(self, reference: str, playlist_uri: str, parts: AuthParts) -> str:
        if "?" in reference or "//" in reference:
            return reference  # not one of ours
        absolute = urljoin(playlist_uri, reference)
        return f"{reference}?{AUTH_KEY}={self.auth_value(absolute, parts)}"
