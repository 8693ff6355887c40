"""``GET /api/v1/audit``: the coordinator actions of the records chain, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.rooms import Role
from lessons.context import lessons_context
from lessons.records import Record
from lessons.sessions import SHANGHAI
from signaling.audit import AuditAction, AuditEntry
from signaling.http_auth import ValidationFailed, authorize
from signaling.openapi import documented

MAX_LIMIT = 1000
# Records are appended in time order by processes whose clocks may differ this much.
CLOCK_SKEW_SECONDS = 60


class AuditQuery(BaseModel):
    """The query string of ``GET /api/v1/audit``."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = Field(default=None, description="from (ISO 8601)")
    until: datetime | None = Field(default=None, description="before (ISO 8601)")
    action: AuditAction | None = None
    actor: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    target: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    school: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)

    @field_validator("since", "until")
    @classmethod
    def _shanghai(cls, value: datetime | None) -> datetime | None:
        """A time without a zone is Asia/Shanghai, as everywhere in the API."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=SHANGHAI)
        return value


class AuditRecord(BaseModel):
    seq: int = Field(description="position in the records chain")
    at: float
    hash: str = Field(description="the record's hash (GET /api/v1/records/verify checks it)")
    entry: AuditEntry


class AuditList(BaseModel):
    entries: list[AuditRecord]
    more: bool = Field(description="more entries match beyond limit (ask with until=)")
    unreadable: int = Field(
        default=0, description="stored records that did not parse (verify the chain)"
    )


def _matches(entry: AuditEntry, at: float, q: AuditQuery, scope: str | None) -> bool:
    if scope is not None and scope not in (entry.school, entry.actor_school):
        return False
    if q.since is not None and at < q.since.timestamp():
        return False
    if q.until is not None and at >= q.until.timestamp():
        return False
    return all(
        want is None or want == have
        for want, have in (
            (q.action, entry.action),
            (q.actor, entry.actor),
            (q.target, entry.target),
            (q.school, entry.school),
        )
    )


@documented(
    summary="Coordinator actions (who published, cancelled, moved, registered, revoked or "
    "minted what), newest first; a school coordinator sees its school's",
    reply=AuditList,
    tag="records",
)
async def audit_log(request: web.Request) -> web.Response:
    claims = authorize(request, Role.coordinator)
    try:
        query = AuditQuery.model_validate(dict(request.query))
    except ValidationError as exc:
        raise ValidationFailed(exc) from None
    scope = claims.school_id if claims.role is not Role.admin else None
    found: list[AuditRecord] = []
    more, unreadable = False, 0
    async for line in lessons_context(request).records.newest_first():
        try:
            record = Record.model_validate_json(line)
        except ValidationError:
            unreadable += 1
            continue
        if not isinstance(record.body, AuditEntry):
            continue
        if query.since is not None and record.at < query.since.timestamp() - CLOCK_SKEW_SECONDS:
            break  # appended in time order: nothing older can match
        if not _matches(record.body, record.at, query, scope):
            continue
        if len(found) == query.limit:
            more = True
            break
        found.append(AuditRecord(seq=record.seq, at=record.at, hash=record.hash, entry=record.body))
    reply = AuditList(entries=found, more=more, unreadable=unreadable)
    return web.json_response(reply.model_dump(mode="json"))


def setup_audit_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/audit", audit_log)
