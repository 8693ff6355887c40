"""Where ``/metrics`` is served, and who may read it (docs/security.md, "Metrics").

The metrics name schools, classrooms and live lessons and show who is connected: not for
the public port. Two settings, combinable:

- ``SANKE_METRICS_PORT``: ``/metrics`` only on that port (its own listener, bound to
  ``SANKE_METRICS_HOST`` or the app's hosts); the public port answers 404. Kubernetes
  scrapes it through a Service port the Ingress never routes to.
- ``SANKE_METRICS_TOKEN``: ``/metrics`` needs ``Authorization: Bearer <that token>``
  (a Prometheus ``bearer_token_file``); it is no access token and opens nothing else.

Neither set (a laptop, ``--dev``): ``/metrics`` on the app's port, as before.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from contracts.errors import ErrorCode, SankeError
from signaling.openapi import documented
from signaling.web_security import install_security_headers


@dataclass(frozen=True)
class MetricsAccess:
    token: str | None = None


METRICS_ACCESS_KEY: web.AppKey[MetricsAccess] = web.AppKey("metrics_access", MetricsAccess)


def require_metrics_token(request: web.Request, token: str | None) -> None:
    """Nothing to check without a metrics token; else exactly it, as a bearer token."""
    if token is None:
        return
    header = request.headers.get("Authorization", "")
    if not header.lower().startswith("bearer "):
        raise SankeError(ErrorCode.token_missing, "metrics need the metrics bearer token", 401)
    if not hmac.compare_digest(header[7:].strip().encode(), token.encode()):
        raise SankeError(ErrorCode.token_invalid, "not the metrics token", 401)


def metrics_body() -> web.Response:
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


@documented(
    summary="Prometheus metrics (text exposition format); with SANKE_METRICS_TOKEN set, "
    "that bearer token",
    auth=False,
    tag="ops",
)
async def metrics(request: web.Request) -> web.Response:
    access = request.app.get(METRICS_ACCESS_KEY) or MetricsAccess()
    require_metrics_token(request, access.token)
    return metrics_body()


def metrics_app(token: str | None) -> web.Application:
    """The app of the metrics port: ``/metrics`` and nothing else."""
    from signaling.http_auth import json_errors

    app = web.Application(middlewares=[json_errors])
    install_security_headers(app)
    app[METRICS_ACCESS_KEY] = MetricsAccess(token)
    app.router.add_get("/metrics", metrics)
    return app


def serve_metrics(
    app: web.Application, *, token: str | None, port: int | None, hosts: list[str]
) -> None:
    """``/metrics`` on ``app`` (no port) or on a listener of its own, started and stopped
    with ``app``."""
    app[METRICS_ACCESS_KEY] = MetricsAccess(token)
    if port is None:
        app.router.add_get("/metrics", metrics)
        return

    async def listener(_: web.Application) -> AsyncIterator[None]:
        runner = web.AppRunner(metrics_app(token), access_log=None)
        await runner.setup()
        try:
            for host in hosts:
                await web.TCPSite(runner, host, port).start()
            yield
        finally:
            await runner.cleanup()

    app.cleanup_ctx.append(listener)
