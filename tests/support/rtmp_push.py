"""FFmpeg as the 录播 host or OBS: a real RTMP push of a 1280x720 test picture and a sine."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path


def key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class FfmpegPush:
    def __init__(
        self,
        url: str,
        log: Path,
        *,
        bframes: int = 0,
        codec: str = "libx264",
        size: str = "1280x720",
        audio: bool = True,
        seconds: float = 60,
    ) -> None:
        self.url = url
        self.log_path = log
        video = ["-c:v", codec, "-preset", "ultrafast", "-g", "50", "-b:v", "1500k"]
        if codec == "libx264":
            video += ["-bf", str(bframes), "-pix_fmt", "yuv420p"]
            if bframes == 0:
                video += ["-tune", "zerolatency"]
        inputs = ["-re", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=25"]
        if audio:
            inputs += ["-re", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
        self.args = [
            "ffmpeg", "-hide_banner", "-loglevel", "info", "-nostdin",
            *inputs, "-t", str(seconds), *video,
            *(["-c:a", "aac", "-b:a", "96k"] if audio else ["-an"]),
            "-f", "flv", url,
        ]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> FfmpegPush:
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(self.args, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    def output(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-3000:]

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def kill(self) -> None:
        """Pull the plug: no RTMP deleteStream, the TCP connection just goes."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def stop(self) -> None:
        self.kill()
        self._log.close()

    def __enter__(self) -> FfmpegPush:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
