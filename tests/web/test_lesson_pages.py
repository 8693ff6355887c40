"""End to end in real headless Chromium through the real SFU worker: the teacher console
publishes two layers, two classroom kiosks receive and decode it and send their cameras back,
one raises a hand, the teacher puts it on stage and mutes it, a viewer receives, the patrol
page shows the lesson unseen. Every control used here is driven by the keyboard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import wait_js
from support.harness import running_app

from contracts.rooms import Role
from media.worker import Worker
from scheduler.demo import demo_district
from web.pages import Pages, browser, open_live_lesson, press, until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(170)]

ROOM = "eng-g3-live"


async def frames_from(page: Any, client: str, participant: str | None = None) -> int:
    """Video frames this page decoded (from one participant, or from anyone), by getStats()."""
    stats = await page.evaluate(f"{client} ? {client}.stats() : null")
    if not stats:
        return 0
    return sum(
        v["framesDecoded"] or 0
        for v in stats["inboundVideo"]
        if participant is None or v["participantId"] == participant
    )


async def test_teacher_classrooms_viewer_and_patrol(tmp_path: Path) -> None:
    worker = Worker()
    async with running_app(media=worker) as h, browser() as chromium:
        pages = Pages(chromium, tmp_path)
        try:
            await run_lesson(h, worker, pages)
        finally:
            await pages.close()
            await worker.close()


async def run_lesson(h: Any, worker: Worker, pages: Pages) -> None:
    await open_live_lesson(h, ROOM, [("jd-1-g3", "jd-1"), ("jd-2-g3", "jd-2")])
    coordinator = h.tokens.mint(subject="coord", role=Role.coordinator)
    reply = await h.session.put(
        h.url("/api/v1/schedule/district"),
        data=demo_district().model_dump_json(),
        headers={"Authorization": f"Bearer {coordinator}", "Content-Type": "application/json"},
    )
    assert reply.status == 200, await reply.text()

    def token(role: Role, subject: str, **kw: Any) -> str:
        return h.tokens.mint(subject=subject, role=role, room=ROOM, **kw)

    # --- the teacher starts the lesson with the keyboard --------------------------------
    teacher = await pages.open(
        "teacher",
        h.url(
            f"/web/teacher.html?video=640x360&token={token(Role.teacher, 'zhang', name='张老师')}"
        ),
    )
    await wait_js(teacher, "document.querySelectorAll('#camera option').length > 0")
    await press(teacher, "#start")
    await wait_js(teacher, "document.getElementById('room').textContent === 'eng-g3-live'")
    teacher_id = await teacher.evaluate("window.sanke.client.participantId")

    # Two video layers arrive at the SFU: high, then low.
    async def teacher_layers() -> set[str]:
        stats = await worker.stats()
        return {
            p.layer
            for r in stats.rooms
            for t in r.transports
            if t.participant_id == teacher_id
            for p in t.producers
            if p.kind == "video" and p.frames > 0
        }

    await until(teacher_layers, lambda v: v == {"high", "low"}, "teacher publishes high + low")

    # --- two classrooms join, decode the teacher and send their cameras back ------------
    kiosks = {}
    for class_id, name in (("jd-1-g3", "李庄教学点 三年级"), ("jd-2-g3", "王村教学点 三年级")):
        tok = token(Role.classroom, class_id, classroom_id=class_id, name=name)
        kiosks[class_id] = await pages.open(
            f"kiosk-{class_id}", h.url(f"/web/kiosk.html?token={tok}")
        )
    for page in kiosks.values():
        await wait_js(page, "document.body.classList.contains('live')")
        await until(
            lambda p=page: frames_from(p, "window.sankeKiosk.client", teacher_id),
            lambda n: n > 20,
            "classroom decodes the teacher",
        )
        assert await page.text_content("#status") == "上课中"
    ids = {
        cid: await page.evaluate("window.sankeKiosk.client.participantId")
        for cid, page in kiosks.items()
    }
    await wait_js(teacher, "document.querySelectorAll('#wall .tile').length === 2")
    for pid in ids.values():
        await until(
            lambda pid=pid: frames_from(teacher, "window.sanke.client", pid),
            lambda n: n > 10,
            "teacher decodes a classroom",
        )
    assert "李庄教学点 三年级" in await teacher.text_content("#wall")
    a, b = kiosks["jd-1-g3"], kiosks["jd-2-g3"]
    a_tile = f"#wall .tile[data-participant='{ids['jd-1-g3']}']"

    # --- a hand goes up (Space on the kiosk's button) and shows on the teacher's wall ---
    await press(a, "#hand", " ")
    await teacher.wait_for_selector(f"{a_tile}[data-hand='1']")
    await a.wait_for_selector("#hand[aria-pressed='true']")
    assert not await teacher.is_hidden(f"{a_tile} .lower-btn")

    # --- on stage: the other classroom now receives it ------------------------------------
    await press(teacher, f"{a_tile} .stage-btn")
    await teacher.wait_for_selector(f"{a_tile}[data-stage='1']")
    assert await teacher.get_attribute(f"{a_tile} .stage-btn", "aria-pressed") == "true"
    await teacher.wait_for_selector(f"{a_tile}[data-hand='0']")
    await until(
        lambda: frames_from(b, "window.sankeKiosk.client", ids["jd-1-g3"]),
        lambda n: n > 5,
        "the other classroom decodes the classroom on stage",
    )
    await wait_js(a, "document.getElementById('mine').textContent.includes('已上台')")

    # --- mute it ----------------------------------------------------------------------------
    await press(teacher, f"{a_tile} .mute-btn")
    await teacher.wait_for_selector(f"{a_tile}[data-muted='1']")
    await wait_js(a, "document.getElementById('mine').textContent.includes('已被主讲教师静音')")
    await wait_js(
        teacher,
        "[...document.querySelectorAll('#wall .tile .bars')].every(b => b.dataset.level !== '0')",
    )

    # --- a viewer receives ------------------------------------------------------------------
    viewer = await pages.open(
        "viewer", h.url(f"/web/viewer.html?token={token(Role.viewer, 'viewer-1')}")
    )
    await until(
        lambda: frames_from(viewer, "window.sanke.client", teacher_id),
        lambda n: n > 20,
        "the viewer decodes the teacher",
    )

    # --- patrol: the lesson is in the grid (low layer), unseen by the lesson ----------------
    patrol = await pages.open("patrol", h.url(f"/web/patrol.html?token={coordinator}"))
    tile = f"#grid .tile[data-room='{ROOM}']"
    await patrol.wait_for_selector(tile)
    await until(
        lambda: patrol.evaluate(
            f"window.sanke.lessons.get('{ROOM}').client && window.sanke.lessons.get('{ROOM}').client.stats()"
        ),
        lambda s: bool(s) and sum(v["framesDecoded"] or 0 for v in s["inboundVideo"]) > 10,
        "patrol decodes the lesson",
    )
    assert "示范县实验小学" in await patrol.text_content(tile)
    regions = await patrol.eval_on_selector_all("#f-region option", "os => os.map(o => o.value)")
    assert "4117/411721" in regions
    await patrol.select_option("#f-subject", "英语")
    assert await patrol.is_visible(tile)

    async def observer_layers() -> list[set[str]]:
        stats = await worker.stats()
        observers = [t for r in stats.rooms for t in r.transports if t.role == "observer"]
        return [{c.target_layer for c in t.consumers if c.kind == "video"} for t in observers]

    # one observer, pinned to the low layer (its consumer can be a moment behind its
    # frames on a loaded machine: polled, not sampled once)
    await until(observer_layers, lambda v: v == [{"low"}], "the patrol gets the low layer")
    roles = await teacher.evaluate(
        "[...window.sanke.client.participants.values()].map(p => p.role)"
    )
    assert "observer" not in roles
    await pages.screenshot(patrol, "patrol")
    await press(patrol, f"{tile} .enlarge")
    await patrol.wait_for_selector("#big.open")
    assert await patrol.evaluate("document.activeElement.id") == "big-close"

    for name, page in (("teacher", teacher), ("kiosk", a), ("viewer", viewer)):
        await pages.screenshot(page, name)
    await patrol.keyboard.press("Escape")
    await patrol.wait_for_selector("#big.open", state="hidden")

    # --- the SFU's quality scores reach the teacher and the kiosk --------------------------
    await wait_js(teacher, "window.sanke.serverQuality.size >= 2", timeout=15_000)
    await wait_js(a, "window.sankeKiosk.serverQuality !== undefined", timeout=15_000)

    # --- English, then the teacher ends the lesson ------------------------------------------
    await press(a, "#lang")
    await wait_js(a, "document.documentElement.lang === 'en'")
    assert await a.text_content("#status") == "Lesson in progress"
    await press(teacher, "#end")
    # end_lesson closes the room for everyone: the kiosk says the lesson is over.
    await wait_js(a, "document.getElementById('status').textContent === 'The lesson is over'")
    pages.assert_no_console_errors()
