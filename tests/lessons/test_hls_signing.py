"""Signed HLS URLs (Aliyun/Tencent CDN URL authentication type A): the documented formula,
one URL per lesson (not per viewer), playlists whose every inner URI validates, expiry."""

from __future__ import annotations

import hashlib

from lessons.hls_signing import UrlSigner, Verdict

KEY = "a-private-key-of-16+"


def test_the_auth_key_is_the_documented_type_a_formula() -> None:
    signer = UrlSigner(KEY, ttl_seconds=1800)
    parts = signer.lesson_parts("room-1", now=1_800_000_123)
    url = signer.sign("/hls/room-1/master.m3u8", parts)
    path, auth = url.split("?auth_key=")
    timestamp, rand, uid, digest = auth.split("-")
    assert path == "/hls/room-1/master.m3u8" and uid == "0" and len(timestamp) == 10
    expected = hashlib.md5(f"{path}-{timestamp}-{rand}-{uid}-{KEY}".encode()).hexdigest()
    assert digest == expected
    assert signer.check(path, auth, now=int(timestamp) + 10)[0] == Verdict.ok


def test_every_viewer_of_a_lesson_gets_the_same_url_within_a_bucket() -> None:
    signer = UrlSigner(KEY, ttl_seconds=3600, bucket_seconds=600)
    a = signer.sign("/hls/r/master.m3u8", signer.lesson_parts("r", now=1_800_000_010))
    b = signer.sign("/hls/r/master.m3u8", signer.lesson_parts("r", now=1_800_000_500))
    other = signer.sign("/hls/q/master.m3u8", signer.lesson_parts("q", now=1_800_000_010))
    assert a == b and a.split("-")[1] != other.split("-")[1]


def test_expired_wrong_and_malformed_keys_are_refused() -> None:
    signer = UrlSigner(KEY, ttl_seconds=600)
    parts = signer.lesson_parts("room-1", now=1_800_000_000)
    auth = signer.auth_value("/hls/room-1/master.m3u8", parts)
    assert signer.check("/hls/room-1/master.m3u8", auth, now=parts.timestamp + 601)[0] == (
        Verdict.expired
    )
    assert signer.check("/hls/room-2/master.m3u8", auth, now=parts.timestamp)[0] == Verdict.wrong
    assert UrlSigner("another-key-of-16+", 600).check(
        "/hls/room-1/master.m3u8", auth, now=parts.timestamp
    )[0] == (Verdict.wrong)
    for bad in ("", "123-abc", auth + "0", auth.replace("-", "_"), "x" * 5000):
        assert signer.check("/hls/room-1/master.m3u8", bad or None)[0] in (
            Verdict.missing,
            Verdict.malformed,
        )


def test_a_served_playlist_signs_each_inner_uri_for_its_own_path() -> None:
    signer = UrlSigner(KEY, ttl_seconds=600)
    parts = signer.lesson_parts("room-1", now=1_800_000_000)
    media = (
        '#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MAP:URI="init.mp4"\n'
        "#EXTINF:1.0,\nseg000001.m4s\n#EXTINF:1.0,\nseg000002.m4s\n"
    )
    playlist = "/hls/room-1/S1/high/index.m3u8"
    signed = signer.sign_playlist(media, playlist, parts)
    uris = [line for line in signed.splitlines() if line and not line.startswith("#")]
    uris.append(signed.split('URI="')[1].split('"')[0])
    assert len(uris) == 3
    for uri in uris:
        name, auth = uri.split("?auth_key=")
        assert "/" not in name  # still relative: works behind the CDN's host or the app's
        verdict, _ = signer.check(f"/hls/room-1/S1/high/{name}", auth, now=parts.timestamp)
        assert verdict == Verdict.ok, uri
        # a signature for one segment does not open another
        assert signer.check("/hls/room-1/S1/high/seg000009.m4s", auth)[0] == Verdict.wrong


def test_only_what_the_packager_writes_can_be_named() -> None:
    from lessons.hls_api import _FILE

    served = ["room-1/master.m3u8", "r/20261203T131747Z-1/low/index.m3u8", "r/S-1/high/init.mp4"]
    served.append("r/S-1/high/seg000001.m4s")
    refused = ["../master.m3u8", "./master.m3u8", "r/../high/init.mp4", "r/S/mid/init.mp4"]
    refused += ["r/S-1/high/seg000001.m4s.tmp", "r/S-1/high/index.m3u8.tmp", "r/x.txt", ""]
    assert all(_FILE.match(path) for path in served)
    assert not any(_FILE.match(path) for path in refused)
