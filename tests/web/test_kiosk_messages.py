"""The kiosk says clearly what is wrong: lesson not started yet, lesson over, camera missing."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from support.browser import wait_js
from support.harness import running_app

from contracts.rooms import Role
from web.pages import Pages, browser

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

NO_CAMERA = """
navigator.mediaDevices.getUserMedia = () =>
  Promise.reject(new DOMException("Requested device not found", "NotFoundError"));
"""


async def test_kiosk_failure_messages(tmp_path: Path) -> None:
    async with running_app() as h, browser() as chromium:
        await h.room("room-1")
        pages = Pages(chromium, tmp_path)
        now = time.time()

        def token(subject: str, **kw: float) -> str:
            return h.tokens.mint(
                subject=subject, role=Role.classroom, room="room-1", classroom_id=subject, **kw
            )

        try:
            early = await pages.open(
                "early",
                h.url(f"/web/kiosk.html?token={token('c-early', not_before=now + 3600)}"),
            )
            await wait_js(
                early, "document.getElementById('status').textContent === '课程尚未开始，请稍候…'"
            )
            late = await pages.open(
                "late",
                h.url(
                    f"/web/kiosk.html?token={token('c-late', not_before=now - 7200, expires=now - 60)}"
                ),
            )
            await wait_js(late, "document.getElementById('status').textContent === '本节课已结束'")
            context = await chromium.new_context(viewport={"width": 1920, "height": 1080})
            pages.opened.append(context)
            await context.add_init_script(NO_CAMERA)
            blind = await context.new_page()
            errors = pages.errors.setdefault("no-camera", [])
            blind.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            await blind.goto(h.url(f"/web/kiosk.html?token={token('c-blind')}"))
            await wait_js(
                blind, "document.getElementById('notice').textContent.includes('未检测到摄像头')"
            )
            assert await blind.evaluate("document.body.classList.contains('live')")
        finally:
            await pages.close()
        pages.assert_no_console_errors()
