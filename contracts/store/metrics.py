"""The store's health as a metric (every process that uses Redis sets it)."""

from __future__ import annotations

from prometheus_client import Gauge

STORE_UP = Gauge(
    "sanke_store_up", "1 when this process's store (Redis) answered its last heartbeat"
)
