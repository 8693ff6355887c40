"""A real RTSP camera for the ingest tests: GStreamer's RTSP server (GstRtspServer).

``RtspCamera`` runs this file under the *system* python3, which has PyGObject (``gi``; the
project's venv does not), as a subprocess serving a moving test pattern on ``/main`` (and a
smaller ``/sub``, a camera's sub-stream) encoded live by x264enc like an IP camera: baseline
profile, an IDR every ``key-int-max`` frames, no B-frames, SPS/PPS only in the SDP
(``sprop-parameter-sets``). Variants send what a camera must not: ``h265`` (x265enc),
``bframes`` (x264 main profile with B-frames), and ``sub_variant="mjpeg"`` a sub-stream in
Motion JPEG (jpegenc ! rtpjpegpay), as many IP cameras' sub-streams default to. With a user and password the
server asks for basic authentication (``digest``: digest authentication). The packages: scripts/system-deps.sh.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SYSTEM_PYTHON = "/usr/bin/python3"

VIDEO = (
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width={w},height={h},framerate={fps}/1"
)
# a camera's microphone: AAC (mpeg4-generic), as IP cameras send it
AUDIO = (
    "audiotestsrc is-live=true wave=sine freq=440 ! audio/x-raw,rate=48000,channels=1 "
    "! audioconvert ! avenc_aac bitrate=64000 ! rtpmp4gpay name=pay1 pt=97"
)
ENCODERS = {
    "h264": (
        "x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 "
        "bitrate={kbps} ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96"
    ),
    "bframes": (
        "x264enc speed-preset=ultrafast key-int-max={gop} bframes=2 b-adapt=false "
        "bitrate={kbps} ! video/x-h264,profile=main ! rtph264pay name=pay0 pt=96"
    ),
    "mjpeg": "videoconvert ! video/x-raw,format=I420 ! jpegenc quality=50 ! rtpjpegpay name=pay0 pt=26",
    "h265": (
        "x265enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bitrate={kbps} "
        "! rtph265pay name=pay0 pt=96"
    ),
}


class RtspCamera:
    """The camera as a subprocess on ``port``; ``stop``/``start`` again is a camera restart."""

    def __init__(
        self,
        port: int,
        log: Path,
        *,
        variant: str = "h264",
        size: tuple[int, int] = (1280, 720),
        sub_size: tuple[int, int] | None = (352, 288),
        sub_variant: str = "h264",
        user: str | None = None,
        password: str | None = None,
        digest: bool = False,
        audio: bool = False,
    ) -> None:
        self.port = port
        self.log_path = log
        self.variant = variant
        self.size = size
        self.sub_size = sub_size
        self.sub_variant = sub_variant
        self.user, self.password = user, password
        self.digest = digest
        self.audio = audio
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "main", user: str | None = None, password: str | None = None) -> str:
        auth = f"{user}:{password}@" if user is not None else ""
        return f"rtsp://{auth}127.0.0.1:{self.port}/{path}"

    def start(self, timeout: float = 20.0) -> None:
        args = [SYSTEM_PYTHON, __file__, "--port", str(self.port), "--variant", self.variant]
        args += ["--size", f"{self.size[0]}x{self.size[1]}"]
        if self.sub_size is not None:
            args += ["--sub-size", f"{self.sub_size[0]}x{self.sub_size[1]}"]
            args += ["--sub-variant", self.sub_variant]
        if self.user is not None and self.password is not None:
            args += ["--user", self.user, "--password", self.password]
            if self.digest:
                args.append("--digest")
        if self.audio:
            args.append("--audio")
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, env=env)
        log.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        line = b""
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith(b"READY") or not line:
                break
        if not line.startswith(b"READY"):
            self.stop()
            raise RuntimeError(f"the RTSP server did not start: {self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None

    def __enter__(self) -> RtspCamera:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pipeline(variant: str, size: str, gop: int, kbps: int, audio: bool = False) -> str:
    w, h = size.split("x")
    video = VIDEO.format(w=w, h=h, fps=30) + " ! " + ENCODERS[variant].format(gop=gop, kbps=kbps)
    return "( " + video + (" " + AUDIO if audio else "") + " )"


def main() -> None:  # runs under the system python3 (gi)
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--variant", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--sub-size", default=None)
    parser.add_argument("--sub-variant", choices=sorted(ENCODERS), default="h264")
    parser.add_argument("--gop", type=int, default=30)
    parser.add_argument("--user", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--digest", action="store_true", help="digest, not basic, auth")
    parser.add_argument("--audio", action="store_true", help="AAC audio on /main")
    args = parser.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    gi.require_version("GstRtsp", "1.0")
    from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    streams = {"/main": (args.size, 2000, args.variant)}
    if args.sub_size:
        streams["/sub"] = (args.sub_size, 300, args.sub_variant)
    permissions = None
    if args.user:
        auth = GstRtspServer.RTSPAuth()
        token = GstRtspServer.RTSPToken()
        token.set_string("media.factory.role", args.user)
        if args.digest:
            auth.add_digest(args.user, args.password, token)
            auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
        else:
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(args.user, args.password), token)
        server.set_auth(auth)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_role_from_structure(
            Gst.Structure.new_from_string(
                f"{args.user}, media.factory.access=(boolean)true, "
                "media.factory.construct=(boolean)true"
            )
        )
    for path, (size, kbps, variant) in streams.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(_pipeline(variant, size, args.gop, kbps, args.audio and path == "/main"))
        factory.set_shared(True)
        if permissions is not None:
            factory.set_permissions(permissions)
        mounts.add_factory(path, factory)
    if server.attach(None) == 0:
        sys.exit("could not listen")
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print("READY", args.port, flush=True)
    loop.run()


if __name__ == "__main__":
    main()
