"""What a classroom kiosk (headless Chromium) shows of the teacher, for the ingest tests."""

from __future__ import annotations

from typing import Any

# What the classroom sees: the main video element, and Chromium's own stats of its track.
MAIN_VIDEO = """async () => {
  const video = document.getElementById('teacher-video');
  const stream = video.srcObject;
  const client = window.sankeKiosk.client;
  if (!stream || !client || !client.pc) return null;
  const trackId = stream.getVideoTracks()[0]?.id;
  const report = await client.pc.getStats();
  let inbound = null;
  report.forEach((r) => {
    if (r.type === 'inbound-rtp' && r.kind === 'video' && r.trackIdentifier === trackId) inbound = r;
  });
  if (!inbound) return null;
  return { shownWidth: video.videoWidth, shownHeight: video.videoHeight,
           paused: video.paused, frames: inbound.framesDecoded || 0,
           width: inbound.frameWidth || 0, height: inbound.frameHeight || 0,
           freezes: inbound.freezeCount || 0, t: performance.now() / 1000 };
}"""


async def register_kiosk(lesson: Any) -> str:
    async with lesson.h.session.post(
        lesson.h.url("/api/v1/devices"),
        json={"class_id": "jd-1-g3", "school": "jd-1"},
        headers={"Authorization": f"Bearer {lesson.coordinator}"},
    ) as reply:
        assert reply.status == 201, await reply.text()
        credential: str = (await reply.json())["credential"]
        return credential
