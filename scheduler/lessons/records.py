"""Tamper-evident teaching records (seed item 16): a hash-chained, HMAC-signed log.

Each record carries the hash of the previous one; its own hash covers its body, that link
and the id of the key that signs it, and an HMAC-SHA256 with the records key signs the
hash. Editing, removing or reordering any stored record breaks the chain at that record,
and without the key nobody can re-sign a forged chain.

Deleting the *newest* records (or all of them) leaves a chain that is intact as far as it
goes, so the log also keeps a **signed head** (how many records, the newest one's hash),
written in the same atomic step as each record; verification compares the chain with it.
Someone with the store can still delete the head too, or put back an older one: a verifier
that keeps the last head it saw somewhere else (an *anchor*, ``sanke records verify
--anchor``) detects that as well.

The records key is its own secret (``SANKE_RECORDS_KEY`` or a generated key file, never
derived from the token secret). Rotating it: the new key signs from then on, the old ones
stay in ``SANKE_RECORDS_PREVIOUS_KEYS`` to verify what they signed (docs/security.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from signaling.audit import AuditEntry
from signaling.store import Store

RECORDS_LIST = "records"
HEAD_KEY = "records:head"
GENESIS = "0" * 64
APPEND_ATTEMPTS = 100


class ClassroomAttendance(BaseModel):
    model_config = ConfigDict(extra="forbid")

    class_id: str
    school: str
    joined_at: float | None = None
    minutes_present: float = 0.0
    reconnects: int = 0
    minutes_lost: float = 0.0


class SessionOutcome(BaseModel):
    """What a session's record states."""

    model_config = ConfigDict(extra="forbid")

    session_id: str
    offering_id: str | None
    teacher: str
    master_school: str
    subject: str
    date: str
    outcome: Literal["held", "missed", "cancelled"]
    starts_at: float
    ends_at: float
    teacher_joined_at: float | None = None
    late_minutes: float | None = None
    classrooms: list[ClassroomAttendance] = Field(default_factory=list)


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0)
    at: float
    # A lesson's outcome, or a coordinator action (signaling.audit): one chain covers both.
    body: SessionOutcome | AuditEntry
    prev_hash: str
    hash: str
    signature: str
    # The signing key's id (records written before key ids existed have none).
    kid: str | None = None


class RecordsHead(BaseModel):
    """How long the chain is and what its newest record is, signed with the records key."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1)
    hash: str
    at: float
    kid: str
    signature: str


class VerifyReport(BaseModel):
    ok: bool
    records: int
    first_broken: int | None = None
    problem: str | None = None
    head: int | None = Field(default=None, description="records the signed head counts")
    anchor: int | None = Field(default=None, description="records the anchor counts")


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"sanke-records-kid:" + key).hexdigest()[:16]


class RecordKeys:
    """The current records key (signs) and earlier ones (only verify what they signed)."""

    def __init__(self, current: str | bytes, previous: Sequence[str | bytes] = ()) -> None:
        self.current = current.encode() if isinstance(current, str) else current
        self.kid = key_id(self.current)
        keys = [k.encode() if isinstance(k, str) else k for k in previous]
        self.by_kid = {key_id(k): k for k in keys} | {self.kid: self.current}

    def all(self) -> list[bytes]:
        return list(self.by_kid.values())


def digest(
    seq: int, at: float, body: SessionOutcome | AuditEntry, prev_hash: str, kid: str | None
) -> str:
    fields: dict[str, object] = {
        "seq": seq,
        "at": at,
        "body": body.model_dump(mode="json"),
        "prev": prev_hash,
    }
    if kid is not None:
        fields["kid"] = kid
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def head_text(count: int, newest_hash: str, at: float, kid: str) -> str:
    # Its own prefix: a record's signature can never pass for a head's.
    return f"sanke-records-head:{count}:{newest_hash}:{at!r}:{kid}"


def signed_head(keys: RecordKeys, count: int, newest_hash: str, at: float) -> RecordsHead:
    text = head_text(count, newest_hash, at, keys.kid)
    return RecordsHead(
        count=count, hash=newest_hash, at=at, kid=keys.kid, signature=sign(keys.current, text)
    )


class RecordLog:
    def __init__(self, store: Store, keys: RecordKeys | str) -> None:
        self.store = store
        self.keys = keys if isinstance(keys, RecordKeys) else RecordKeys(keys)

    async def append(self, body: SessionOutcome | AuditEntry, at: float) -> Record:
        """Append a record and its signed head in one atomic step; a writer that lost the race
        to another process (the list grew meanwhile) links to the new newest record instead."""
        for attempt in range(APPEND_ATTEMPTS):
            length = await self.store.length(RECORDS_LIST)
            last = await self.store.range(RECORDS_LIST, length - 1, length - 1) if length else []
            prev_hash = Record.model_validate_json(last[0]).hash if last else GENESIS
            kid = self.keys.kid
            record_hash = digest(length, at, body, prev_hash, kid)
            record = Record(
                seq=length,
                at=at,
                body=body,
                prev_hash=prev_hash,
                hash=record_hash,
                signature=sign(self.keys.current, record_hash),
                kid=kid,
            )
            head = signed_head(self.keys, length + 1, record_hash, at)
            if await self.store.append_guarded(
                RECORDS_LIST, length, record.model_dump_json(), HEAD_KEY, head.model_dump_json()
            ):
                return record
            await asyncio.sleep(0.002 * (attempt % 10))
        raise RuntimeError(f"could not append a record in {APPEND_ATTEMPTS} attempts")

    async def append_audit(self, entry: AuditEntry, at: float) -> None:
        """signaling.audit's sink: a coordinator action is a record like any other."""
        await self.append(entry, at)

    async def newest_first(self, batch: int = 500) -> AsyncIterator[str]:
        """The stored records (JSON lines) from the newest back, read ``batch`` at a time."""
        end = await self.store.length(RECORDS_LIST)
        while end > 0:
            start = max(0, end - batch)
            for line in reversed(await self.store.range(RECORDS_LIST, start, end - 1)):
                yield line
            end = start

    async def head(self) -> RecordsHead | None:
        raw = await self.store.get(HEAD_KEY)
        return RecordsHead.model_validate_json(raw) if raw else None

    async def reseal(self) -> bool:
        """After a key rotation: sign the head again with the current key (same count and
        hash, so nothing it vouches for changes). Whether it was re-signed."""
        from scheduler.lessons.records_check import head_problem

        for _ in range(APPEND_ATTEMPTS):
            head = await self.head()
            if head is None or head.kid == self.keys.kid:
                return False
            if head_problem(head, self.keys, current_only=False) is not None:
                return False  # not ours to vouch for: verification reports it
            length = await self.store.length(RECORDS_LIST)
            fresh = signed_head(self.keys, head.count, head.hash, head.at)
            if await self.store.append_guarded(
                RECORDS_LIST, length, None, HEAD_KEY, fresh.model_dump_json()
            ):
                return True
        return False

    async def raw(self) -> list[str]:
        return await self.store.range(RECORDS_LIST)

    async def verify(self, anchor: RecordsHead | None = None) -> VerifyReport:
        from scheduler.lessons.records_check import verify_lines

        head = await self.head()
        return verify_lines(await self.raw(), self.keys, head=head, anchor=anchor)
