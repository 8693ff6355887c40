"""An S3-compatible server of the test's own: moto's server (``moto_server``), a Python
implementation of S3's HTTP API (SigV4, multipart uploads, ranges, presigned URLs) keeping
objects in memory — a mock of S3, not MinIO: no MinIO, Garage or SeaweedFS server installs
here. Started on a free port on ``::`` (IPv6 and IPv4); ``stop()`` and ``start()`` again on
the same port play an outage (its objects are gone with the process, like a wiped server)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from support.processes import free_port

ACCESS_KEY = "sanke-test-access"
SECRET_KEY = "sanke-test-secret-key-0123456789"
BUCKET = "sanke-recordings"


class MotoS3:
    def __init__(self, log: Path) -> None:
        self.port = free_port("::1")
        self.log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"http://[::1]:{self.port}"

    def start(self) -> None:
        binary = shutil.which("moto_server", path=str(Path(sys.executable).parent))
        assert binary, "moto[server] is a test dependency (pyproject.toml)"
        with self.log.open("ab") as out:
            self._process = subprocess.Popen(
                [binary, "-H", "::", "-p", str(self.port)], stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.endpoint}/moto-api/", timeout=1).close()
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.1)
        raise RuntimeError(f"moto_server did not start: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
