"""Prometheus metrics of the signaling plane (labels bounded: role, type, code)."""

from __future__ import annotations

import asyncio

from prometheus_client import Counter, Gauge, Histogram

WS_CONNECTIONS = Gauge("sanke_ws_connections", "Open signaling WebSocket connections")
PARTICIPANTS = Gauge(
    "sanke_participants", "Participants joined through this process, by role", ["role"]
)
ROOMS_LOCAL = Gauge("sanke_rooms_local", "Rooms with at least one participant on this process")
JOINS = Counter("sanke_joins_total", "Successful joins", ["role"])
# IPv6 monitoring: the signaling side (the media side is media.ip_metrics). Behind an
# Ingress this is the family of the Ingress's connection unless it keeps the client address.
JOINS_BY_IP = Counter(
    "sanke_joins_by_ip_total",
    "Successful joins by school and the IP version of the signaling connection",
    ["school", "ip"],
)
JOIN_LATENCY = Histogram(
    "sanke_join_latency_seconds",
    "Time from receiving join to sending joined",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)
MESSAGES = Counter("sanke_ws_messages_total", "Client messages accepted, by type", ["type"])
ERRORS = Counter("sanke_ws_errors_total", "Error messages sent to clients, by code", ["code"])
LEFT = Counter("sanke_participants_left_total", "Participants that left, by reason", ["reason"])


def _asyncio_tasks() -> float:
    """Tasks of the event loop that serves the scrape (the app's loop); a leak shows as growth."""
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # scraped outside the loop (e.g. a test's registry dump)
        return 0.0


ASYNCIO_TASKS = Gauge("sanke_asyncio_tasks", "asyncio tasks alive in this process's event loop")
ASYNCIO_TASKS.set_function(_asyncio_tasks)
