"""The coordinator page in real headless Chromium: upload a small district (and a CSV with a bad
row, shown per row and field), solve with progress, see the week grid, pin from the grid,
publish, re-solve and see the pin kept; unmet demand with reasons; 开课率 table. Keyboard only."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from support.browser import wait_js
from support.harness import running_app

from contracts.rooms import Role
from scheduler.demo import demo_district
from scheduler.io.csvio import OFFERING_COLUMNS
from web.pages import Pages, browser, press

pytestmark = [pytest.mark.browser, pytest.mark.timeout(120)]


def bad_offerings_csv() -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=OFFERING_COLUMNS, lineterminator="\n")
    writer.writeheader()
    row = {
        "id": "ok-1",
        "teacher": "张老师",
        "school": "xian-shiyan",
        "classroom": "3年级(1)班",
        "grade": "3",
        "subject": "英语",
        "edition": "人教PEP",
        "weekday": "mon",
        "period": "3",
        "max_remote": "4",
    }
    writer.writerow(row)
    writer.writerow({**row, "id": "bad-1", "grade": "三"})  # line 3: grade is not a number
    return out.getvalue()


async def test_upload_solve_pin_publish_resolve(tmp_path: Path) -> None:
    district = tmp_path / "district.json"
    district.write_text(demo_district().model_dump_json(), encoding="utf-8")
    bad_csv = tmp_path / "offerings.csv"
    bad_csv.write_text(bad_offerings_csv(), encoding="utf-8")
    async with running_app() as h, browser() as chromium:
        pages = Pages(chromium, tmp_path)
        token = h.tokens.mint(subject="coord", role=Role.coordinator)
        headers = {"Authorization": f"Bearer {token}"}
        page = await pages.open("coordinator", h.url(f"/web/coordinator.html?token={token}"))
        try:
            # --- upload the district, then a CSV with a bad row -------------------------------
            await wait_js(page, "document.getElementById('summary').textContent !== ''")
            await page.set_input_files("#json-file", str(district))
            await press(page, "#upload-json")
            await wait_js(
                page, "document.getElementById('summary').textContent.includes('9 所学校')"
            )
            await page.select_option("#csv-kind", "offerings")
            await page.set_input_files("#csv-file", str(bad_csv))
            await press(page, "#upload-csv", " ")
            await page.wait_for_selector("#errors tr.error-row")
            rows = await page.eval_on_selector_all(
                "#errors tr.error-row", "rs => rs.map(r => [r.dataset.row, r.dataset.field])"
            )
            assert ["3", "grade"] in rows
            assert "未保存" in await page.text_content("#message")
            reply = await h.session.get(h.url("/api/v1/schedule/district"), headers=headers)
            assert len((await reply.json())["offerings"]) == 40  # nothing replaced

            # --- solve with progress, then the grid -----------------------------------------
            await press(page, "nav button[data-panel='solve']")
            await page.fill("#time-limit", "10")
            await press(page, "#run")
            await page.wait_for_selector("#phase[data-phase='done']", timeout=60_000)
            await wait_js(page, "document.querySelector('#versions tbody tr')")
            assert await page.evaluate("document.getElementById('progress').value") == 100
            await press(page, "nav button[data-panel='timetable']")
            await page.select_option("#view-kind", "classroom")
            await page.select_option("#view-key", "jd-1-g3")
            lesson = "#grid .lesson[data-class-id='jd-1-g3']"
            await page.wait_for_selector(lesson)
            offering = await page.get_attribute(lesson, "data-offering")
            cell = await page.eval_on_selector(lesson, "e => e.parentElement.dataset.cell")
            assert cell.split("/")[0] in ("mon", "tue", "wed", "thu", "fri")

            # --- pin it from the grid (keyboard), publish ------------------------------------
            pin = f"#grid .lesson[data-class-id='jd-1-g3'][data-offering='{offering}'] .pin"
            await press(page, pin)
            await page.wait_for_selector(f"{pin}[aria-pressed='true']")
            assert await page.evaluate("document.activeElement.classList.contains('pin')")
            await page.keyboard.press("Tab")  # the grid is navigable with Tab: pin → ban
            assert await page.evaluate("document.activeElement.classList.contains('ban')")
            reply = await h.session.get(h.url("/api/v1/schedule/district"), headers=headers)
            assert {"class_id": "jd-1-g3", "offering_id": offering} in (await reply.json())["pins"]
            await press(page, "#publish")
            await wait_js(page, "document.getElementById('message').textContent.includes('已发布')")

            # --- re-solve from the published timetable: the pin is kept ----------------------
            await press(page, "nav button[data-panel='solve']")
            await page.check("#resolve")
            await press(page, "#run")
            await wait_js(page, "window.sanke.version === 2", timeout=60_000)
            await press(page, "nav button[data-panel='timetable']")
            await page.select_option("#view-key", "jd-1-g3")
            await page.wait_for_selector(f"{pin}[aria-pressed='true']")
            assert "2" in await page.text_content("#grid-caption")
            reply = await h.session.get(h.url("/api/v1/schedule/timetables/2"), headers=headers)
            pairs = {(a["class_id"], a["offering_id"]) for a in (await reply.json())["assignments"]}
            assert ("jd-1-g3", offering) in pairs
            await pages.screenshot(page, "coordinator")

            # --- unmet demand with reasons; 开课率 ------------------------------------------------
            await press(page, "nav button[data-panel='unmet']")
            reasons = await page.eval_on_selector_all(
                "#unmet li", "ls => ls.map(l => l.textContent)"
            )
            assert reasons and all(r.strip() for r in reasons)
            await press(page, "nav button[data-panel='stats']")
            await press(page, "#load-stats")
            await page.wait_for_selector("#stats tr.total")

            # --- English -----------------------------------------------------------------------
            await press(page, "#lang")
            await wait_js(page, "document.documentElement.lang === 'en'")
            assert await page.text_content("nav button[data-panel='stats']") == "Lessons held"
        finally:
            await pages.close()
    # The bad CSV was answered 422 on purpose (Chromium logs every failed request).
    errors = [e for e in pages.errors["coordinator"] if "status of 422" not in e]
    assert errors == [], errors
