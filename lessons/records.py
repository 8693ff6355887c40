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

With ``SANKE_CRYPTO=gm`` (国密) new records are hashed with SM3 and signed with an SM2 key
pair instead: the verifier needs only the public key. Each record and head names its
algorithm (``alg``, absent for HMAC-SHA256) and key id, and the hash covers both, so a chain
written in one mode keeps verifying after switching to the other.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.store import Store
from signaling.audit import AuditEntry
from signaling.gm import Sm2PrivateKey, Sm2PublicKey, sm3_hex

RECORDS_LIST = "l:records"
HEAD_KEY = "kv:records:head"
GENESIS = "0" * 64
APPEND_ATTEMPTS = 100
# A record's or head's ``alg`` in gm mode; absent (None) means SHA-256 + HMAC-SHA256.
GM_ALG: Final = "sm2-sm3"
CryptoMode = Literal["default", "gm"]


def _absent(value: object) -> bool:
    return value is None


def _camera(value: object) -> bool:
    """A recording record's default track: left out of its body (and so of its hash), so the
    records written before screen shares were recorded hash as they did."""
    return value == "camera"


def _zero(value: object) -> bool:
    """A record's default zero left out of its body (and hash): older records hash as they did."""
    return value == 0


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
    # seconds of the lesson when its hardware teacher source (camera, encoder) had no picture
    teacher_source_outage_seconds: float = Field(default=0.0, ge=0, exclude_if=_zero)


class RecordedFile(BaseModel):
    """A finished recording (media/recorder.py): the file and its SHA-256, so a copy can be
    checked against the chain (``sanke records verify --recording FILE``)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["recording"] = "recording"
    room_id: str = Field(max_length=128)
    session_id: str | None = Field(default=None, max_length=128)
    participant_id: str = Field(max_length=64)
    part: int = Field(ge=1)
    track: Literal["camera", "screen"] = Field(default="camera", exclude_if=_camera)
    file: str = Field(max_length=512, description="relative to the recordings directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    started_at: float
    ended_at: float
    duration_seconds: float = Field(ge=0)


class RecordedCheckpoint(BaseModel):
    """A recording being written: the SHA-256 of its working file's first ``bytes`` bytes, so a
    part a crash cut short (left as ``<file>.partial``) can be checked against the chain."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["recording-checkpoint"] = "recording-checkpoint"
    room_id: str = Field(max_length=128)
    participant_id: str = Field(max_length=64)
    part: int = Field(ge=1)
    track: Literal["camera", "screen"] = Field(default="camera", exclude_if=_camera)
    file: str = Field(
        max_length=512, description="the part's final name; its working file: +.partial"
    )
    bytes: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class RecordingDeleted(BaseModel):
    """A finished recording deleted by the retention sweep (lessons/recording_retention.py):
    which file, what it was (its SHA-256 and size then) and why, so that its absence is
    accounted for (``sanke records verify --recording FILE``: deleted by retention)."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["recording-deleted"] = "recording-deleted"
    file: str = Field(max_length=512, description="relative to the recordings directory")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)
    modified_at: float = Field(description="its last change: when it was finished")
    reason: Literal["retention"] = "retention"
    retention_days: float = Field(gt=0)


RecordBody = SessionOutcome | AuditEntry | RecordedFile | RecordedCheckpoint | RecordingDeleted


class Record(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=0)
    at: float
    # A lesson's outcome, a coordinator action (signaling.audit) or a recording's hash: one
    # chain covers them all.
    body: RecordBody
    prev_hash: str
    hash: str
    signature: str
    # The signing key's id (records written before key ids existed have none).
    kid: str | None = None
    # How it is hashed and signed: absent for SHA-256 + HMAC-SHA256 (the default mode).
    alg: Literal["sm2-sm3"] | None = Field(default=None, exclude_if=_absent)


class RecordsHead(BaseModel):
    """How long the chain is and what its newest record is, signed with the records key."""

    model_config = ConfigDict(extra="forbid")

    count: int = Field(ge=1)
    hash: str
    at: float
    kid: str
    signature: str
    alg: Literal["sm2-sm3"] | None = Field(default=None, exclude_if=_absent)


class VerifyReport(BaseModel):
    ok: bool
    records: int
    first_broken: int | None = None
    problem: str | None = None
    head: int | None = Field(default=None, description="records the signed head counts")
    anchor: int | None = Field(default=None, description="records the anchor counts")


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"sanke-records-kid:" + key).hexdigest()[:16]


def gm_key_id(public: Sm2PublicKey) -> str:
    return sm3_hex(b"sanke-records-kid:" + bytes.fromhex(public.hex))[:16]


class RecordKeys:
    """The current records key (signs) and earlier ones (only verify what they signed).

    Default mode: ``current`` (an HMAC key) signs. Gm mode (``crypto="gm"``): ``gm_key`` (an
    SM2 private key) signs; without it the keys only verify, the current key then being the
    first of ``gm_public`` (an auditor's). HMAC keys and SM2 public keys of either mode verify
    what they signed, so switching mode keeps the chain verifiable.
    """

    def __init__(
        self,
        current: str | bytes | None,
        previous: Sequence[str | bytes] = (),
        *,
        crypto: CryptoMode = "default",
        gm_key: Sm2PrivateKey | None = None,
        gm_public: Sequence[Sm2PublicKey] = (),
    ) -> None:
        self.current = current.encode() if isinstance(current, str) else current
        keys = [k.encode() if isinstance(k, str) else k for k in previous]
        self.by_kid = {key_id(k): k for k in keys}
        if self.current is not None:
            self.by_kid[key_id(self.current)] = self.current
        publics = [*([gm_key.public_key] if gm_key else []), *gm_public]
        self.sm2_by_kid = {gm_key_id(p): p for p in publics}
        self.gm_key = gm_key
        self.alg: Literal["sm2-sm3"] | None = GM_ALG if crypto == "gm" else None
        if crypto == "gm":
            if not publics:
                raise ValueError("gm mode needs an SM2 private key or a public key")
            self.kid = gm_key_id(publics[0])
        else:
            if self.current is None:
                raise ValueError("the default mode needs a records key")
            self.kid = key_id(self.current)

    def all(self) -> list[bytes]:
        return list(self.by_kid.values())

    def knows(self, kid: str) -> bool:
        return kid in self.by_kid or kid in self.sm2_by_kid

    def sign(self, text: str) -> str:
        """Sign with the current key (SM2 in gm mode, else HMAC-SHA256)."""
        if self.alg == GM_ALG:
            if self.gm_key is None:
                raise RuntimeError("these records keys only verify (no SM2 private key)")
            return self.gm_key.sign(text.encode())
        assert self.current is not None
        return sign(self.current, text)

    def valid(self, alg: str | None, kid: str | None, text: str, signature: str) -> bool:
        """Whether ``signature`` is one of these keys' signature of ``text`` (kid None: a
        record from before key ids, any HMAC key of the ring)."""
        if alg == GM_ALG:
            public = self.sm2_by_kid.get(kid or "")
            return public is not None and public.verify(text.encode(), signature)
        if alg is not None:
            return False
        candidates = self.all() if kid is None else [self.by_kid[kid]] if kid in self.by_kid else []
        return any(hmac.compare_digest(sign(k, text), signature) for k in candidates)


def digest(
    seq: int,
    at: float,
    body: RecordBody,
    prev_hash: str,
    kid: str | None,
    alg: str | None = None,
) -> str:
    fields: dict[str, object] = {
        "seq": seq,
        "at": at,
        "body": body.model_dump(mode="json"),
        "prev": prev_hash,
    }
    if kid is not None:
        fields["kid"] = kid
    if alg is not None:
        fields["alg"] = alg
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if alg == GM_ALG:
        return sm3_hex(canonical.encode())
    return hashlib.sha256(canonical.encode()).hexdigest()


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def head_text(count: int, newest_hash: str, at: float, kid: str, alg: str | None = None) -> str:
    # Its own prefix: a record's signature can never pass for a head's.
    if alg is not None:
        return f"sanke-records-head:{alg}:{count}:{newest_hash}:{at!r}:{kid}"
    return f"sanke-records-head:{count}:{newest_hash}:{at!r}:{kid}"


def signed_head(keys: RecordKeys, count: int, newest_hash: str, at: float) -> RecordsHead:
    text = head_text(count, newest_hash, at, keys.kid, keys.alg)
    return RecordsHead(
        count=count,
        hash=newest_hash,
        at=at,
        kid=keys.kid,
        signature=keys.sign(text),
        alg=keys.alg,
    )


class RecordLog:
    def __init__(self, store: Store, keys: RecordKeys | str) -> None:
        self.store = store
        self.keys = keys if isinstance(keys, RecordKeys) else RecordKeys(keys)

    async def append(self, body: RecordBody, at: float) -> Record:
        """Append a record and its signed head in one atomic step; a writer that lost the race
        to another process (the list grew meanwhile) links to the new newest record instead."""
        for attempt in range(APPEND_ATTEMPTS):
            length = await self.store.length(RECORDS_LIST)
            last = await self.store.range(RECORDS_LIST, length - 1, length - 1) if length else []
            prev_hash = Record.model_validate_json(last[0]).hash if last else GENESIS
            kid, alg = self.keys.kid, self.keys.alg
            record_hash = digest(length, at, body, prev_hash, kid, alg)
            record = Record(
                seq=length,
                at=at,
                body=body,
                prev_hash=prev_hash,
                hash=record_hash,
                signature=self.keys.sign(record_hash),
                kid=kid,
                alg=alg,
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
        from lessons.records_check import head_problem

        for _ in range(APPEND_ATTEMPTS):
            head = await self.head()
            if head is None or (head.kid == self.keys.kid and head.alg == self.keys.alg):
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
        from lessons.records_check import verify_lines

        head = await self.head()
        return verify_lines(await self.raw(), self.keys, head=head, anchor=anchor)
