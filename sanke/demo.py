"""The demo district for ``sanke serve --demo``: rooms, tokens to try them, the district data."""

from __future__ import annotations

import importlib
import logging

from aiohttp import web

from signaling.http_auth import TOKENS_KEY
from signaling.models import Role, Room, RoomKind

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
    from sanke.app import STORE_KEY

    store = app[STORE_KEY]
    for room in DEMO_ROOMS:
        await store.create_room(room.model_copy())
    load_district = getattr(_maybe("scheduler.api"), "load_demo_district", None)
    if callable(load_district):
        await load_district(store)
    tokens = app[TOKENS_KEY]
    day = 12 * 3600
    lines = [
        ("coordinator", tokens.mint(subject="demo-coordinator", role=Role.coordinator, ttl=day)),
        (
            "teacher",
            tokens.mint(
                subject="zhang",
                role=Role.teacher,
                room="demo-english-3",
                name="张老师",
                school_id="xian-shiyan",
                ttl=day,
            ),
        ),
        (
            "classroom jd-1",
            tokens.mint(
                subject="jd-1-g3",
                role=Role.classroom,
                room="demo-english-3",
                name="李庄教学点 三年级",
                classroom_id="jd-1-g3",
                school_id="jd-1",
                ttl=day,
            ),
        ),
        (
            "observer",
            tokens.mint(
                subject="patrol", role=Role.observer, room="demo-english-3", name="督导", ttl=day
            ),
        ),
    ]
    log.info("demo district loaded; tokens valid for 12 h:")
    for who, token in lines:
        log.info("  %s: %s", who, token)


def _maybe(module: str) -> object | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
