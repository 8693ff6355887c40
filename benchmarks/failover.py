"""Failover: N lessons on two SFU nodes, kill -9 one, time until media flows again.

Starts a real cluster on loopback (two ``sanke sfu`` nodes, one ``sanke signaling``, the
Redis at REDIS_URL or a throwaway redis-server), runs N lessons (a teacher publishing a
320x180 H264 clip, a classroom decoding it), kills the node hosting the most lessons, and
measures for every affected classroom the time from the kill to its first decoded frame
from the surviving node. Baseline in the same run: the time a fresh join takes to its
first frame (what a full client reconnect would cost at best).

    python benchmarks/failover.py --lessons 4
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the real aiortc client and clips the tests use

from support.clips import load_clip, make_clip  # noqa: E402
from support.processes import ServerProcess, free_port  # noqa: E402
from support.rtc_client import RtcClient  # noqa: E402

from contracts.rooms import Role  # noqa: E402
from contracts.store import open_store  # noqa: E402
from lessons.models import LessonSession  # noqa: E402
from lessons.repository import SessionRepository  # noqa: E402
from signaling.tokens import TokenService  # noqa: E402

SECRET = "failover-benchmark-secret-" + "x" * 20


def throwaway_redis(directory: Path) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
        ],
        stdout=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            redis.Redis(port=port).ping()
            break
        except redis.RedisError:
            time.sleep(0.05)
    return f"redis://127.0.0.1:{port}/0", proc


async def wait_until(predicate: object, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.02)
    return bool(predicate())  # type: ignore[operator]


async def run(lessons: int, redis_url: str, workdir: Path) -> dict[str, float]:
    prefix = f"bench-failover-{int(time.time())}:"
    env = {"REDIS_URL": redis_url, "SANKE_KEY_PREFIX": prefix, "SANKE_TOKEN_SECRET": SECRET,
           "SANKE_RECORDS_KEY": SECRET,
           "SANKE_HOST": "127.0.0.1", "SANKE_SFU_CAPACITY": str(lessons)}  # fmt: skip
    nodes = {
        n: ServerProcess(["sfu"], {**env, "SANKE_NODE_ID": n}, free_port(), workdir / f"{n}.log")
        for n in ("sfu-a", "sfu-b")
    }
    sig = ServerProcess(
        ["signaling"], {**env, "SANKE_NODE_ID": "sig"}, free_port(), workdir / "sig.log"
    )
    clip = load_clip(make_clip(workdir, "clip.ts"), "video")
    tokens = TokenService(SECRET)
    store = await open_store(redis_url, prefix)
    try:
        for process in (*nodes.values(), sig):
            process.wait_ready()
        ws = f"ws://127.0.0.1:{sig.port}/ws"
        now = time.time()
        async with aiohttp.ClientSession() as session:
            coordinator = tokens.mint(subject="c", role=Role.coordinator)
            pairs = []
            join_to_frame = []
            for i in range(lessons):
                room = f"lesson-{i}"
                await session.post(
                    f"{sig.base}/api/v1/rooms",
                    json={"id": room},
                    headers={"Authorization": f"Bearer {coordinator}"},
                )
                await SessionRepository(store).put(
                    LessonSession(
                        id=room,
                        room_id=room,
                        starts_at=now,
                        ends_at=now + 2400,
                        opens_at=now - 600,
                        closes_at=now + 3000,
                    )
                )
                teacher = RtcClient(
                    session, ws, tokens.mint(subject=f"t{i}", role=Role.teacher, room=room), clip
                )
                classroom = RtcClient(
                    session, ws, tokens.mint(subject=f"c{i}", role=Role.classroom, room=room)
                )
                started = time.monotonic()
                await asyncio.gather(teacher.start(), classroom.start())
                if not await wait_until(lambda c=classroom: c.frames > 0, 30):
                    raise RuntimeError(f"{room}: no media before the failover")
                join_to_frame.append(classroom.frame_times[0] - started)
                pairs.append((room, teacher, classroom))
            placement = {
                room: redis.Redis.from_url(redis_url)
                .hget(f"{prefix}h:media:placements", room)
                .decode()
                for room, _, _ in pairs
            }  # type: ignore[union-attr]
            victim = max(nodes, key=lambda n: sum(1 for v in placement.values() if v == n))
            affected = [(room, c) for room, _, c in pairs if placement[room] == victim]
            print(
                f"{lessons} lessons placed: {sorted(placement.values())}; killing {victim} ({len(affected)} lessons)"
            )
            killed = time.monotonic()
            nodes[victim].kill()
            gaps = []
            for _room, classroom in affected:
                if await wait_until(lambda c=classroom: c.frames_after(killed) > 0, 30):
                    gaps.append(min(t for t in classroom.frame_times if t > killed) - killed)
                else:
                    gaps.append(float("inf"))
            lost = 0
            for room, _, _ in pairs:
                if await SessionRepository(store).get(room) is None:
                    lost += 1
            for _, teacher, classroom in pairs:
                await teacher.close()
                await classroom.close()
    finally:
        for process in (*nodes.values(), sig):
            process.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=prefix + "*"):
            client.delete(key)
        await store.close()
    return {
        "affected": len(affected),
        "p50": statistics.median(gaps),
        "max": max(gaps),
        "join_p50": statistics.median(join_to_frame),
        "join_max": max(join_to_frame),
        "lost": lost,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lessons", type=int, default=4)
    parser.add_argument("--redis-url", default=None)
    args = parser.parse_args()
    if shutil.which("redis-server") is None:
        raise SystemExit("needs redis-server (apt-get install redis-server)")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        redis_proc = None
        url = args.redis_url
        if url is None:
            url, redis_proc = throwaway_redis(workdir)
        try:
            r = asyncio.run(run(args.lessons, url, workdir))
        finally:
            if redis_proc is not None:
                redis_proc.terminate()
    print()
    print(f"{'measure':<44} | {'p50 s':>7} | {'max s':>7}")
    print("-" * 64)
    print(
        f"{'kill -9 → first frame from the other node':<44} | {r['p50']:>7.2f} | {r['max']:>7.2f}"
    )
    print(
        f"{'baseline: fresh join → first frame':<44} | {r['join_p50']:>7.2f} | {r['join_max']:>7.2f}"
    )
    print(
        f"lessons affected: {r['affected']:.0f} of {args.lessons}; lesson records lost: {r['lost']:.0f}"
    )
    print(
        f"RESULT failover lessons={args.lessons} p50_s={r['p50']:.2f} max_s={r['max']:.2f} lost_records={r['lost']:.0f}"
    )


if __name__ == "__main__":
    main()
