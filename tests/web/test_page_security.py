"""Every page under its Content-Security-Policy in real Chromium: no violation, and the token
or device credential leaves the address bar (history.replaceState) but survives a reload."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from support.browser import wait_js
from support.harness import running_app
from support.sessions import english_lesson

from contracts.rooms import Role
from sanke.app import LESSON_SERVICE_KEY
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository
from web.pages import VIEWPORT, browser

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]

WATCH = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  `${e.violatedDirective} ${e.blockedURI} ${e.sample || ""}`.trim()));
"""


async def open_watched(chromium: Any, url: str, found: list[str]) -> Any:
    context = await chromium.new_context(viewport=VIEWPORT, locale="zh-CN")
    await context.add_init_script(WATCH)
    page = await context.new_page()
    page.on(
        "console",
        lambda m: found.append(m.text) if "Content Security Policy" in m.text else None,
    )
    page.on("pageerror", lambda e: found.append(f"pageerror: {e}"))
    reply = await page.goto(url)
    assert reply is not None and "default-src 'self'" in reply.headers["content-security-policy"]
    return page


async def violations(page: Any) -> list[str]:
    got: list[str] = await page.evaluate("window.__violations")
    return got


async def lesson_with_device(h: Any) -> str:
    now = time.time()
    await h.sessions.put(english_lesson("eng.now", now + 60))
    await h.app[LESSON_SERVICE_KEY].tick()
    await TimetableRepository(h.store).put_district(demo_district())
    coordinator = h.tokens.mint(subject="c", role=Role.coordinator)
    reply = await h.session.post(
        h.url("/api/v1/devices"),
        json={"class_id": "jd-1-g3", "school": "jd-1"},
        headers={"Authorization": f"Bearer {coordinator}"},
    )
    credential: str = (await reply.json())["credential"]
    return credential


async def test_every_page_runs_under_its_csp_and_drops_secrets_from_the_url(
    tmp_path: Path,
) -> None:
    async with running_app() as h, browser() as chromium:
        credential = await lesson_with_device(h)
        coordinator = h.tokens.mint(subject="c2", role=Role.coordinator)
        teacher = h.tokens.mint(subject="t", role=Role.teacher, room="eng.now", name="张老师")
        viewer = h.tokens.mint(subject="v", role=Role.viewer, room="eng.now")
        pages = {
            "index": ("/web/index.html", None),
            "teacher": (f"/web/teacher.html?video=640x360&token={teacher}", teacher),
            "viewer": (f"/web/viewer.html?token={viewer}", viewer),
            "coordinator": (f"/web/coordinator.html?token={coordinator}", coordinator),
            "patrol": (f"/web/patrol.html?token={coordinator}", coordinator),
            "kiosk": (f"/web/kiosk.html?credential={credential}", credential),
            "sfu-demo": (f"/web/sfu-demo.html?token={viewer}", viewer),
            "replay": (f"/web/replay.html?token={coordinator}", coordinator),
        }
        found: dict[str, list[str]] = {}
        for name, (path, secret) in pages.items():
            errors = found.setdefault(name, [])
            page = await open_watched(chromium, h.url(path), errors)
            await page.wait_for_load_state("networkidle")
            await page.wait_for_timeout(300)
            if secret is not None:
                # gone from the address bar and from history, the rest of the query kept
                assert secret not in page.url, (name, page.url)
                assert "video=640x360" in page.url or name != "teacher", page.url
                stored = await page.evaluate("JSON.stringify({...sessionStorage, ...localStorage})")
                assert secret in stored, name
                await page.reload()
                await page.wait_for_load_state("networkidle")
                text = await page.evaluate("document.body.innerText")
                assert "缺少访问令牌" not in text and "尚未登记" not in text, (name, text[:300])
            if name == "teacher":
                # the DOM helper's style property goes through CSSOM, which CSP allows
                height = await page.evaluate(
                    """import('/web/js/dom.js').then(({ h }) => {
                         const el = h('span', { style: 'height:40%' });
                         document.body.append(el);
                         return el.style.height; })"""
                )
                assert height == "40%"
            errors.extend(await violations(page))
            await page.context.close()
        assert not any(found.values()), found


async def test_the_kiosk_keeps_its_credential_out_of_the_url_across_restarts(
    tmp_path: Path,
) -> None:
    async with running_app() as h, browser() as chromium:
        credential = await lesson_with_device(h)
        context = await chromium.new_context(viewport=VIEWPORT, locale="zh-CN")
        page = await context.new_page()
        await page.goto(h.url(f"/web/kiosk.html?credential={credential}"))
        await page.wait_for_load_state("networkidle")
        assert credential not in page.url
        assert await page.evaluate("localStorage.getItem('sanke.device')") == credential
        history = await page.evaluate("history.length")
        # the classroom PC restarts: the kiosk opens its plain URL and finds its credential
        await page.goto(h.url("/web/kiosk.html"))
        await wait_js(
            page, "window.sankeKiosk && window.sankeKiosk.schedule !== null", timeout=10_000
        )
        assert credential not in page.url and history >= 1
        await context.close()
