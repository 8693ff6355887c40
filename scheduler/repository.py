"""The scheduler's state in the store: the district, timetable versions, the published one.

Keys (pinned by tests/storage/test_redis_layout.py, so two releases share one Redis):

- ``kv:schedule:district``: the district document (JSON, validated when it was stored)
- ``kv:schedule:district_id``: its id on its own, so a reader need not parse the document
- ``h:schedule:timetables``: version number → ``StoredTimetable`` JSON
- ``kv:schedule:published``: the published version number
- ``l:schedule:publish_log``: one JSON line per publication (version, when)
"""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from contracts.store.base import Store
from scheduler.domain import District
from scheduler.timetable import Timetable

DISTRICT_KEY = "kv:schedule:district"
DISTRICT_ID_KEY = "kv:schedule:district_id"
TIMETABLES = "h:schedule:timetables"
PUBLISHED_KEY = "kv:schedule:published"
PUBLISH_LOG = "l:schedule:publish_log"


class VersionInfo(BaseModel):
    version: int
    created: datetime
    served: int
    demanded: int
    gap_pct: float
    published: bool


class StoredTimetable(BaseModel):
    created: datetime
    timetable: Timetable


class TimetableRepository:
    """The district document, the solved timetable versions, which one is published, and
    the log of publications."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def district(self) -> District | None:
        raw = await self.store.get(DISTRICT_KEY)
        return District.model_validate_json(raw) if raw else None

    async def put_district(self, district: District) -> None:
        await self.put_district_json(district.model_dump_json(), district.id)

    async def district_json(self) -> str | None:
        """The stored district document (validated when it was stored)."""
        return await self.store.get(DISTRICT_KEY)

    async def district_id(self) -> str | None:
        known = await self.store.get(DISTRICT_ID_KEY)
        if known is None and (district := await self.district()) is not None:
            known = district.id  # stored before the id was kept on its own
            await self.store.set(DISTRICT_ID_KEY, known)
        return known

    async def put_district_json(self, document: str, district_id: str) -> None:
        """Store a district document that ``district_edits.apply`` produced (validated)."""
        await self.store.set(DISTRICT_KEY, document)
        await self.store.set(DISTRICT_ID_KEY, district_id)

    async def add(self, timetable: Timetable) -> int:
        """Store ``timetable`` as a new version; its number.

        Two solves can finish at once (two jobs, two replicas): both would read the same
        highest version, so the number is claimed with ``hsetnx`` and a taken one moves on to
        the next, instead of one timetable overwriting the other.
        """
        existing = await self.store.hgetall(TIMETABLES)
        version = max((int(v) for v in existing), default=0) + 1
        created = datetime.now(UTC)
        while True:
            stored = StoredTimetable(
                created=created, timetable=timetable.model_copy(update={"version": version})
            )
            if await self.store.hsetnx(TIMETABLES, str(version), stored.model_dump_json()):
                return version
            version += 1  # taken since we read: each retry means another solve got a number

    async def get(self, version: int) -> StoredTimetable | None:
        raw = await self.store.hget(TIMETABLES, str(version))
        return StoredTimetable.model_validate_json(raw) if raw else None

    async def published_version(self) -> int | None:
        raw = await self.store.get(PUBLISHED_KEY)
        return int(raw) if raw else None

    async def publish(self, version: int) -> None:
        await self.store.set(PUBLISHED_KEY, str(version))
        await self.store.append(
            PUBLISH_LOG, f'{{"version": {version}, "at": "{datetime.now(UTC).isoformat()}"}}'
        )

    async def versions(self) -> list[VersionInfo]:
        published = await self.published_version()
        out = []
        for key, raw in (await self.store.hgetall(TIMETABLES)).items():
            st = StoredTimetable.model_validate_json(raw)
            s = st.timetable.stats
            out.append(
                VersionInfo(
                    version=int(key), created=st.created, served=s.served, demanded=s.demanded,
                    gap_pct=s.gap_pct, published=int(key) == published,
                )
            )  # fmt: skip
        return sorted(out, key=lambda v: v.version)
