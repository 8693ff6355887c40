"""Helpers for the page tests: Chromium with fake devices, console-error capture, screenshots."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from support.browser import CHROMIUM, CHROMIUM_ARGS

DOCS_SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = CHROMIUM_ARGS
VIEWPORT = {"width": 1920, "height": 1080}


@asynccontextmanager
async def browser() -> AsyncIterator[Any]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail("chromium is missing: apt-get install -y chromium")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            yield instance
        finally:
            await instance.close()


class Pages:
    """Opens pages in their own contexts (own localStorage) and records every console error."""

    def __init__(self, browser: Any, out: Path) -> None:
        self.browser = browser
        self.out = out
        self.errors: dict[str, list[str]] = {}
        self.opened: list[Any] = []

    async def open(self, name: str, url: str) -> Any:
        context = await self.browser.new_context(viewport=VIEWPORT, locale="zh-CN")
        page = await context.new_page()
        errors = self.errors.setdefault(name, [])
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
        await page.goto(url)
        self.opened.append(context)
        return page

    async def screenshot(self, page: Any, name: str) -> Path:
        """Into the test's output dir; with SANKE_SCREENSHOTS=1 also docs/screenshots (half size)."""
        path = self.out / f"{name}.png"
        await page.screenshot(path=str(path))
        if os.environ.get("SANKE_SCREENSHOTS") == "1":
            cdp = await page.context.new_cdp_session(page)
            shot = await cdp.send(
                "Page.captureScreenshot",
                {
                    "format": "png",
                    "clip": {"x": 0, "y": 0, "width": 1920, "height": 1080, "scale": 0.5},
                },
            )
            DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            (DOCS_SCREENSHOTS / f"{name}.png").write_bytes(base64.b64decode(shot["data"]))
        return path

    def assert_no_console_errors(self) -> None:
        bad = {name: errs for name, errs in self.errors.items() if errs}
        assert not bad, f"console errors: {bad}"

    async def close(self) -> None:
        for context in self.opened:
            await context.close()


async def until(
    probe: Callable[[], Awaitable[Any]], ok: Callable[[Any], bool], what: str, tries: int = 120
) -> Any:
    """Poll ``probe`` until ``ok`` holds (every 0.25 s); fail with the last value."""
    value: Any = None
    for _ in range(tries):
        value = await probe()
        if ok(value):
            return value
        await asyncio.sleep(0.25)
    raise AssertionError(f"{what}: last value {value!r}")


async def press(page: Any, selector: str, key: str = "Enter") -> None:
    """Operate a control by keyboard only: focus it, then press the key."""
    await page.focus(selector)
    assert await page.evaluate("document.activeElement.tagName") in ("BUTTON", "SELECT")
    await page.keyboard.press(key)


async def open_live_lesson(h: Any, room: str, remotes: list[tuple[str, str]]) -> None:
    """A timetabled lesson that started a minute ago, its room opened by the lesson clock."""
    import time

    from lessons.models import LessonSession, RemoteClass
    from sanke.app import LESSON_SERVICE_KEY

    now = time.time()
    await h.sessions.put(
        LessonSession(
            id=room,
            room_id=room,
            teacher="张老师",
            subject="英语",
            grade=3,
            master_school="xian-shiyan",
            date="2026-11-02",
            starts_at=now - 60,
            ends_at=now + 2400,
            opens_at=now - 600,
            closes_at=now + 3000,
            remotes=[RemoteClass(class_id=c, school=s) for c, s in remotes],
        )
    )
    await h.app[LESSON_SERVICE_KEY].tick()
