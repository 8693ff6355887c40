"""The audit log of coordinator actions (docs/security.md, "Audit log").

Who published, cancelled, moved, registered, revoked, minted, created or closed what: each
action that changed something is appended, as an ``AuditEntry``, to the teaching-records
hash chain (``lessons.records``), so the chain's signatures, signed head and
anchors cover it and ``sanke records verify`` checks it with everything else. Refused
requests change nothing and are not entries. No secret is ever part of an entry (a token's
subject and role, never the token; a device's id, never its credential).
"""

from __future__ import annotations

import logging
import time
from typing import Literal, Protocol

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from contracts.rooms import Role
from signaling.tokens import Claims

log = logging.getLogger(__name__)

AuditAction = Literal[
    "timetable.published",
    "session.cancelled",
    "session.moved",
    "session.tokens_minted",
    "device.registered",
    "device.revoked",
    "token.minted",
    "calendar_link.minted",
    "room.created",
    "room.closed",
    "source.registered",
    "source.deleted",
    "recording.started",
    "recording.stopped",
    "replay.published",
    "replay.unpublished",
]
AUDIT_ACTIONS: tuple[str, ...] = AuditAction.__args__  # type: ignore[attr-defined]

DetailValue = str | int | float | bool | None


class AuditEntry(BaseModel):
    """One coordinator action, as the records chain keeps it."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["audit"] = "audit"
    action: AuditAction
    actor: str = Field(max_length=128, description="the token's subject")
    actor_role: Role
    actor_school: str | None = Field(default=None, max_length=128)
    target: str = Field(max_length=200, description="what: a version, session, device, room…")
    school: str | None = Field(
        default=None, max_length=128, description="the school concerned, where there is one"
    )
    detail: dict[str, DetailValue] = Field(default_factory=dict, max_length=16)


class AuditSink(Protocol):
    async def append_audit(self, entry: AuditEntry, at: float) -> None: ...


AUDIT_KEY: web.AppKey[AuditSink] = web.AppKey("audit", AuditSink)


async def audit(
    request: web.Request,
    claims: Claims,
    action: AuditAction,
    target: str,
    *,
    school: str | None = None,
    **detail: DetailValue,
) -> None:
    """Record a coordinator action that took effect. The action is done: a failure to record
    it is logged loudly, not turned into an error that would make the client repeat it."""
    await record_audit(
        request.app.get(AUDIT_KEY),
        claims.sub,
        claims.role,
        claims.school_id,
        action,
        target,
        school=school,
        **detail,
    )


async def record_audit(
    sink: AuditSink | None,
    actor: str,
    actor_role: Role,
    actor_school: str | None,
    action: AuditAction,
    target: str,
    *,
    school: str | None = None,
    **detail: DetailValue,
) -> None:
    """``audit`` where there is no request (a teacher's WebSocket message): the actor is the
    subject of the participant's token."""
    if sink is None:
        return
    entry = AuditEntry(
        action=action,
        actor=actor[:128],
        actor_role=actor_role,
        actor_school=actor_school,
        target=target[:200],
        school=school,
        detail={k: v[:200] if isinstance(v, str) else v for k, v in detail.items()},
    )
    try:
        await sink.append_audit(entry, time.time())
    except Exception:
        log.exception("AUDIT ENTRY NOT RECORDED: %s", entry.model_dump_json())
