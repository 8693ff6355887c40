"""Real headless Chromium (Debian ``chromium``) driven by Playwright."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    # Kiosks play sound without a click (a classroom PC's Chromium runs with this policy too).
    "--autoplay-policy=no-user-gesture-required",
    # Host candidates as IP addresses, not mDNS names (no multicast DNS in CI containers).
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[object]:
    if not shutil.which(CHROMIUM):
        pytest.fail(
            "chromium is not installed: run `make test` (it installs it) or apt-get install chromium"
        )
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            await browser.close()


async def wait_js(
    page: Any, expression: str, timeout: float = 30_000, interval: float = 0.1
) -> Any:
    """``page.wait_for_function`` for pages under their CSP: Playwright's own polls its predicate
    with eval in the page, which the pages' Content-Security-Policy forbids ('unsafe-eval' is
    not allowed); ``page.evaluate`` goes through the DevTools protocol instead. Returns the
    first truthy value; raises TimeoutError after ``timeout`` ms."""
    deadline = asyncio.get_running_loop().time() + timeout / 1000
    value: Any = None
    while True:
        value = await page.evaluate(expression)
        if value:
            return value
        if asyncio.get_running_loop().time() >= deadline:
            raise TimeoutError(f"{expression!r} still {value!r} after {timeout:.0f} ms")
        await asyncio.sleep(interval)
