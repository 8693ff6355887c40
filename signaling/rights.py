"""Rights that end: a live connection lasts no longer than its token, nor its subject's right.

Two things end a right while its WebSocket is open:

- the token's ``exp``: every joined connection has a timer that closes it then
  (``error`` ``token_expired``, close 4005; see signaling/connection.py);
- a revocation (a classroom device revoked by a coordinator): ``Rights.revoke`` records it in
  the store (hash ``revoked-subjects``: subject → when), appends it to the ``revocations``
  log and publishes it on the ``rights`` channel. Every signaling process closes its live
  connections of that subject (``error`` ``token_revoked``, close 4006), and a token of that
  subject issued (``iat``) up to the revocation no longer joins (checked at every join). A
  process that missed the message (its pub/sub connection dropped) catches up from the log
  on its next sweep.

A connection is held here *before* its join checks the store, so a revocation racing a join
either fails the check or finds the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.close_codes import CLOSE_REVOKED
from contracts.errors import ErrorCode, SankeError
from contracts.store import Store, Subscription
from contracts.store.outage import OutageLog
from signaling.tokens import Claims

log = logging.getLogger(__name__)

REVOKED = "h:revoked-subjects"
REVOCATION_LOG = "l:revocations"
RIGHTS_CHANNEL = "rights"


class Revocation(BaseModel):
    """A subject's right ended at ``at``: tokens issued up to then no longer count."""

    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=128)
    at: float
    reason: str = Field(default="", max_length=200)


class Holder(Protocol):
    """A live connection holding a subject's right, by a token issued at ``issued_at``."""

    issued_at: int

    async def end_right(self, code: ErrorCode, message: str, close_code: int) -> None:
        """Send an ``error`` with ``code``, close with ``close_code``, leave the room."""


def device_subject(device_id: str) -> str:
    """The subject of a classroom device's join tokens."""
    return f"device:{device_id}"


class Rights:
    def __init__(self, store: Store, sweep_seconds: float = 10.0) -> None:
        self.store = store
        self.sweep_seconds = sweep_seconds
        self._held: dict[str, set[Holder]] = {}
        self._subscription: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._ending: set[asyncio.Task[None]] = set()
        self._seen = 0

    # --- the local connections ------------------------------------------------
    def hold(self, subject: str, holder: Holder) -> None:
        self._held.setdefault(subject, set()).add(holder)

    def release(self, subject: str, holder: Holder) -> None:
        holders = self._held.get(subject)
        if holders is not None:
            holders.discard(holder)
            if not holders:
                del self._held[subject]

    # --- checks and changes ------------------------------------------------------
    async def check(self, claims: Claims) -> None:
        """Raise ``token_revoked`` (403) if the token's subject was revoked after it was issued."""
        revocation = await self._revocation(claims.sub)
        if revocation is not None and claims.iat <= revocation.at:
            raise SankeError(
                ErrorCode.token_revoked, "the right behind this token has been revoked", 403
            )

    async def revoke(self, subject: str, reason: str = "") -> Revocation:
        """End ``subject``'s right everywhere: its tokens issued until now and its live connections."""
        revocation = Revocation(subject=subject, at=time.time(), reason=reason)
        raw = revocation.model_dump_json()
        await self.store.hset(REVOKED, subject, raw)
        await self.store.append(REVOCATION_LOG, raw)
        await self.store.publish(RIGHTS_CHANNEL, raw)
        return revocation

    async def _revocation(self, subject: str) -> Revocation | None:
        raw = await self.store.hget(REVOKED, subject)
        return Revocation.model_validate_json(raw) if raw else None

    # --- every process: the channel and the log ---------------------------------
    async def start(self) -> None:
        self._seen = await self.store.length(REVOCATION_LOG)
        self._subscription = await self.store.subscribe(RIGHTS_CHANNEL)
        self._tasks = [
            asyncio.create_task(self._pump(self._subscription), name="rights-pump"),
            asyncio.create_task(self._sweep_forever(), name="rights-sweep"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._subscription is not None:
            await self._subscription.close()
            self._subscription = None

    async def _pump(self, subscription: Subscription) -> None:
        async for raw in subscription:
            try:
                await self._apply(Revocation.model_validate_json(raw))
            except ValidationError:
                log.warning("dropping a malformed revocation")

    async def sweep(self) -> None:
        """Apply the revocations logged since the last sweep (those pub/sub may have lost)."""
        if await self.store.length(REVOCATION_LOG) < self._seen:
            self._seen = 0  # the store lost the log (a Redis restarted empty): start over
        for raw in await self.store.range(REVOCATION_LOG, self._seen, -1):
            self._seen += 1
            try:
                await self._apply(Revocation.model_validate_json(raw))
            except ValidationError:
                log.warning("skipping a malformed logged revocation")

    async def _sweep_forever(self) -> None:
        outage = OutageLog(log, "revocation sweep")
        while True:
            await asyncio.sleep(self.sweep_seconds)
            try:
                await self.sweep()
                outage.ok()
            except Exception as exc:
                outage.failed(exc)

    async def _apply(self, revocation: Revocation) -> None:
        for holder in list(self._held.get(revocation.subject, ())):
            if holder.issued_at > revocation.at:
                continue  # joined with a token issued after the revocation
            # Each close in its own task: a client slow to answer the close handshake must
            # not hold up the next revocation.
            task = asyncio.create_task(self._end(holder), name="rights-end")
            self._ending.add(task)
            task.add_done_callback(self._ending.discard)

    @staticmethod
    async def _end(holder: Holder) -> None:
        try:
            await holder.end_right(
                ErrorCode.token_revoked,
                "the right behind this connection has been revoked",
                CLOSE_REVOKED,
            )
        except Exception:
            log.exception("closing a revoked connection failed")
