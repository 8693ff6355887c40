"""Self-test of ``support.netns``: real traffic through an impaired veth into a namespace.

Caps are measured with UDP at 3 Mbps against a 600 kbps tbf, loss with 2000 numbered packets
against the nftables rules (and their counters), IPv6 with a ULA round trip, and Chromium is
launched by Playwright *inside* the namespace. Teardown must leave nothing behind.
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from support.browser import CHROMIUM, CHROMIUM_ARGS
from support.netns import (
    NFT_TABLE,
    STATE_DIR,
    NetNamespace,
    _locked,
    cleanup_stale,
    require_netns,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

FULL_BPS = 3_000_000
CAP_KBPS = 600
PAYLOAD = 1200
PHASE_S = 2.0
# Skipped at the start of each phase: the tbf's initial burst and queue fill, and after
# clear() the packets still in flight.
SETTLE_S = 0.25
SO_RCVBUFFORCE = 33  # Linux; not exported by Python's socket module


@pytest.fixture
def ns() -> Iterator[NetNamespace]:
    require_netns()
    with NetNamespace() as n:
        yield n


def _namespaces() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout


def _links() -> str:
    return subprocess.run(["ip", "-br", "link"], capture_output=True, text=True).stdout


def _gone(pid: int) -> bool:
    """Exited (a zombie nobody reaped yet counts: it is no longer in any namespace)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def _rx_socket(sock: socket.socket, addr: str) -> socket.socket:
    sock.bind((addr, 0))
    sock.setblocking(False)
    # Room for a burst of small packets, so only the impairment loses any (root: FORCE).
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 4 << 20)
    return sock


async def _receive(sock: socket.socket, arrivals: list[tuple[float, bytes]]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        data = await loop.sock_recv(sock, 65536)
        arrivals.append((time.monotonic(), data))


async def _send_paced(
    sock: socket.socket,
    dest: tuple[str, int],
    *,
    bps: float,
    size: int,
    seconds: float | None = None,
    count: int | None = None,
) -> int:
    """Sends numbered packets at ``bps`` (on average) for ``seconds`` or ``count`` packets."""
    start = time.monotonic()
    sent = 0
    while True:
        elapsed = time.monotonic() - start
        if (seconds is not None and elapsed >= seconds) or (count is not None and sent >= count):
            return sent
        due = int(elapsed * bps / 8 / size) + 1
        while sent < due and (count is None or sent < count):
            sock.sendto(sent.to_bytes(4, "big") + bytes(size - 4), dest)
            sent += 1
        await asyncio.sleep(0.002)


def _mbps(arrivals: list[tuple[float, bytes]], start: float, end: float) -> float:
    got = sum(len(d) for t, d in arrivals if start <= t < end)
    return got * 8 / (end - start) / 1e6


async def test_downlink_cap_applies_and_clears_while_traffic_flows(ns: NetNamespace) -> None:
    ns.limit(downlink_kbps=CAP_KBPS)
    rx = _rx_socket(ns.socket(), ns.ns_ip4)
    port = rx.getsockname()[1]
    arrivals: list[tuple[float, bytes]] = []
    receiver = asyncio.ensure_future(_receive(rx, arrivals))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        t0 = time.monotonic()
        sender = asyncio.ensure_future(
            _send_paced(tx, (ns.ns_ip4, port), bps=FULL_BPS, size=PAYLOAD, seconds=2 * PHASE_S)
        )
        await asyncio.sleep(PHASE_S)
        # The calls below block the loop: what arrives meanwhile is read (and stamped) after t1.
        t_cap = time.monotonic()
        capped = ns.counters()
        ns.clear()
        t1 = time.monotonic()
        await sender
        await asyncio.sleep(0.2)
    receiver.cancel()
    rx.close()
    low = _mbps(arrivals, t0 + SETTLE_S, t_cap)
    full = _mbps(arrivals, t1 + SETTLE_S, t0 + 2 * PHASE_S)
    print(f"downlink: capped {low:.3f} Mbps, cleared {full:.3f} Mbps; tbf {capped.down}")
    assert capped.down.kind == "tbf" and capped.down.dropped > 0
    assert 0.45 <= low <= 0.75
    assert 2.7 <= full <= 3.3
    assert ns.counters().down.kind == "noqueue"


SENDER = """
import socket, sys, time
host, port, bps, size, seconds = sys.argv[1], int(sys.argv[2]), *map(float, sys.argv[3:6])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
start, sent = time.monotonic(), 0
while (elapsed := time.monotonic() - start) < seconds:
    while sent < int(elapsed * bps / 8 / size) + 1:
        s.sendto(bytes(int(size)), (host, port))
        sent += 1
    time.sleep(0.002)
print(sent)
"""


async def test_uplink_cap_from_a_python_process_inside(ns: NetNamespace) -> None:
    ns.limit(uplink_kbps=CAP_KBPS)
    rx = _rx_socket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM), ns.host_ip4)
    port = rx.getsockname()[1]
    arrivals: list[tuple[float, bytes]] = []
    receiver = asyncio.ensure_future(_receive(rx, arrivals))
    seconds = 2 * PHASE_S + 0.5
    args = [ns.host_ip4, str(port), str(FULL_BPS), str(PAYLOAD), str(seconds)]
    proc = ns.popen_python(
        "-c", SENDER, *args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 5
    while not arrivals and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    assert arrivals, "nothing arrived from the sender in the namespace"
    t0 = arrivals[0][0]
    await asyncio.sleep(PHASE_S - (time.monotonic() - t0))
    t_cap = time.monotonic()
    capped = ns.counters()
    ns.clear()
    t1 = time.monotonic()
    out, err = await asyncio.to_thread(proc.communicate, timeout=15)
    await asyncio.sleep(0.2)
    receiver.cancel()
    rx.close()
    assert proc.returncode == 0, err  # tbf drops do not fail the sender's sendto
    low = _mbps(arrivals, t0 + SETTLE_S, t_cap)
    full = _mbps(arrivals, t1 + SETTLE_S, t0 + 2 * PHASE_S)
    print(f"uplink: capped {low:.3f} Mbps, cleared {full:.3f} Mbps; sent {out.strip()}")
    assert capped.up.kind == "tbf" and capped.up.dropped > 0 and capped.down.kind == "noqueue"
    assert 0.45 <= low <= 0.75
    assert 2.7 <= full <= 3.3


@pytest.mark.parametrize("direction", ["down", "up"])
async def test_five_percent_loss(ns: NetNamespace, direction: str) -> None:
    ns.loss(5, "down" if direction == "down" else "up")
    inside = ns.socket()
    outside = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    if direction == "down":
        tx, rx = outside, _rx_socket(inside, ns.ns_ip4)
    else:
        tx, rx = inside, _rx_socket(outside, ns.host_ip4)
    arrivals: list[tuple[float, bytes]] = []
    receiver = asyncio.ensure_future(_receive(rx, arrivals))
    # 2000 packets of 200 bytes at 3.2 Mbps (2000/s): no queue comes close to overflowing.
    sent = await _send_paced(tx, rx.getsockname(), bps=3_200_000, size=200, count=2000)
    await asyncio.sleep(0.3)
    receiver.cancel()
    tx.close()
    rx.close()
    seqs = {int.from_bytes(d[:4], "big") for _, d in arrivals}
    lost = sent - len(seqs)
    counters = ns.counters()
    print(f"loss {direction}: {lost}/{sent} = {lost / sent:.2%}; {counters}")
    assert 0.02 <= lost / sent <= 0.09
    # Every packet missing was dropped by the rule, and by the rule of that direction only.
    dropped = counters.loss_dropped_down if direction == "down" else counters.loss_dropped_up
    other = counters.loss_dropped_up if direction == "down" else counters.loss_dropped_down
    assert (dropped, other) == (lost, 0)
    ns.clear()
    assert ns.counters().loss_dropped_down == ns.counters().loss_dropped_up == 0


async def test_ipv6_round_trip_through_the_namespace(ns: NetNamespace) -> None:
    echo = _rx_socket(ns.socket(socket.AF_INET6), ns.ns_ip6)
    host = _rx_socket(socket.socket(socket.AF_INET6, socket.SOCK_DGRAM), ns.host_ip6)
    loop = asyncio.get_running_loop()
    try:
        for i in range(3):
            host.sendto(f"ping {i}".encode(), echo.getsockname()[:2])
            data, peer = await asyncio.wait_for(loop.sock_recvfrom(echo, 100), 2)
            assert data == f"ping {i}".encode() and peer[0] == ns.host_ip6
            echo.sendto(b"pong " + data, peer)
            reply, src = await asyncio.wait_for(loop.sock_recvfrom(host, 100), 2)
            assert reply == f"pong ping {i}".encode() and src[0] == ns.ns_ip6
    finally:
        echo.close()
        host.close()
    # The namespace's IPv6 default route goes via the host side (and v4's too).
    routes = ns.run(["ip", "-6", "route", "show", "default"], capture_output=True, text=True)
    assert f"via {ns.host_ip6}" in routes.stdout


async def test_full_loss_cuts_the_link_and_clear_restores_it(ns: NetNamespace) -> None:
    loop = asyncio.get_running_loop()
    for family, ns_addr, host_addr in (
        (socket.AF_INET, ns.ns_ip4, ns.host_ip4),
        (socket.AF_INET6, ns.ns_ip6, ns.host_ip6),
    ):
        rx = _rx_socket(ns.socket(family), ns_addr)
        with rx, socket.socket(family, socket.SOCK_DGRAM) as tx:
            tx.bind((host_addr, 0))
            ns.loss(100, "down")
            tx.sendto(b"lost", rx.getsockname()[:2])
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(loop.sock_recv(rx, 100), 0.3)
            ns.clear()
            tx.sendto(b"back", rx.getsockname()[:2])
            assert await asyncio.wait_for(loop.sock_recv(rx, 100), 2) == b"back"
        assert ns.counters().loss_dropped_down == 0  # the table went with clear()


def test_python_inside_is_the_venv_and_sees_only_the_namespace(ns: NetNamespace) -> None:
    code = (
        "import importlib.util, socket; assert importlib.util.find_spec('aiortc');"
        "print(sorted(n for _, n in socket.if_nameindex()))"
    )
    out = subprocess.run(ns.python_args("-c", code), capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(sorted(["eth0", "lo"]))


@pytest.mark.browser
async def test_chromium_inside_the_namespace(ns: NetNamespace, tmp_path: Path) -> None:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.async_api import Error as PlaywrightError
    from playwright.async_api import async_playwright

    async def page(request: web.Request) -> web.Response:
        html = "<!doctype html><title>netns</title><p>hello from the host</p>"
        return web.Response(text=html, content_type="text/html")

    async def data(request: web.Request) -> web.Response:
        return web.json_response({"remote": request.remote})

    app = web.Application()
    app.router.add_get("/", page)
    app.router.add_get("/data", data)
    runner = web.AppRunner(app)
    await runner.setup()
    sockets = {}
    for key, family, addr in (
        ("v4", socket.AF_INET, ns.host_ip4),
        ("v6", socket.AF_INET6, ns.host_ip6),
        ("loopback", socket.AF_INET, "127.0.0.1"),
    ):
        s = socket.socket(family, socket.SOCK_STREAM)
        s.bind((addr, 0))
        sockets[key] = s
        await web.SockSite(runner, s).start()
    port = {k: s.getsockname()[1] for k, s in sockets.items()}
    fetch = "fetch('/data').then(r => r.json())"
    try:
        # Control: the loopback-bound server answers on the host itself.
        url = f"http://127.0.0.1:{port['loopback']}/data"
        async with aiohttp.ClientSession() as http, http.get(url) as reply:
            assert (await reply.json())["remote"] == "127.0.0.1"
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(
                executable_path=ns.chromium_executable(tmp_path), headless=True, args=CHROMIUM_ARGS
            )
            try:
                tab = await browser.new_page()
                await tab.goto(f"http://{ns.host_ip4}:{port['v4']}/")
                assert await tab.text_content("p") == "hello from the host"
                # The server saw the browser come from the namespace side of the veth.
                assert await tab.evaluate(fetch) == {"remote": ns.ns_ip4}
                await tab.goto(f"http://[{ns.host_ip6}]:{port['v6']}/")
                assert await tab.evaluate(fetch) == {"remote": ns.ns_ip6}
                # The host's 127.0.0.1 is not the namespace's: nothing listens there.
                with pytest.raises(PlaywrightError, match="ERR_CONNECTION_REFUSED"):
                    await tab.goto(f"http://127.0.0.1:{port['loopback']}/", timeout=5000)
            finally:
                await browser.close()
        # Every Chromium process ended with the browser: nothing left in the namespace.
        left = subprocess.run(["ip", "netns", "pids", ns.name], capture_output=True, text=True)
        assert left.stdout.split() == []
    finally:
        await runner.cleanup()
        for s in sockets.values():
            s.close()


def test_teardown_leaves_nothing_behind() -> None:
    require_netns()
    with NetNamespace() as n:
        n.limit(downlink_kbps=500, uplink_kbps=500)
        n.loss(3, "both")
        tracked = n.popen(["sleep", "60"])
        # Not tracked by the harness: a background process started through a shell.
        n.run(["sh", "-c", "sleep 61 >/dev/null 2>&1 &"], check=True)
        tables = n.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
        assert f"netdev {NFT_TABLE}" in tables
        assert n.name in _namespaces() and n.host_ifname in _links()
        pids = subprocess.run(["ip", "netns", "pids", n.name], capture_output=True, text=True)
        inside = [int(p) for p in pids.stdout.split()]
        assert len(inside) == 2
    assert tracked.poll() is not None
    assert all(_gone(pid) for pid in inside)
    assert n.name not in _namespaces()
    assert n.host_ifname not in _links()
    assert not Path(f"/run/netns/{n.name}").exists()
    assert not (STATE_DIR / f"{n.name}.owner").exists()
    host_tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True)
    assert NFT_TABLE not in host_tables.stdout

    # Also after a failure inside the block.
    with pytest.raises(RuntimeError, match="boom"), NetNamespace() as failed:
        failed.limit(downlink_kbps=500)
        raise RuntimeError("boom")
    assert failed.name not in _namespaces() and failed.host_ifname not in _links()


def test_stale_namespaces_of_dead_runs_are_reaped() -> None:
    require_netns()
    token = secrets.token_hex(4)
    stale, stale_if = f"sanke-{token}", f"sk{token}h"
    # As a crashed run leaves them: no owner file. Under the lock, or a concurrent worker's
    # cleanup could reap the namespace before its veth is in.
    with _locked():
        subprocess.run(["ip", "netns", "add", stale], check=True)
        peer = ["peer", "name", "eth0", "netns", stale]
        subprocess.run(["ip", "link", "add", stale_if, "type", "veth", *peer], check=True)
    with NetNamespace() as live:
        removed = cleanup_stale()
        assert live.name not in removed and live.name in _namespaces()
    # (Another xdist worker's cleanup may have been the one to reap it.)
    assert stale not in _namespaces()
    deadline = time.monotonic() + 5
    while stale_if in _links() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert stale_if not in _links()
