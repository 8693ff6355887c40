"""Security headers on every response an app sends (docs/security.md, "Web").

Set in ``on_response_prepare``, so pages, static files, JSON errors, 404s and the WebSocket
handshake all carry them, whatever produced the response.

- ``Content-Security-Policy``: the pages are plain ES modules and stylesheets from this
  origin; no inline script or style, no eval, no plugins, no framing, no foreign connects.
- ``X-Frame-Options: DENY`` for browsers without ``frame-ancestors``; ``nosniff``;
  ``Referrer-Policy: no-referrer`` (an .ics link's token never leaves in a Referer);
  camera, microphone and screen capture for this origin only.
- ``Cache-Control: no-store`` on every API response (tokens, device credentials and join
  tokens travel there; so do personal data such as names).
- ``Strict-Transport-Security`` when the request came over TLS to this process.
"""

from __future__ import annotations

from aiohttp import web


def content_security_policy(media_origins: tuple[str, ...] = ()) -> str:
    """``media_origins``: where else video may come from (the CDN in front of live HLS)."""
    extra = "".join(f" {origin}" for origin in media_origins)
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data: blob:",
            f"media-src 'self' blob: mediastream:{extra}",
            f"connect-src 'self'{extra}",
            "font-src 'self'",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


CONTENT_SECURITY_POLICY = content_security_policy()

HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Permissions-Policy": "camera=(self), microphone=(self), display-capture=(self), "
    "geolocation=(), payment=(), usb=()",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
HSTS = "max-age=31536000"
NOT_STORED = ("/api/",)
# Live HLS is fetched by players on other origins too (a CDN's domain, a school portal):
# its files are signed URLs, not secrets of this origin.
SHARED_MEDIA = ("/hls/",)
CSP_KEY: web.AppKey[str] = web.AppKey("csp", str)


async def _add_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in HEADERS.items():
        response.headers[name] = value
    policy = request.app.get(CSP_KEY)
    if policy is not None:
        response.headers["Content-Security-Policy"] = policy
    if request.path.startswith(SHARED_MEDIA):
        response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    if request.path.startswith(NOT_STORED):
        response.headers["Cache-Control"] = "no-store"
    if request.secure:
        response.headers["Strict-Transport-Security"] = HSTS


def install_security_headers(app: web.Application, media_origins: tuple[str, ...] = ()) -> None:
    if media_origins:
        app[CSP_KEY] = content_security_policy(media_origins)
    app.on_response_prepare.append(_add_headers)
