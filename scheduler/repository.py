"""The scheduler's state in the store: the district, timetable versions, the published one.

Keys (pinned by tests/storage/test_redis_layout.py, so two releases share one Redis):

- ``kv:schedule:district``: the district document (JSON, validated when it was stored)
- ``kv:schedule:district_id``: its id on its own, so a reader need not parse the document
- ``h:schedule:timetables``: version number → ``StoredTimetable`` JSON
- ``kv:schedule:published``: the published version number
- ``l:schedule:publish_log``: one JSON line per publication (version, when)

Since solve jobs live in the store (``scheduler/jobs.py``):

- ``h:schedule:timetables`` values written since are ``z1:`` + base64 of the zlib-compressed
  ``StoredTimetable`` JSON (a province's timetable: ~10x smaller); plain JSON values of
  earlier releases are still read. Only the newest ``keep_versions`` versions are kept (and
  always the published one): the setting ``schedule_keep_versions``.
- ``h:schedule:timetable_info``: version number → ``VersionInfo`` JSON, so listing the
  versions decompresses no timetable (versions stored before it are read whole, once)
- ``kv:schedule:job:{id}``: a solve job's ``JobStatus`` JSON; kept for the retention once the
  job ended (``schedule_job_retention_seconds``)
- ``kv:schedule:job:{id}:lease``: the owning replica's node id, with a TTL its heartbeat renews
- ``kv:schedule:job:{id}:cancel``: set by any replica to ask the owner to stop the job
- ``kv:schedule:running_job``: the id of the district's running job (``SET NX``, TTL renewed
  with the lease): one solve per district at a time
"""

from __future__ import annotations

import asyncio
import base64
import zlib
from datetime import UTC, datetime

from pydantic import BaseModel

from contracts.store.base import Store
from scheduler.domain import District
from scheduler.gc_pause import gc_paused
from scheduler.timetable import Timetable

DISTRICT_KEY = "kv:schedule:district"
DISTRICT_ID_KEY = "kv:schedule:district_id"
TIMETABLES = "h:schedule:timetables"
PUBLISHED_KEY = "kv:schedule:published"
PUBLISH_LOG = "l:schedule:publish_log"
TIMETABLE_INFO = "h:schedule:timetable_info"
RUNNING_JOB_KEY = "kv:schedule:running_job"
COMPRESSED = "z1:"


def job_key(job_id: str) -> str:
    return f"kv:schedule:job:{job_id}"


def job_lease_key(job_id: str) -> str:
    return f"kv:schedule:job:{job_id}:lease"


def job_cancel_key(job_id: str) -> str:
    return f"kv:schedule:job:{job_id}:cancel"


def pack(document: str) -> str:
    """A stored timetable's JSON, compressed (level 6: most of level 9's ratio, far faster)."""
    return COMPRESSED + base64.b64encode(zlib.compress(document.encode(), 6)).decode("ascii")


def unpack(value: str) -> str:
    if not value.startswith(COMPRESSED):
        return value  # written by a release before compression
    return zlib.decompress(base64.b64decode(value[len(COMPRESSED) :])).decode()


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

    def __init__(self, store: Store, keep_versions: int = 50) -> None:
        self.store = store
        self.keep_versions = keep_versions

    async def district(self) -> District | None:
        raw = await self.store.get(DISTRICT_KEY)
        if not raw:
            return None
        with gc_paused():  # a province is millions of objects (scheduler.gc_pause)
            return District.model_validate_json(raw)

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
            if await self.store.hsetnx(TIMETABLES, str(version), pack(stored.model_dump_json())):
                await self.store.hset(
                    TIMETABLE_INFO, str(version), _info(version, stored).model_dump_json()
                )
                await self._prune(set(existing) | {str(version)})
                return version
            version += 1  # taken since we read: each retry means another solve got a number

    async def replace_unmet(self, version: int, timetable: Timetable) -> bool:
        """Store ``timetable``'s unmet demand (explained after the result, scheduler/jobs.py)
        in version ``version``, which holds the same assignments; False if it is gone."""
        raw = await self.store.hget(TIMETABLE_INFO, str(version))
        if raw is None:
            return False  # pruned meanwhile (50 newer versions): nothing to update
        created = VersionInfo.model_validate_json(raw).created
        stored = StoredTimetable(
            created=created, timetable=timetable.model_copy(update={"version": version})
        )
        # A province's timetable is tens of MB of JSON: serialised off the event loop.
        packed = await asyncio.to_thread(lambda: pack(stored.model_dump_json()))
        await self.store.hset(TIMETABLES, str(version), packed)
        return True

    async def _prune(self, versions: set[str]) -> None:
        """Keep the newest ``keep_versions`` and the published one."""
        published = await self.published_version()
        newest = sorted((int(v) for v in versions), reverse=True)
        for old in newest[self.keep_versions :]:
            if old != published:
                await self.store.hdel(TIMETABLES, str(old))
                await self.store.hdel(TIMETABLE_INFO, str(old))

    async def get(self, version: int) -> StoredTimetable | None:
        raw = await self.store.hget(TIMETABLES, str(version))
        return StoredTimetable.model_validate_json(unpack(raw)) if raw else None

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
        infos = {k: VersionInfo.model_validate_json(v)
                 for k, v in (await self.store.hgetall(TIMETABLE_INFO)).items()}  # fmt: skip
        out = []
        for key in await self.store.hkeys(TIMETABLES):
            info = infos.get(key)
            if info is None:  # stored before the summaries were kept: read it once, keep one
                stored = await self.get(int(key))
                if stored is None:
                    continue
                info = _info(int(key), stored)
                await self.store.hset(TIMETABLE_INFO, key, info.model_dump_json())
            out.append(info.model_copy(update={"published": int(key) == published}))
        return sorted(out, key=lambda v: v.version)


def _info(version: int, stored: StoredTimetable) -> VersionInfo:
    s = stored.timetable.stats
    return VersionInfo(
        version=version, created=stored.created, served=s.served, demanded=s.demanded,
        gap_pct=s.gap_pct, published=False,
    )  # fmt: skip
