"""The teaching records resist the tampering someone with the store (and the token secret) can do:
re-signing edited records, deleting the newest records or all of them, concurrent writers.

Tampering goes through the raw Redis client, as an attacker with store access would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis
from support.harness import SECRET, running_app
from support.processes import SANKE
from support.redis_helpers import fresh_prefix, purge_prefix

from contracts.store.redis import RedisStore
from lessons.records import RecordLog, SessionOutcome
from sanke.app import LESSON_SERVICE_KEY

pytestmark = pytest.mark.redis
KEY = "r" * 40


def outcome(i: int) -> SessionOutcome:
    return SessionOutcome(
        session_id=f"off-{i}.2026-11-02",
        offering_id=f"off-{i}",
        teacher="张老师",
        master_school="xian-shiyan",
        subject="英语",
        date="2026-11-02",
        outcome="held",
        starts_at=1_800_000_000.0 + i,
        ends_at=1_800_002_400.0 + i,
    )


def resigned(line: str, key: bytes, **body: Any) -> str:
    """The record with its body edited, re-hashed and re-signed with ``key`` (what a forger
    who knows the format and a key does)."""
    record = json.loads(line)
    record["body"].update(body)
    canonical: dict[str, Any] = {
        "seq": record["seq"],
        "at": record["at"],
        "body": record["body"],
        "prev": record["prev_hash"],
    }
    if record.get("kid") is not None:
        canonical["kid"] = record["kid"]
    text = json.dumps(canonical, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    record["hash"] = hashlib.sha256(text.encode()).hexdigest()
    record["signature"] = hmac.new(key, record["hash"].encode(), hashlib.sha256).hexdigest()
    return json.dumps(record, ensure_ascii=False)


@pytest.fixture
async def redis_log(redis_url: str) -> AsyncIterator[tuple[RecordLog, redis.Redis, str]]:
    prefix = fresh_prefix()
    store = RedisStore(redis_url, prefix=prefix)
    await store.start()
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        yield RecordLog(store, KEY), raw, prefix
    finally:
        await store.close()
        raw.close()
        purge_prefix(redis_url, prefix)


async def test_an_edit_re_signed_with_a_key_derived_from_the_token_secret_is_detected() -> None:
    """The old default records key was sha256("sanke-records:" + token secret)."""
    derived = hashlib.sha256(b"sanke-records:" + SECRET.encode()).hexdigest().encode()
    async with running_app() as h:
        records = h.app[LESSON_SERVICE_KEY].records
        await records.append(outcome(0), at=1_800_003_000.0)
        [line] = await records.raw()
        await h.store.replace_at("l:records", 0, resigned(line, derived, outcome="missed"))
        report = await records.verify()
        assert not report.ok and report.first_broken == 0, report


async def test_deleting_the_newest_record_is_detected(
    redis_log: tuple[RecordLog, redis.Redis, str],
) -> None:
    log, raw, prefix = redis_log
    for i in range(3):
        await log.append(outcome(i), at=1_800_003_000.0 + i)
    assert (await log.verify()).ok
    raw.rpop(f"{prefix}l:records")
    report = await log.verify()
    assert not report.ok and report.records == 2, report
    assert "missing" in (report.problem or ""), report


async def test_deleting_every_record_is_detected(
    redis_log: tuple[RecordLog, redis.Redis, str],
) -> None:
    log, raw, prefix = redis_log
    for i in range(2):
        await log.append(outcome(i), at=1_800_003_000.0 + i)
    raw.delete(f"{prefix}l:records")
    report = await log.verify()
    assert not report.ok and report.records == 0, report


async def test_concurrent_writers_keep_one_chain(redis_url: str) -> None:
    """Two processes (here two store connections) recording at once: one chain, none lost."""
    prefix = fresh_prefix()
    stores = [RedisStore(redis_url, prefix=prefix) for _ in range(2)]
    try:
        for store in stores:
            await store.start()
        logs = [RecordLog(store, KEY) for store in stores]

        async def write(log: RecordLog, first: int) -> None:
            for i in range(first, first + 15):
                await log.append(outcome(i), at=1_800_003_000.0 + i)

        await asyncio.gather(write(logs[0], 0), write(logs[1], 100))
        report = await logs[0].verify()
        assert report.ok and report.records == 30, report
    finally:
        for store in stores:
            await store.close()
        purge_prefix(redis_url, prefix)


def verify(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SANKE, "records", "verify", *args], env=env, capture_output=True, text=True
    )


async def test_the_command_with_an_anchor_detects_what_the_store_alone_cannot(
    redis_log: tuple[RecordLog, redis.Redis, str], redis_url: str, tmp_path: Path
) -> None:
    """Deleting every record *and* the signed head, or putting an older head back after
    deleting the newest records, leaves a store that looks consistent: the anchor (the head
    seen by the last verification, kept elsewhere) catches it."""
    log, raw, prefix = redis_log
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "SANKE_KEY_PREFIX": prefix,
        "SANKE_RECORDS_KEY": KEY,
    }
    anchor = tmp_path / "records.anchor.json"
    for i in range(2):
        await log.append(outcome(i), at=1_800_003_000.0 + i)
    old_head = raw.get(f"{prefix}kv:records:head")
    assert old_head, "the log keeps a signed head"
    await log.append(outcome(2), at=1_800_003_002.0)
    first = verify(env, "--anchor", str(anchor))
    assert first.returncode == 0, first.stdout + first.stderr
    assert anchor.exists()

    # Delete the newest record and put the head of the shorter chain back.
    raw.rpop(f"{prefix}l:records")
    raw.set(f"{prefix}kv:records:head", old_head)
    assert (await log.verify()).ok, "the store alone cannot tell"
    replayed = verify(env, "--anchor", str(anchor))
    assert replayed.returncode == 1 and "missing" in replayed.stdout, replayed.stdout

    # Delete everything, head included.
    raw.delete(f"{prefix}l:records", f"{prefix}kv:records:head")
    wiped = verify(env, "--anchor", str(anchor))
    assert wiped.returncode == 1 and "missing" in wiped.stdout, wiped.stdout
