"""TLS in the app, for a school without an ingress (docs/security.md, "TLS and certificates").

``--tls-cert`` / ``--tls-key`` (``SANKE_TLS_CERT`` / ``SANKE_TLS_KEY``): PEM files, the
certificate file with its chain. The app then speaks HTTPS and WSS only on its port (TLS 1.2
or newer) and every response carries HSTS. Browsers give cameras and microphones only to
secure pages, so a classroom PC needs this (or an ingress) for anything but localhost.

The files are read again when they change (checked every ``SANKE_TLS_RELOAD_SECONDS``): an
ACME client or cert-manager renews the certificate without a restart; new connections get
the new one, live ones carry on. A renewal that cannot be loaded is logged and the old
certificate stays in use.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from sanke.settings import Settings

log = logging.getLogger(__name__)


def _stamp(*paths: str) -> tuple[tuple[int, int], ...]:
    out = []
    for path in paths:
        stat = Path(path).stat()
        out.append((stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def server_context(cert: str, key: str) -> ssl.SSLContext:
    """A server context for ``cert`` and ``key``; ``SystemExit`` saying what is wrong."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_alpn_protocols(["http/1.1"])
    try:
        ctx.load_cert_chain(cert, key)
    except FileNotFoundError as exc:
        raise SystemExit(f"TLS: {exc.filename} does not exist") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise SystemExit(
            f"TLS: cannot use {cert} with {key} ({exc.__class__.__name__}: the certificate "
            "and its key must be PEM files that belong together)"
        ) from None
    return ctx


def watch_certificate(app: web.Application, ctx: ssl.SSLContext, settings: Settings) -> None:
    """Reload ``ctx``'s certificate and key whenever their files change."""
    assert settings.tls_cert is not None and settings.tls_key is not None
    cert, key = settings.tls_cert, settings.tls_key

    async def watch() -> None:
        seen = _stamp(cert, key)
        while True:
            await asyncio.sleep(settings.tls_reload_seconds)
            try:
                now = _stamp(cert, key)
                if now == seen:
                    continue
                ctx.load_cert_chain(cert, key)
                seen = now
                log.info("TLS certificate reloaded from %s", cert)
            except (ssl.SSLError, OSError, ValueError) as exc:
                # A renewal in progress (one file written, the other not yet) or a broken
                # one: keep serving the old certificate and try again next time.
                log.warning("TLS certificate in %s not reloaded yet: %s", cert, exc)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        task = asyncio.get_running_loop().create_task(watch())
        yield
        task.cancel()

    app.cleanup_ctx.append(lifecycle)
