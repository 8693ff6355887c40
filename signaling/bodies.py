"""Request bodies, read whole: within a size limit and an idle timeout.

``request.content.read(n)`` returns what has arrived so far, not ``n`` bytes: a body that a
slow link or a proxy delivers in pieces must be read until its end. A body past the route's
limit is refused with 413 (before reading when Content-Length says so); a body that stops
arriving for ``http_body_idle_seconds`` with 408. Both answer a JSON error and change nothing.

The limits here, in the routes and in the Ingress (k8s/) are one set of numbers: see
docs/limits.md.
"""

from __future__ import annotations

import asyncio

from aiohttp import web

from contracts.errors import ErrorCode, SankeError

# Every JSON body except a whole district (scheduler.district_api: DISTRICT_MAX_BYTES, CSV_MAX_BYTES).
JSON_MAX_BYTES = 1 << 20
# nginx's client_body_timeout: a school uplink that delivers nothing for this long is gone.
DEFAULT_IDLE_SECONDS = 60.0
BODY_IDLE_KEY: web.AppKey[float] = web.AppKey("body_idle_seconds", float)


def too_large(max_bytes: int) -> SankeError:
    return SankeError(ErrorCode.invalid_request, f"body larger than {max_bytes} bytes", 413)


async def read_body(request: web.Request, max_bytes: int) -> bytearray:
    """The whole body (empty when there is none); 413 past ``max_bytes``, 408 when stalled."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large(max_bytes)
    idle = request.app.get(BODY_IDLE_KEY, DEFAULT_IDLE_SECONDS)
    raw = bytearray()
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await request.content.readany()
        except TimeoutError:
            raise SankeError(
                ErrorCode.invalid_request,
                f"the body stopped arriving ({len(raw)} bytes in, nothing for {idle:g} s)",
                408,
            ) from None
        if not chunk:
            return raw
        raw += chunk
        if len(raw) > max_bytes:
            raise too_large(max_bytes)
