"""Tamper-evident teaching records (seed item 16): a hash-chained, HMAC-signed log.

Each record carries the hash of the previous one; its own hash covers its body and that
link, and an HMAC-SHA256 with the records key signs the hash. Editing, removing or
reordering any stored record breaks the chain at that record, and without the key
nobody can re-sign a forged chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from signaling.store import Store

RECORDS_LIST = "records"
GENESIS = "0" * 64


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
    body: SessionOutcome
    prev_hash: str
    hash: str
    signature: str


class VerifyReport(BaseModel):
    ok: bool
    records: int
    first_broken: int | None = None
    problem: str | None = None


def _digest(seq: int, at: float, body: SessionOutcome, prev_hash: str) -> str:
    canonical = json.dumps(
        {"seq": seq, "at": at, "body": body.model_dump(mode="json"), "prev": prev_hash},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _sign(key: bytes, digest: str) -> str:
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


class RecordLog:
    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self.key = key.encode()

    async def append(self, body: SessionOutcome, at: float) -> Record:
        last = await self.store.range(RECORDS_LIST, -1, -1)
        if last:
            previous = Record.model_validate_json(last[0])
            seq, prev_hash = previous.seq + 1, previous.hash
        else:
            seq, prev_hash = 0, GENESIS
        digest = _digest(seq, at, body, prev_hash)
        record = Record(
            seq=seq,
            at=at,
            body=body,
            prev_hash=prev_hash,
            hash=digest,
            signature=_sign(self.key, digest),
        )
        await self.store.append(RECORDS_LIST, record.model_dump_json())
        return record

    async def raw(self) -> list[str]:
        return await self.store.range(RECORDS_LIST)

    async def verify(self) -> VerifyReport:
        return verify_lines(await self.raw(), self.key)


def verify_lines(lines: list[str], key: bytes) -> VerifyReport:
    """Check every record's link, hash and signature; report the first broken one."""
    prev_hash = GENESIS
    for index, line in enumerate(lines):
        problem = _problem(line, index, prev_hash, key)
        if isinstance(problem, str):
            return VerifyReport(ok=False, records=len(lines), first_broken=index, problem=problem)
        prev_hash = problem.hash
    return VerifyReport(ok=True, records=len(lines))


def _problem(line: str, index: int, prev_hash: str, key: bytes) -> str | Record:
    """What is wrong with this record, or the record itself when it is intact."""
    try:
        record = Record.model_validate_json(line)
    except ValidationError as exc:
        return f"unreadable: {exc.errors()[0]['msg']}"
    if record.seq != index:
        return f"sequence {record.seq} at position {index}"
    if record.prev_hash != prev_hash:
        return "does not link to the previous record"
    digest = _digest(record.seq, record.at, record.body, record.prev_hash)
    if digest != record.hash:
        return "content does not match its hash"
    if not hmac.compare_digest(_sign(key, digest), record.signature):
        return "signature is not valid for this key"
    return record
