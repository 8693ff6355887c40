"""The coordinator page's pairings (结对帮扶) in real headless Chromium: the list after an
upload, adding one with the form and removing one (keyboard only), a bad side refused where
the form is, and an unmet class told in Chinese, then English, that no partner serves it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.browser import wait_js
from support.counties import A, B, serves, three_counties
from support.harness import running_app

from contracts.rooms import Role
from scheduler.domain import Pairing
from web.pages import Pages, browser, press

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


async def test_pairings_list_add_remove_and_the_no_partner_reason(tmp_path: Path) -> None:
    district = tmp_path / "district.json"
    paired = three_counties(Pairing(serving=serves(A), served=serves(B)))
    district.write_text(paired.model_dump_json(), encoding="utf-8")
    async with running_app() as h, browser() as chromium:
        pages = Pages(chromium, tmp_path)
        token = h.tokens.mint(subject="coord", role=Role.coordinator)
        headers = {"Authorization": f"Bearer {token}"}

        async def stored_pairings() -> list[dict[str, object]]:
            reply = await h.session.get(h.url("/api/v1/schedule/district"), headers=headers)
            found: list[dict[str, object]] = (await reply.json())["pairings"]
            return found

        page = await pages.open("coordinator", h.url(f"/web/coordinator.html?token={token}"))
        try:
            await wait_js(page, "document.getElementById('summary').textContent !== ''")
            await page.set_input_files("#json-file", str(district))
            await press(page, "#upload-json")
            await wait_js(
                page, "document.getElementById('summary').textContent.includes('1 个结对')"
            )
            rows = await page.eval_on_selector_all(
                "#pairings tr.pairing", "rs => rs.map(r => [...r.cells].map(c => c.textContent))"
            )
            assert rows == [[A, B, "全部学科", "解除结对"]]
            heads = await page.eval_on_selector_all(
                "#pairings thead th", "hs => hs.map(h => h.textContent)"
            )
            assert heads == ["提供方（主讲）", "受援方（远端班级）", "学科", ""]

            # --- add one with the form: a school serving a county, for 英语 only -----------
            await page.select_option("#serving-kind", "school")
            await page.focus("#serving-value")
            await page.keyboard.type("m-a")
            await page.focus("#served-value")
            await page.keyboard.type("41/4102/410201")
            await page.focus("#pairing-subjects")
            await page.keyboard.type("英语；音乐")
            await page.keyboard.press("Enter")  # submits the form
            await wait_js(page, "document.querySelectorAll('#pairings tr.pairing').length === 2")
            assert "已添加结对" in await page.text_content("#message")
            second = await page.eval_on_selector(
                "#pairings tr.pairing[data-index='1']", "r => [...r.cells].map(c => c.textContent)"
            )
            assert second[:3] == ["m-a (m-a)", "41/4102/410201", "英语、音乐"]
            await pages.screenshot(page, "coordinator-pairings")
            assert (await stored_pairings())[1] == {
                "serving": {"school": "m-a", "region": None},
                "served": {"school": None, "region": "41/4102/410201"},
                "subjects": ["英语", "音乐"],
            }

            # --- a side nobody is in: refused, shown per field, nothing stored -------------
            await page.fill("#served-value", "41/9999")
            await press(page, "#pairing-form button[type='submit']")
            await page.wait_for_selector("#errors tr.error-row")
            fields = await page.eval_on_selector_all(
                "#errors tr.error-row", "rs => rs.map(r => r.dataset.field)"
            )
            assert fields == ["served.region"]
            assert len(await stored_pairings()) == 2

            # --- remove the first: the keyboard stays on the list ------------------------
            await press(page, "#pairings tr.pairing[data-index='0'] .remove")
            await wait_js(page, "document.querySelectorAll('#pairings tr.pairing').length === 1")
            assert await page.evaluate("document.activeElement.classList.contains('remove')")
            assert [p["served"] for p in await stored_pairings()] == [
                {"school": None, "region": "41/4102/410201"}
            ]

            # --- solve: r-b (county B) lost its partner and is told so, in Chinese -------
            await press(page, "nav button[data-panel='solve']")
            await page.fill("#time-limit", "10")
            await press(page, "#run")
            await page.wait_for_selector("#phase[data-phase='done']", timeout=60_000)
            await press(page, "nav button[data-panel='unmet']")
            await page.wait_for_selector("#unmet li[data-code='no_partner']")
            said = await page.eval_on_selector_all(
                "#unmet li[data-code='no_partner']", "ls => ls.map(l => l.textContent)"
            )
            assert "m-a 开设3年级英语，但未与本班学校结对（结对帮扶），不能为本班授课" in said
            await press(page, "#lang")
            await wait_js(page, "document.documentElement.lang === 'en'")
            said = await page.eval_on_selector_all(
                "#unmet li[data-code='no_partner']", "ls => ls.map(l => l.textContent)"
            )
            assert (
                "m-a teach grade 3 英语, but no pairing lets them serve this class's school" in said
            )
            assert await page.text_content("#h-pairings") == "Pairings (结对帮扶)"
        finally:
            await pages.close()
    # The refused pairing was answered 422 on purpose (Chromium logs every failed request).
    errors = [e for e in pages.errors["coordinator"] if "status of 422" not in e]
    assert errors == [], errors
