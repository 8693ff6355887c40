"""/metrics is not public where the app's port is: on a port of its own (IPv4 and IPv6), or
behind a bearer token of its own."""

from __future__ import annotations

import aiohttp
from support.harness import running_app
from support.processes import free_port

from contracts.rooms import Role

METRICS_TOKEN = "metrics-" + "m" * 24


async def test_on_its_own_port_metrics_leave_the_public_port() -> None:
    port = free_port()
    async with running_app(
        host="127.0.0.1", metrics_port=port, metrics_host=["127.0.0.1", "::1"]
    ) as h:
        reply = await h.session.get(h.url("/metrics"))
        assert reply.status == 404
        assert (await reply.json())["error"]["code"] == "not_found"
        openapi = await (await h.session.get(h.url("/openapi.json"))).json()
        assert "/metrics" not in openapi["paths"]
        for host in ("127.0.0.1", "[::1]"):
            reply = await h.session.get(f"http://{host}:{port}/metrics")
            assert reply.status == 200, host
            assert "sanke_" in await reply.text()
            assert reply.headers["X-Content-Type-Options"] == "nosniff"
            # nothing else lives on the metrics port
            assert (await h.session.get(f"http://{host}:{port}/api/v1/rooms")).status == 404
    # the metrics port closes with the app
    async with aiohttp.ClientSession() as session:
        try:
            await session.get(f"http://127.0.0.1:{port}/metrics")
            raise AssertionError("the metrics port is still open")
        except aiohttp.ClientConnectionError:
            pass


async def test_behind_a_token_metrics_need_exactly_that_token() -> None:
    async with running_app(metrics_token=METRICS_TOKEN) as h:
        reply = await h.session.get(h.url("/metrics"))
        assert reply.status == 401
        assert (await reply.json())["error"]["code"] == "token_missing"
        coordinator = h.tokens.mint(subject="c", role=Role.admin)
        for wrong in ("nope", coordinator, METRICS_TOKEN + "x"):
            reply = await h.session.get(
                h.url("/metrics"), headers={"Authorization": f"Bearer {wrong}"}
            )
            assert reply.status == 401, wrong
            assert (await reply.json())["error"]["code"] == "token_invalid"
        reply = await h.session.get(
            h.url("/metrics"), headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
        )
        assert reply.status == 200 and "sanke_" in await reply.text()
