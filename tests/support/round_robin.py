"""One address in front of several replicas, as an Ingress or a load balancer puts it: each
request goes to the next backend in turn (no stickiness), so a page's polls land on every
replica. Counts the requests each backend answered."""

from __future__ import annotations

import itertools
from collections import Counter

import aiohttp
from aiohttp import web

HOP_BY_HOP = {
    "connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding",
    "host", "upgrade",
}  # fmt: skip


class RoundRobin:
    def __init__(self, backends: list[str]) -> None:
        self.backends = backends
        self._next = itertools.cycle(backends)
        self.served: Counter[str] = Counter()
        self._session: aiohttp.ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        backend = next(self._next)
        self.served[backend] += 1
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with self._session.request(
            request.method,
            backend + request.path_qs,
            headers=headers,
            data=await request.read(),
            allow_redirects=False,
        ) as reply:
            body = await reply.read()
            out = {k: v for k, v in reply.headers.items() if k.lower() not in HOP_BY_HOP}
            if "Content-Encoding" in reply.headers:
                out["Content-Encoding"] = reply.headers["Content-Encoding"]
            return web.Response(status=reply.status, body=body, headers=out)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()
