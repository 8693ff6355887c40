"""A lesson open now in the demo district's master classroom 实验小学 3年级(1)班, with a WHIP
source registered for that classroom through the coordinator API."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from contracts.rooms import Role
from sanke.app import LESSON_SERVICE_KEY
from scheduler.demo import demo_district
from scheduler.repository import TimetableRepository
from support.harness import Harness, running_app
from support.sessions import english_lesson

MASTER_SCHOOL = "xian-shiyan"
MASTER_CLASSROOM = "3年级(1)班"
LESSON = "eng.now"


@dataclass
class WhipLesson:
    h: Harness
    source_id: str
    token: str  # the source's bearer token, as the coordinator was shown it
    coordinator: str  # a coordinator's access token

    def endpoint(self, source_id: str | None = None) -> str:
        return self.h.url(f"/whip/v1/{source_id or self.source_id}")

    async def status(self) -> dict[str, Any]:
        async with self.h.session.get(
            self.h.url(f"/api/v1/sources/{self.source_id}/status"),
            headers={"Authorization": f"Bearer {self.coordinator}"},
        ) as reply:
            assert reply.status == 200, await reply.text()
            data: dict[str, Any] = await reply.json()
            return data


async def register_source(h: Harness, coordinator: str, **body: Any) -> dict[str, Any]:
    fields = {"kind": "whip", "name": "录播主机", "school": MASTER_SCHOOL}
    fields |= {"classroom": MASTER_CLASSROOM} | body
    async with h.session.post(
        h.url("/api/v1/sources"), json=fields, headers={"Authorization": f"Bearer {coordinator}"}
    ) as reply:
        data: dict[str, Any] = await reply.json()
        data["_status"] = reply.status
        return data


@asynccontextmanager
async def whip_lesson(
    media: Any = None, open_now: bool = True, **settings: Any
) -> AsyncIterator[WhipLesson]:
    async with running_app(media=media, **settings) as h:
        await TimetableRepository(h.store).put_district(demo_district())
        if open_now:
            await h.sessions.put(
                english_lesson(
                    LESSON,
                    time.time() + 60,
                    offering_id="xian-shiyan-g3-英语-mon3",
                    master_classroom=MASTER_CLASSROOM,
                    date=time.strftime("%Y-%m-%d", time.gmtime(time.time() + 8 * 3600)),
                )
            )
            await h.app[LESSON_SERVICE_KEY].tick()
        coordinator = h.tokens.mint(subject="coord-1", role=Role.coordinator)
        registered = await register_source(h, coordinator)
        assert registered["_status"] == 201, registered
        yield WhipLesson(h, registered["source"]["id"], registered["token"], coordinator)
