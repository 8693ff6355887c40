"""The demo district for ``sanke serve --demo``: rooms, tokens to try them, the district data."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web

from contracts.rooms import Role, Room, RoomKind
from scheduler.api import RUNNER_KEY
from scheduler.demo import demo_district
from scheduler.solver.solve import SolveOptions, solve
from signaling.http_auth import TOKENS_KEY

log = logging.getLogger(__name__)

DEMO_ROOMS = [
    Room(
        id="demo-english-3",
        name="三年级英语 专递课堂 (张老师)",
        kind=RoomKind.dedicated,
        school_id="xian-shiyan",
    ),
    Room(
        id="demo-music-1",
        name="一年级音乐 专递课堂 (王老师)",
        kind=RoomKind.dedicated,
        school_id="zhen-dong",
    ),
    Room(
        id="demo-master-lecture",
        name="名师课堂 教研示范课",
        kind=RoomKind.master,
        school_id="xian-shiyan",
        max_participants=500,
    ),
]


async def load_demo(app: web.Application) -> None:
    from sanke.app import SETTINGS_KEY, STORE_KEY
    from signaling.rooms import RoomRepository

    rooms = RoomRepository(app[STORE_KEY])
    for room in DEMO_ROOMS:
        await rooms.create(room.model_copy())
    await load_demo_district(app)
    tokens = app[TOKENS_KEY]
    day = 12 * 3600
    lesson = "demo-english-3"

    def mint(
        role: Role,
        subject: str,
        room: str | None = None,
        name: str = "",
        school_id: str | None = None,
        classroom_id: str | None = None,
    ) -> str:
        return tokens.mint(
            subject=subject,
            role=role,
            room=lesson,
            name=name,
            school_id=school_id,
            classroom_id=classroom_id,
            ttl=day,
        )

    coordinator = mint(Role.coordinator, "demo-coordinator")
    pages = [
        ("coordinator 区县管理员", "coordinator", coordinator),
        ("patrol 巡课", "patrol", coordinator),
        ("teacher 主讲教师", "teacher", mint(Role.teacher, "zhang", room=lesson, name="张老师",
                                            school_id="xian-shiyan", classroom_id="xian-shiyan-3-1")),
        ("classroom 李庄教学点", "kiosk", mint(Role.classroom, "jd-1-g3", room=lesson,
                                              name="李庄教学点 三年级", classroom_id="jd-1-g3",
                                              school_id="jd-1")),
        ("classroom 王营教学点", "kiosk", mint(Role.classroom, "jd-2-g3", room=lesson,
                                              name="王营教学点 三年级", classroom_id="jd-2-g3",
                                              school_id="jd-2")),
        ("viewer 观众", "viewer", mint(Role.viewer, "viewer-1", room=lesson, name="观众")),
    ]  # fmt: skip
    port = app[SETTINGS_KEY].port
    scheme = "https" if app[SETTINGS_KEY].tls else "http"
    log.info("demo district loaded; open these pages (links valid for 12 h):")
    for who, page, token in pages:
        log.info("  %-22s %s://localhost:%d/web/%s.html?token=%s", who, scheme, port, page, token)


async def load_demo_district(app: web.Application) -> None:
    """The demo county, solved and published, so this term's lessons exist (once)."""
    from sanke.app import LESSON_SERVICE_KEY

    repo = app[RUNNER_KEY].repo
    if await repo.published_version() is not None:
        return
    district = demo_district()
    await repo.put_district(district)
    timetable = await asyncio.to_thread(solve, district, SolveOptions(time_limit=20))
    version = await repo.add(timetable)
    await repo.publish(version)
    stored = await repo.get(version)
    assert stored is not None
    report = await app[LESSON_SERVICE_KEY].publish(district, stored.timetable)
    log.info(
        "demo timetable v%d published: %d periods served, %d lesson sessions ahead",
        version, timetable.stats.served, report.created,
    )  # fmt: skip
