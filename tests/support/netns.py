"""Impaired network links for tests: a network namespace behind a veth pair, with caps and loss.

``NetNamespace`` gives a test a second "machine" on this host::

    root namespace (the host)                    namespace sanke-<hex>
    server / SFU ── skXXXXXXXXh ═══ veth ═══ eth0 ── Chromium, aiortc clients
                    10.a.b.1/30                 10.a.b.2/30
                    fdxx:…::1/64                fdxx:…::2/64

* **downlink** = host → namespace, shaped on the egress of the host-side veth;
  **uplink** = namespace → host, shaped on the egress of the namespace-side ``eth0``.
* Caps are ``tc tbf`` qdiscs, loss is an nftables ``netdev`` table *inside* the namespace
  (hooks ``ingress``/``egress`` on its ``eth0``), so nothing touches the host's real interfaces
  or loopback and everything disappears with the namespace. All of it can be changed while
  traffic flows (``limit``, ``loss``, ``unlimit``, ``clear``).
* **Reachability**: the namespace has its own loopback. A server on the host that binds
  ``127.0.0.1`` (or ``::1``) is NOT reachable from inside; bind ``ns.host_ip4`` /
  ``ns.host_ip6`` or ``0.0.0.0`` / ``::``. The namespace's default routes point at the
  host-side addresses, which the host owns, so no IP forwarding is needed and none is enabled
  (the namespace reaches the host's own addresses only, never the outside world).
* **No added delay**: this kernel has no ``netem`` (nor ``fq``/``etf``/``clsact`` for EDT
  pacing), and nftables cannot hold packets, so there is no sound kernel-side way to add
  latency here; the only queueing delay is what a full tbf queue adds (≤ ``queue_ms``).

Run things inside with ``ns.exec_args`` / ``ns.popen`` / ``ns.python_args``; Playwright launches
a real Chromium inside with ``executable_path=ns.chromium_executable(tmp_path)`` (it talks to the
browser over a pipe, which crosses namespaces). Call ``require_netns()`` first: it skips the
test, naming what is missing, when this machine cannot do any of it.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import pytest

Direction = Literal["down", "up", "both"]
Side = Literal["down", "up"]
_SIDES: tuple[Side, Side] = ("down", "up")

PREFIX = "sanke-"
NS_IFNAME = "eth0"
NFT_TABLE = "sanke_impair"
CHROMIUM = "/usr/bin/chromium"
STATE_DIR = Path("/run/sanke-netns")
_NAME_RE = re.compile(r"^sanke-([0-9a-f]{8})$")
_HOST_IF_RE = re.compile(r"^sk([0-9a-f]{8})h$")
_CLONE_NEWNET = 0x40000000
# One frame on the veth as tbf counts it: 1500 bytes of IP plus the 14-byte Ethernet header.
_FRAME = 1514


class NetnsError(RuntimeError):
    """A command of the harness failed (the message has the command and its stderr)."""


def _run(args: Sequence[str], *, check: bool = True, timeout: float = 10.0) -> str:
    proc = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        raise NetnsError(f"`{' '.join(args)}` failed ({proc.returncode}): {detail}")
    return proc.stdout


def _ip_batch(netns: str | None, *commands: str) -> None:
    """Several ``ip`` commands in one process (``-n NAME``: inside that namespace)."""
    where = ["-n", netns] if netns else []
    proc = subprocess.run(
        ["ip", *where, "-batch", "-"],
        input="\n".join(commands) + "\n",
        capture_output=True,
        text=True,
        timeout=10,
    )
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip()
        cmd = " ".join(["ip", *where, "-batch", "-"])
        raise NetnsError(f"`{cmd}` failed: {detail}\n" + "\n".join(commands))


# --- measurements ---------------------------------------------------------------------------


@dataclass(frozen=True)
class QdiscStats:
    """``tc -s`` counters of the root qdisc on one side of the link (``noqueue`` = no cap)."""

    kind: str
    sent_bytes: int
    sent_packets: int
    dropped: int
    overlimits: int
    backlog_bytes: int
    backlog_packets: int


@dataclass(frozen=True)
class LinkCounters:
    """Counters of both directions: the shapers' qdiscs and the packets the loss rules dropped."""

    down: QdiscStats
    up: QdiscStats
    loss_dropped_down: int
    loss_dropped_up: int


def _root_qdisc(out: str) -> QdiscStats:
    for q in json.loads(out or "[]"):
        if q.get("root"):
            return QdiscStats(
                kind=str(q.get("kind", "")),
                sent_bytes=int(q.get("bytes", 0)),
                sent_packets=int(q.get("packets", 0)),
                dropped=int(q.get("drops", 0)),
                overlimits=int(q.get("overlimits", 0)),
                backlog_bytes=int(q.get("backlog", 0)),
                backlog_packets=int(q.get("qlen", 0)),
            )
    return QdiscStats("noqueue", 0, 0, 0, 0, 0, 0)


# --- choosing addresses ---------------------------------------------------------------------


def _routes(family: str) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for r in json.loads(_run(["ip", "-j", family, "route", "show", "table", "all"]) or "[]"):
        dst = str(r.get("dst", ""))
        if not dst or dst == "default":
            continue
        with contextlib.suppress(ValueError):
            nets.append(ipaddress.ip_network(dst, strict=False))
    return nets


def _free_v4() -> ipaddress.IPv4Network:
    """A random /30 in 10.0.0.0/8 that overlaps no route of any table on the host."""
    used = _routes("-4")
    for _ in range(200):
        # Skip 10.0.x.x and 10.255.x.x: the most common choices of other tools.
        candidate = ipaddress.IPv4Network((0x0A000000 | secrets.randbelow(1 << 22) << 2, 30))
        if candidate.network_address.packed[1] in (0, 255):
            continue
        if not any(candidate.overlaps(n) for n in used if n.version == 4):
            return candidate
    raise NetnsError("no free IPv4 /30 in 10.0.0.0/8 (every candidate overlapped a host route)")


def _free_v6() -> ipaddress.IPv6Network:
    """A random ULA /64 (RFC 4193: fd + 40-bit global id + 16-bit subnet), off all host routes."""
    used = _routes("-6")
    for _ in range(200):
        prefix = (0xFD << 120) | (secrets.randbits(56) << 64)
        candidate = ipaddress.IPv6Network((prefix, 64))
        if not any(candidate.overlaps(n) for n in used if n.version == 6 and n.prefixlen > 0):
            return candidate
    raise NetnsError("no free IPv6 ULA /64")


# --- state shared between processes: a lock and one owner file per namespace ------------------


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialises choosing addresses and creating/reaping namespaces across processes (xdist)."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with (STATE_DIR / "lock").open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _start_time(pid: int) -> str | None:
    try:
        stat_line = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat_line.rsplit(")", 1)[1].split()[19]  # field 22: starttime


def _owner_alive(name: str) -> bool:
    try:
        pid_s, started = (STATE_DIR / f"{name}.owner").read_text().split()
    except (OSError, ValueError):
        return False
    return _start_time(int(pid_s)) == started


def _kill_pids_inside(name: str) -> None:
    out = _run(["ip", "netns", "pids", name], check=False)
    for pid in (int(p) for p in out.split() if p.isdigit()):
        if pid != os.getpid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _wait_link_gone(ifname: str, timeout: float = 5.0) -> None:
    # Namespace (and so veth) destruction finishes asynchronously in the kernel.
    deadline = time.monotonic() + timeout
    while Path(f"/sys/class/net/{ifname}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def cleanup_stale() -> list[str]:
    """Deletes ``sanke-*`` namespaces (and ``sk*h`` veths) whose creating process is gone.

    Namespaces of live processes (other test workers) are left alone. Returns the names removed.
    """
    removed: list[str] = []
    with _locked():
        names = [
            line.split()[0]
            for line in _run(["ip", "netns", "list"], check=False).splitlines()
            if line.strip()
        ]
        live: set[str] = set()
        for name in names:
            m = _NAME_RE.match(name)
            if not m:
                continue
            if _owner_alive(name):
                live.add(m.group(1))
                continue
            _kill_pids_inside(name)
            _run(["ip", "link", "del", f"sk{m.group(1)}h"], check=False)
            _run(["ip", "netns", "del", name], check=False)
            (STATE_DIR / f"{name}.owner").unlink(missing_ok=True)
            removed.append(name)
        for link in Path("/sys/class/net").iterdir():
            m = _HOST_IF_RE.match(link.name)
            if m and m.group(1) not in live and not _owner_alive(f"{PREFIX}{m.group(1)}"):
                _run(["ip", "link", "del", link.name], check=False)
                removed.append(link.name)
        for owner in STATE_DIR.glob(f"{PREFIX}*.owner"):
            if not _owner_alive(owner.name.removesuffix(".owner")):
                owner.unlink(missing_ok=True)
    return removed


_stale_cleaned = False


# --- the namespace --------------------------------------------------------------------------


class NetNamespace:
    """A fresh network namespace joined to the host by a veth pair, with IPv4 and IPv6 ULA.

    A context manager: ``with NetNamespace() as ns: ...`` (works inside async tests too: every
    call is a short synchronous ``ip``/``tc``/``nft`` command). Teardown kills whatever still
    runs inside, deletes the veth pair and the namespace, even when setup failed half-way.
    """

    def __init__(self) -> None:
        token = secrets.token_hex(4)
        self.name = f"{PREFIX}{token}"
        self.host_ifname = f"sk{token}h"
        self.ns_ifname = NS_IFNAME
        self.net4: ipaddress.IPv4Network | None = None
        self.net6: ipaddress.IPv6Network | None = None
        self._procs: list[subprocess.Popen[Any]] = []
        self._loss: dict[str, float] = {"down": 0.0, "up": 0.0}
        self._open = False

    # addresses ------------------------------------------------------------------------------

    @property
    def host_ip4(self) -> str:
        """The host side's IPv4 address (bind servers here; the namespace's default gateway)."""
        return str(self._net4[1])

    @property
    def ns_ip4(self) -> str:
        """The namespace side's IPv4 address."""
        return str(self._net4[2])

    @property
    def host_ip6(self) -> str:
        """The host side's IPv6 ULA address (``nodad``: usable at once)."""
        return str(self._net6[1])

    @property
    def ns_ip6(self) -> str:
        """The namespace side's IPv6 ULA address."""
        return str(self._net6[2])

    @property
    def _net4(self) -> ipaddress.IPv4Network:
        if self.net4 is None:
            raise NetnsError("namespace not set up")
        return self.net4

    @property
    def _net6(self) -> ipaddress.IPv6Network:
        if self.net6 is None:
            raise NetnsError("namespace not set up")
        return self.net6

    # lifecycle ------------------------------------------------------------------------------

    def __enter__(self) -> NetNamespace:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def open(self) -> None:
        """Creates namespace, veth pair, addresses and routes (``__enter__`` calls it)."""
        global _stale_cleaned
        if not _stale_cleaned:
            _stale_cleaned = True
            cleanup_stale()
        self._open = True
        try:
            with _locked():
                (STATE_DIR / f"{self.name}.owner").write_text(
                    f"{os.getpid()} {_start_time(os.getpid())}\n"
                )
                self.net4, self.net6 = _free_v4(), _free_v6()
                _run(["ip", "netns", "add", self.name])
                # The host side owns the gateway addresses, added before unlocking so that the
                # next namespace's route check sees this /30 and /64 taken.
                _ip_batch(
                    None,
                    f"link add {self.host_ifname} type veth"
                    f" peer name {self.ns_ifname} netns {self.name}",
                    f"addr add {self.host_ip4}/30 dev {self.host_ifname}",
                    f"addr add {self.host_ip6}/64 dev {self.host_ifname} nodad",
                    f"link set {self.host_ifname} up",
                )
            _ip_batch(
                self.name,
                "link set lo up",
                f"addr add {self.ns_ip4}/30 dev {self.ns_ifname}",
                f"addr add {self.ns_ip6}/64 dev {self.ns_ifname} nodad",
                f"link set {self.ns_ifname} up",
                f"route add default via {self.host_ip4}",
                f"route add ::/0 via {self.host_ip6}",
            )
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Deletes everything this namespace created; safe to call twice or after a failed open."""
        if not self._open:
            return
        self._open = False
        for proc in self._procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self._procs:
            try:
                proc.wait(timeout=2)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=2)
        self._procs.clear()
        # Anything else started inside (Chromium's helpers, asyncio subprocesses) keeps the
        # namespace (and its veth) alive after `ip netns del`: kill it by pid.
        with contextlib.suppress(Exception):
            _kill_pids_inside(self.name)
        _run(["ip", "link", "del", self.host_ifname], check=False)
        _run(["ip", "netns", "del", self.name], check=False)
        _wait_link_gone(self.host_ifname)
        (STATE_DIR / f"{self.name}.owner").unlink(missing_ok=True)

    # running things inside ------------------------------------------------------------------

    def exec_args(self, cmd: Sequence[str]) -> list[str]:
        """``cmd`` prefixed with ``ip netns exec NAME`` (environment and fds are inherited)."""
        return ["ip", "netns", "exec", self.name, *cmd]

    def run(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[Any]:
        """``subprocess.run`` of ``cmd`` inside the namespace."""
        return subprocess.run(self.exec_args(cmd), **kwargs)

    def popen(self, cmd: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """``subprocess.Popen`` of ``cmd`` inside the namespace; terminated on teardown."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.exec_args(cmd), **kwargs)
        self._procs.append(proc)
        return proc

    def python_args(self, *args: str) -> list[str]:
        """This interpreter (the venv's, with aiortc) run inside: ``python_args("-u", "x.py")``."""
        return self.exec_args([sys.executable, *args])

    def popen_python(self, *args: str, **kwargs: Any) -> subprocess.Popen[Any]:
        """``popen`` of this interpreter with ``args`` inside the namespace."""
        proc: subprocess.Popen[Any] = subprocess.Popen(self.python_args(*args), **kwargs)
        self._procs.append(proc)
        return proc

    def chromium_executable(self, tmp_path: Path, chromium: str = CHROMIUM) -> str:
        """A wrapper script that runs ``chromium "$@"`` inside the namespace, for Playwright.

        ``pw.chromium.launch(executable_path=ns.chromium_executable(tmp_path), args=...)``:
        ``ip netns exec`` execs in place, so Playwright's pid and its debugging pipe (fds 3/4)
        reach the real browser.
        """
        ip = shutil.which("ip") or "ip"
        wrapper = tmp_path / f"chromium-{self.name}"
        wrapper.write_text(f'#!/bin/sh\nexec {ip} netns exec {self.name} {chromium} "$@"\n')
        wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        return str(wrapper)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket of this process that lives in the namespace (created by a thread in it).

        Handy for probes in the test process itself (use with asyncio via ``sock=``); aiortc
        peers should run as processes inside (``popen_python``), since they open their own.
        """
        result: list[socket.socket] = []
        errors: list[BaseException] = []

        def make() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, f"setns({self.name}): {os.strerror(err)}")
                    result.append(socket.socket(family, type))
                finally:
                    os.close(fd)
            except BaseException as exc:
                errors.append(exc)

        # A thread of its own: setns moves only the calling thread, which then just ends.
        t = threading.Thread(target=make, name=f"setns-{self.name}")
        t.start()
        t.join()
        if errors:
            raise errors[0]
        return result[0]

    # impairments ----------------------------------------------------------------------------

    def _qdisc(self, side: Side, verb: str, *spec: str, check: bool = True) -> str:
        """``tc qdisc VERB dev … SPEC`` on the egress of ``side``'s sending end."""
        if side == "down":
            return _run(["tc", "qdisc", verb, "dev", self.host_ifname, *spec], check=check)
        return _run(
            ["tc", "-n", self.name, "qdisc", verb, "dev", self.ns_ifname, *spec], check=check
        )

    def limit(
        self,
        downlink_kbps: float | None = None,
        uplink_kbps: float | None = None,
        *,
        queue_ms: float = 80.0,
    ) -> None:
        """Caps the downlink and/or uplink (kbit/s, 1000 bit/s) with tbf; ``None`` = unchanged.

        Replaces a previous cap in place (``tc qdisc replace``), so it can change mid-flow.
        """
        for side, kbps in zip(_SIDES, (downlink_kbps, uplink_kbps), strict=True):
            if kbps is None:
                continue
            if kbps <= 0:
                raise ValueError(f"{side}link cap must be positive, got {kbps}")
            rate = int(kbps * 1000)  # bit/s
            # tbf parameters that behave like an access link:
            # - burst: tokens for max(2 frames, 10 ms at the rate). At least one whole frame, or
            #   tbf drops every full-size packet outright; ~10 ms so high rates are not starved
            #   by timer granularity, yet small enough that a 1 s average equals the rate
            #   (an idle link can send 10 ms worth at line speed, as a real modem does).
            # - latency (queue): packets wait at most queue_ms behind the bucket, then are
            #   dropped (tail drop). 80 ms is a modest DSL/cable/LTE-like buffer: a sender over
            #   the cap first sees the delay grow (what WebRTC's delay-based GCC reacts to),
            #   then loss; much larger would be bufferbloat, much smaller a loss-only link.
            burst = max(2 * _FRAME, rate // 8 // 100)
            spec = ["tbf", "rate", f"{rate}bit", "burst", str(burst), "latency", f"{queue_ms:g}ms"]
            self._qdisc(side, "replace", "root", "handle", "1:", *spec)

    def unlimit(self, direction: Direction = "both") -> None:
        """Removes the cap(s) (back to the veth's default: no qdisc, line rate)."""
        for side in _SIDES:
            if direction in (side, "both"):
                self._qdisc(side, "del", "root", check=False)

    def loss(self, percent: float, direction: Direction = "both") -> None:
        """Drops ``percent`` % of IP packets at random in ``direction`` (0 removes that loss).

        Rules live in a ``netdev`` table inside the namespace, on its ``eth0``: hook ``ingress``
        for "down" (arrives in the namespace) and ``egress`` for "up". Not ``inet output``: a drop
        there fails the sender's ``sendto`` with EPERM, which no real link does; a drop at
        egress is silent, as on a wire. Link control is exempt: ARP and IPv6 neighbour/router
        discovery (a lost resolution stalls the whole flow for a second and more, which is not
        the random packet loss a test asks for) and MLD reports (the kernel sends a few after
        link-up; exempt, the drop counters count the test's own traffic only). Fractions work
        (resolution 0.0001 %); 100 drops every IP packet.
        """
        if not 0 <= percent <= 100:
            raise ValueError(f"loss must be within 0..100 %, got {percent}")
        for side in _SIDES:
            if direction in (side, "both"):
                self._loss[side] = float(percent)
        self._apply_loss()

    def _nft_rules(self) -> str:
        lines = [f"table netdev {NFT_TABLE} {{"]
        for d, hook in (("down", "ingress"), ("up", "egress")):
            # numgen over a million values: 0.5 % or 2.5 % work too.
            threshold = round(self._loss[d] * 10_000)
            lines += [
                f"  chain {d} {{",
                f'    type filter hook {hook} device "{self.ns_ifname}" priority 0; policy accept;',
                "    meta protocol arp accept",
                "    meta protocol ip6 meta l4proto ipv6-icmp icmpv6 type"
                " { nd-neighbor-solicit, nd-neighbor-advert, nd-router-solicit,"
                " nd-router-advert, nd-redirect, mld-listener-query, mld-listener-report,"
                " mld-listener-done, mld2-listener-report } accept",
            ]
            if threshold >= 1_000_000:  # numgen's values stop at 999999: 100 % is no draw at all
                lines.append("    meta protocol { ip, ip6 } counter drop")
            elif threshold > 0:
                lines.append(
                    "    meta protocol { ip, ip6 }"
                    f" numgen random mod 1000000 < {threshold} counter drop"
                )
            lines.append("  }")
        lines.append("}")
        return "\n".join(lines) + "\n"

    def _apply_loss(self) -> None:
        nft = self.exec_args(["nft"])
        if not any(self._loss.values()):
            _run([*nft, "delete", "table", "netdev", NFT_TABLE], check=False)
            return
        # One atomic transaction: the table is replaced whole, with no gap without rules.
        script = (
            f"table netdev {NFT_TABLE} {{}}\ndelete table netdev {NFT_TABLE}\n" + self._nft_rules()
        )
        proc = subprocess.run(
            [*nft, "-f", "-"], input=script, capture_output=True, text=True, timeout=10
        )
        if proc.returncode != 0:
            raise NetnsError(f"nft refused the loss rules: {proc.stderr.strip()}\n{script}")

    def clear(self) -> None:
        """Removes every cap and all loss: the link is restored to a clean veth."""
        self.unlimit("both")
        self._loss = {"down": 0.0, "up": 0.0}
        self._apply_loss()

    # measurements ---------------------------------------------------------------------------

    def counters(self) -> LinkCounters:
        """The root qdisc counters of both directions and the loss rules' drop counters."""
        down = _root_qdisc(_run(["tc", "-j", "-s", "qdisc", "show", "dev", self.host_ifname]))
        up = _root_qdisc(
            _run(["tc", "-n", self.name, "-j", "-s", "qdisc", "show", "dev", self.ns_ifname])
        )
        dropped = {"down": 0, "up": 0}
        out = _run(self.exec_args(["nft", "-j", "list", "table", "netdev", NFT_TABLE]), check=False)
        if out.strip():
            for item in json.loads(out).get("nftables", []):
                rule = item.get("rule")
                if not rule or rule.get("chain") not in dropped:
                    continue
                for expr in rule.get("expr", []):
                    if isinstance(expr, dict) and "counter" in expr:
                        dropped[rule["chain"]] += int(expr["counter"].get("packets", 0))
        return LinkCounters(down, up, dropped["down"], dropped["up"])


# --- can this machine do it? -------------------------------------------------------------------


@functools.cache
def _unavailable() -> str | None:
    if os.geteuid() != 0:
        return f"network namespaces need root (running as uid {os.geteuid()})"
    for tool, package in (("ip", "iproute2"), ("tc", "iproute2"), ("nft", "nftables")):
        if shutil.which(tool) is None:
            return f"`{tool}` is missing: apt-get install -y {package}"
    ns = NetNamespace()
    try:
        try:
            ns.open()
        except NetnsError as exc:
            return f"cannot create a namespace with a veth pair: {exc}"
        try:
            ns.limit(downlink_kbps=1000, uplink_kbps=1000)
        except NetnsError as exc:
            return f"tc refused a tbf qdisc: {exc}"
        try:
            ns.loss(1, "both")
        except NetnsError as exc:
            return f"nftables cannot drop on the namespace's veth (netdev ingress/egress): {exc}"
        try:
            ns.socket().close()
        except OSError as exc:
            return f"setns into the namespace failed: {exc}"
    finally:
        ns.close()
    return None


def require_netns() -> None:
    """Skips the calling test, naming what failed, unless namespaces, tbf and nft all work."""
    reason = _unavailable()
    if reason is not None:
        pytest.skip(f"netns harness unavailable: {reason}")
