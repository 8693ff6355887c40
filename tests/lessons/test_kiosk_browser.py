"""The kiosk page in real headless Chromium joins its lesson by itself and rejoins after a drop."""

from __future__ import annotations

import time
from typing import Any

import pytest
from support.browser import chromium, wait_js
from support.harness import running_app
from support.sessions import english_lesson

from contracts.rooms import Role
from sanke.app import LESSON_SERVICE_KEY
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository

pytestmark = pytest.mark.browser


async def test_kiosk_auto_joins_and_rejoins() -> None:
    async with running_app() as h, chromium() as browser:
        now = time.time()
        await h.sessions.put(english_lesson("eng.now", now + 60, offering_id="eng"))
        await h.app[LESSON_SERVICE_KEY].tick()
        await TimetableRepository(h.store).put_district(demo_district())  # jd-1-g3 is its class
        coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
        reply = await h.session.post(
            h.url("/api/v1/devices"),
            json={"class_id": "jd-1-g3", "school": "jd-1"},
            headers={"Authorization": f"Bearer {coordinator}"},
        )
        credential = (await reply.json())["credential"]
        teacher = await h.connect()
        await teacher.join(h.tokens.mint(subject="t", role=Role.teacher, room="eng.now"))

        page: Any = await browser.new_page(viewport={"width": 1920, "height": 1080})  # type: ignore[attr-defined]
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        await page.goto(h.url(f"/web/kiosk.html?credential={credential}"))
        first = await teacher.expect("participant_joined", timeout=15)
        assert first["participant"]["classroom_id"] == "jd-1-g3"
        await wait_js(
            page, "document.getElementById('status').textContent === '上课中'", timeout=10_000
        )
        assert "英语" in await page.text_content("#lesson")

        # The link drops: the kiosk reconnects by itself.
        await page.evaluate("window.sankeKiosk.ws.close()")
        left = await teacher.expect("participant_left", timeout=10)
        assert left["participant_id"] == first["participant"]["id"]
        again = await teacher.expect("participant_joined", timeout=15)
        assert again["participant"]["classroom_id"] == "jd-1-g3"

        # The schedule is kept for when the network is gone.
        cached = await page.evaluate("localStorage.getItem('sanke.schedule')")
        assert cached and "eng.now" in cached
        await page.click("#lang")
        await wait_js(
            page, "document.getElementById('status').textContent === 'Lesson in progress'"
        )
        assert errors == []
