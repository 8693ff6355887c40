"""An SRT stream (a 录播 host, OBS or a hardware encoder) as a Producer's origin: remuxed by
a supervised ``ffmpeg``, never decoded.

PyAV's wheels have no libsrt (``av.open("srt://…")`` fails); Debian's ``ffmpeg`` has it. So
each connection runs ``ffmpeg -i srt://… -c copy -f mpegts pipe:1`` (the packets copied, no
video decoded or encoded: a few percent of a core) and the pull reads that pipe with PyAV
exactly as it reads an RTSP camera (``media.rtsp_origin.RtspPull``: H.264 only, B-frames and
H.265 refused with the setting to change, SPS/PPS before every IDR, AAC → Opus, a bounded
hand-over, reconnecting with a backoff of 1 s doubling to 30 s).

``url`` is FFmpeg's SRT URL: ``srt://[::]:9000?mode=listener`` waits for the encoder to call
(the usual setup: the encoder is given Sanke's address), ``srt://encoder:9000?mode=caller``
calls an encoder that listens; ``streamid=``, ``passphrase=`` and ``latency=`` pass through.
The subprocess's lifetime is the connection's: it exits when the stream ends or the SRT peer
goes quiet (SRT's own peer idle timeout, 5 s), and is killed when the pull stops, so no
ffmpeg outlives its lesson; a listener waiting for its caller is the thread waiting (on the
pipe), never the event loop.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from typing import Any

import av

from media.ingest_audio import IngestAudio
from media.rtsp_origin import READ_TIMEOUT, RtspPull, redacted

log = logging.getLogger(__name__)

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


class SrtPull(RtspPull):
    """One SRT stream as the ``high`` layer (an SRT source has no sub-stream)."""

    def __init__(
        self, url: str, *, audio: IngestAudio | None = None, read_timeout: float = READ_TIMEOUT
    ) -> None:
        super().__init__(url, "high", audio=audio, read_timeout=read_timeout)
        self._proc: subprocess.Popen[bytes] | None = None
        self._proc_lock = threading.Lock()

    def _open(self) -> Any:
        args = [
            FFMPEG, "-hide_banner", "-loglevel", "error", "-nostdin",
            "-i", self.url, "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy",
            "-f", "mpegts", "pipe:1",
        ]  # fmt: skip
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        with self._proc_lock:
            self._proc = proc
        if self._stop.is_set():  # closed while starting
            self._closed()
            raise RuntimeError("stopped")
        assert proc.stdout is not None
        log.info("SRT %s: ffmpeg %d remuxes it", redacted(self.url), proc.pid)
        # a listener waits here for its caller (killed by close); probing is kept short
        return av.open(
            proc.stdout, format="mpegts", options={"probesize": "500000", "analyzeduration": "0"}
        )

    def _closed(self) -> None:
        with self._proc_lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            log.warning("SRT %s: ffmpeg %d did not exit", redacted(self.url), proc.pid)
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        """Stop: the subprocess is killed at once, so a read blocked on its pipe returns."""
        super().close()
        with self._proc_lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
