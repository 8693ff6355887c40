"""The coordinator page's lesson sources in real headless Chromium: register a WHIP source for
a master classroom (keyboard only), the URL and token shown once, an RTMP one with its
server and stream key shown once, a real aiortc encoder
publishing with them, the row showing it publishing with its picture, and deleting it."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.clips import load_clip, make_clip
from support.whip_client import WhipClient
from support.whip_lesson import whip_lesson

from media.worker import Worker
from web.pages import Pages, browser, press, until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(150)]

ROWS = "rs => rs.map(r => [...r.cells].map(c => c.textContent))"


async def test_register_watch_and_delete_a_whip_source(tmp_path: Path) -> None:
    clip = load_clip(make_clip(tmp_path, "encoder.ts", size="640x360", seconds=4), "video")
    worker = Worker()
    async with whip_lesson(media=worker) as lesson, browser() as chromium:
        h = lesson.h
        pages = Pages(chromium, tmp_path)
        page = await pages.open(
            "coordinator", h.url(f"/web/coordinator.html?token={lesson.coordinator}")
        )
        encoder: WhipClient | None = None
        try:
            await press(page, "nav button[data-panel=sources]")
            rows = await until(
                lambda: page.eval_on_selector_all("#sources tbody tr.source", ROWS),
                lambda r: len(r) == 1,
                "the fixture's source listed",
            )
            assert rows[0][:3] == ["录播主机", "示范县实验小学 3年级(1)班", "未连接"], rows

            # --- register one for 4年级(1)班 with the form ------------------------------
            await page.focus("#source-name")
            await page.keyboard.type("四楼录播")
            options = await page.eval_on_selector_all(
                "#source-classroom option", "os => os.map(o => o.textContent)"
            )
            assert "示范县实验小学 3年级(1)班" in options and "示范县实验小学 4年级(1)班" in options
            await page.select_option("#source-classroom", label="示范县实验小学 4年级(1)班")
            await page.focus("#source-name")
            await page.keyboard.press("Enter")
            secret = await until(
                lambda: page.evaluate(
                    "(() => { const n = document.getElementById('source-secret');"
                    " return n.hidden ? null : { ...n.dataset, text: n.textContent }; })()"
                ),
                bool,
                "the new source's URL and token",
            )
            assert secret["url"].startswith(h.url("/whip/v1/src"))
            assert secret["token"].startswith("whip.") and secret["token"] in secret["text"]
            await until(
                lambda: page.eval_on_selector_all("#sources tbody tr.source", ROWS),
                lambda r: len(r) == 2,
                "two sources listed",
            )

            # --- an RTMP one: the server and the stream key shown once ----------------------
            await page.focus("#source-name")
            await page.keyboard.type("OBS 推流")
            await page.select_option("#source-kind", "rtmp")
            await page.focus("#source-name")
            await page.keyboard.press("Enter")
            key = await until(
                lambda: page.evaluate(
                    "(() => { const n = document.getElementById('source-secret');"
                    " return n.dataset.url.startsWith('rtmp://')"
                    " ? { ...n.dataset, text: n.textContent } : null; })()"
                ),
                bool,
                "the RTMP source's server and stream key",
            )
            assert key["url"] == "rtmp://localhost:1935/live", key
            assert key["token"] and key["token"] in key["text"] and "推流码" in key["text"]
            await until(
                lambda: page.eval_on_selector_all("#sources tbody tr.source", ROWS),
                lambda r: len(r) == 3,
                "three sources listed",
            )

            # --- the fixture's source publishes: its row says so, with the picture -----
            encoder = WhipClient(h.session, lesson.endpoint(), lesson.token, clip)
            assert (await encoder.publish()).status == 201

            async def first_row() -> list[str]:
                await press(page, "#refresh-sources")
                found: list[list[str]] = await page.eval_on_selector_all(
                    f"#sources tbody tr.source[data-id={lesson.source_id}]", ROWS
                )
                return found[0] if found else []

            row = await until(first_row, lambda r: "640×360" in (r[3] if r else ""), "live")
            assert row[2] == "推流中", row

            # --- delete it: the row goes, the publish ends --------------------------------
            await press(page, f"#sources tr[data-id={lesson.source_id}] button.remove")
            await until(
                lambda: page.eval_on_selector_all("#sources tbody tr.source", ROWS),
                lambda r: len(r) == 2 and {r[0][0], r[1][0]} == {"四楼录播", "OBS 推流"},
                "the deleted source gone",
            )
            assert "已删除来源" in (await page.text_content("#message") or "")
            await until(encoder.delete, lambda r: r.status == 404, "the publish ended")
            await pages.screenshot(page, "coordinator-sources")
            pages.assert_no_console_errors()
        finally:
            if encoder is not None:
                await encoder.close()
            await pages.close()
    await worker.close()
