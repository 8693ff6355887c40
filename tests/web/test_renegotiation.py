"""A plain browser client (no SDP munging) that both sends and receives survives the SFU's
re-offers in real Chromium: the teacher console and two classroom kiosks all publish camera +
microphone, the SFU renegotiates as they join and as the teacher puts both classrooms on
stage, and afterwards every receiving side still decodes every sender, on H264 throughout
(the codec each publisher negotiated first, its payload types and header-extension ids are
what the SFU re-offers, media/aiortc_seams.py ``create_offer``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support.browser import wait_js
from support.harness import running_app

from contracts.rooms import Role
from media.worker import Worker
from web.pages import Pages, browser, open_live_lesson, press, until

pytestmark = [pytest.mark.browser, pytest.mark.timeout(170)]

ROOM = "reneg-g3"
TEACHER = "window.sanke.client"
KIOSK = "window.sankeKiosk.client"

# Video in and out of one page by getStats(): frames and codec per sender / per m-line.
VIDEO_STATS = """async (expr) => {
  const client = eval(expr);
  if (!client || !client.pc) return null;
  const report = await client.pc.getStats();
  const codecs = {};
  report.forEach((s) => { if (s.type === "codec") codecs[s.id] = s.mimeType; });
  const out = { inbound: {}, outbound: [], renegotiations: client.renegotiations || 0 };
  report.forEach((s) => {
    if (s.type === "inbound-rtp" && s.kind === "video") {
      const who = client.owners.get(s.trackIdentifier) || "?";
      const seen = out.inbound[who] || { frames: 0, codecs: [] };
      seen.frames += s.framesDecoded || 0;
      if (s.codecId) seen.codecs.push(codecs[s.codecId]);
      out.inbound[who] = seen;
    }
    if (s.type === "outbound-rtp" && s.kind === "video") {
      out.outbound.push({ mid: s.mid, frames: s.framesEncoded || 0, codec: codecs[s.codecId] });
    }
  });
  return out;
}"""


async def video_stats(page: Any, client: str) -> Any:
    return await page.evaluate(VIDEO_STATS, client)


async def test_plain_clients_keep_decoding_h264_both_ways_through_renegotiations(
    tmp_path: Path,
) -> None:
    worker = Worker()
    async with running_app(media=worker) as h, browser() as chromium:
        pages = Pages(chromium, tmp_path)
        try:
            await run(h, worker, pages)
        finally:
            await pages.close()
            await worker.close()


async def run(h: Any, worker: Worker, pages: Pages) -> None:
    await open_live_lesson(h, ROOM, [("jd-1-g3", "jd-1"), ("jd-2-g3", "jd-2")])

    def token(role: Role, subject: str, **kw: Any) -> str:
        return h.tokens.mint(subject=subject, role=role, room=ROOM, **kw)

    teacher = await pages.open(
        "teacher",
        h.url(f"/web/teacher.html?video=640x360&token={token(Role.teacher, 'zhang')}"),
    )
    await wait_js(teacher, "document.querySelectorAll('#camera option').length > 0")
    await press(teacher, "#start")
    await wait_js(teacher, f"{TEACHER} && {TEACHER}.participantId")
    teacher_id = await teacher.evaluate(f"{TEACHER}.participantId")

    kiosks: dict[str, Any] = {}
    for class_id in ("jd-1-g3", "jd-2-g3"):
        tok = token(Role.classroom, class_id, classroom_id=class_id, name=class_id)
        kiosks[class_id] = await pages.open(class_id, h.url(f"/web/kiosk.html?token={tok}"))
    for page in kiosks.values():
        await wait_js(page, f"{KIOSK} && {KIOSK}.participantId")
    a, b = kiosks["jd-1-g3"], kiosks["jd-2-g3"]
    ids = {
        "teacher": teacher_id,
        "a": await a.evaluate(f"{KIOSK}.participantId"),
        "b": await b.evaluate(f"{KIOSK}.participantId"),
    }
    # who each page must decode once both classrooms are on stage
    receivers = {
        "teacher": (teacher, TEACHER, [ids["a"], ids["b"]]),
        "a": (a, KIOSK, [ids["teacher"], ids["b"]]),
        "b": (b, KIOSK, [ids["teacher"], ids["a"]]),
    }

    async def decoding(name: str, sources: list[str], more_than: int) -> Any:
        page, client, _ = receivers[name]
        return await until(
            lambda: video_stats(page, client),
            lambda s: (
                bool(s)
                and all(s["inbound"].get(src, {}).get("frames", 0) > more_than for src in sources)
            ),
            f"{name} decodes {sources}",
        )

    # Before any stage: kiosks decode the teacher, the teacher decodes both kiosks.
    await decoding("teacher", [ids["a"], ids["b"]], 10)
    await decoding("a", [ids["teacher"]], 10)
    await decoding("b", [ids["teacher"]], 10)

    # On stage: each kiosk gets a server offer that adds the other's tracks to a connection
    # that already sends and receives.
    for who in ("a", "b"):
        tile = f"#wall .tile[data-participant='{ids[who]}']"
        await teacher.wait_for_selector(f"{tile} .stage-btn")
        await press(teacher, f"{tile} .stage-btn")
        await teacher.wait_for_selector(f"{tile}[data-stage='1']")

    before: dict[str, Any] = {}
    for name, (_, _, sources) in receivers.items():
        before[name] = await decoding(name, sources, 5)

    # Everyone keeps decoding everyone, and the frames keep coming (not a stale count).
    for name, (_, _, sources) in receivers.items():
        then = before[name]
        after = await until(
            lambda n=name: video_stats(receivers[n][0], receivers[n][1]),
            lambda s, t=then, srcs=sources: all(
                s["inbound"][src]["frames"] >= t["inbound"][src]["frames"] + 30 for src in srcs
            ),
            f"{name} keeps decoding after the renegotiations",
        )
        for src in sources:
            assert set(after["inbound"][src]["codecs"]) == {"video/H264"}, (name, src, after)
        assert after["outbound"], (name, after)
        for out in after["outbound"]:
            assert out["codec"] == "video/H264", (name, after)
        assert after["renegotiations"] >= 1, (name, after)
    total = sum(before[n]["renegotiations"] for n in receivers)
    assert total >= 5, before  # teacher: 2 joins; each kiosk: the teacher, then the other

    # The SFU received H264 from every publisher, both layers, and still does.
    stats = await worker.stats()
    video = [p for r in stats.rooms for t in r.transports for p in t.producers if p.kind == "video"]
    assert len(video) == 6, video
    assert {p.codec for p in video} == {"H264"}, video
    pages.assert_no_console_errors()
