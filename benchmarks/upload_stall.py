"""A province's district uploaded to a real ``sanke serve``: does the server keep answering?

    .venv/bin/python benchmarks/upload_stall.py [--offerings 5000 --classes 20000] [--pretty]

Side by side, the same upload to two servers:

- **on the loop** (the previous release): the district is parsed and validated in the
  request handler (``SANKE_UPLOAD_OFFLOAD_BYTES`` set past the body's size);
- **child process** (now): parsed and validated from bytes in a spawned process.

While the body uploads and is checked, ``/healthz`` is asked every 20 ms, one request after
another; each answer's lateness counts from when it was due. The server's RSS (and its child
processes' RSS) is sampled every 50 ms. Prints one row per way and a RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import aiohttp
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.processes import ServerProcess, free_port

from contracts.rooms import Role
from sanke.settings import DEFAULT_TOKEN_SECRET
from scheduler.synthetic import province
from signaling.tokens import TokenService


class RssSampler(threading.Thread):
    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.proc = psutil.Process(pid)
        self.server_peak = 0
        self.children_peak = 0
        self.stop = threading.Event()

    def server_rss(self) -> int:
        return int(self.proc.memory_info().rss)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                self.server_peak = max(self.server_peak, self.server_rss())
                children = sum(c.memory_info().rss for c in self.proc.children(recursive=True))
                self.children_peak = max(self.children_peak, children)
            except psutil.Error:
                pass
            time.sleep(0.05)


async def measure(body: bytes, offload_bytes: int, log: Path) -> dict[str, Any]:
    port = free_port()
    env = {"SANKE_MEDIA": "false", "SANKE_UPLOAD_OFFLOAD_BYTES": str(offload_bytes)}
    server = ServerProcess(["serve", "--dev", "--host", "127.0.0.1"], env, port, log)
    try:
        server.wait_ready(60)
        token = TokenService(DEFAULT_TOKEN_SECRET).mint(subject="bench", role=Role.coordinator)
        auth = {"Authorization": f"Bearer {token}"}
        sampler = RssSampler(server.proc.pid)
        before = sampler.server_rss()
        sampler.start()
        lags: list[float] = []
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            started = time.perf_counter()
            upload = asyncio.ensure_future(
                session.put(f"{server.base}/api/v1/schedule/district", data=body, headers=auth)
            )
            while True:
                due = time.perf_counter() + 0.02
                await asyncio.sleep(0.02)
                async with session.get(f"{server.base}/healthz") as reply:
                    await reply.read()
                lags.append(time.perf_counter() - due)
                if upload.done():
                    break
            reply = await upload
            elapsed = time.perf_counter() - started
            status = reply.status
            await reply.read()
        time.sleep(1.0)  # let the child exit and the allocator settle
        sampler.stop.set()
        sampler.join()
        after = sampler.server_rss()
        lags.sort()
        return {
            "status": status,
            "seconds": elapsed,
            "max_lag": lags[-1],
            "p50_lag": lags[len(lags) // 2],
            "polls": len(lags),
            "rss_before": before,
            "rss_peak": sampler.server_peak,
            "rss_after": after,
            "children_peak": sampler.children_peak,
        }
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--offerings", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pretty", action="store_true", help="upload indented JSON")
    args = parser.parse_args()
    district = province(args.seed, args.offerings, args.classes)
    body = district.model_dump_json().encode()
    if args.pretty:
        body = json.dumps(json.loads(body), indent=2, ensure_ascii=False).encode()
    print(
        f"district: {len(district.schools)} schools, {len(district.offerings)} offerings, "
        f"{len(district.demands)} demands, {len(body) / 1e6:.1f} MB JSON"
    )
    logs = Path(os.environ.get("TMPDIR", "/tmp"))
    rows = [
        ("on the loop", asyncio.run(measure(body, len(body) + 1, logs / "upload-loop.log"))),
        ("child process", asyncio.run(measure(body, 1 << 20, logs / "upload-child.log"))),
    ]
    mb = 1 << 20
    print(
        f"{'way':<14} {'status':>6} {'upload s':>9} {'healthz max':>12} {'p50':>7} "
        f"{'RSS before':>11} {'peak':>7} {'after':>7} {'child peak':>11}"
    )
    for name, r in rows:
        print(
            f"{name:<14} {r['status']:>6} {r['seconds']:>9.2f} {r['max_lag'] * 1000:>10.0f}ms "
            f"{r['p50_lag'] * 1000:>5.0f}ms {r['rss_before'] / mb:>9.0f}MB "
            f"{r['rss_peak'] / mb:>5.0f}MB {r['rss_after'] / mb:>5.0f}MB "
            f"{r['children_peak'] / mb:>9.0f}MB"
        )
    loop, child = rows[0][1], rows[1][1]
    print(
        f"RESULT upload_stall mb={len(body) / 1e6:.1f} loop_max_lag_ms={loop['max_lag'] * 1000:.0f} "
        f"child_max_lag_ms={child['max_lag'] * 1000:.0f} "
        f"loop_rss_peak_mb={loop['rss_peak'] / mb:.0f} child_server_rss_peak_mb="
        f"{child['rss_peak'] / mb:.0f} child_process_peak_mb={child['children_peak'] / mb:.0f}"
    )


if __name__ == "__main__":
    main()
