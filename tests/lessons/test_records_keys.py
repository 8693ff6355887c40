"""The records key: its own secret, generated and kept when not given, rotated without losing
the ability to verify what older keys signed (docs/security.md)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from support.records import outcome

from contracts.store import MemoryStore
from lessons.records import HEAD_KEY, RecordKeys, RecordLog, signed_head
from sanke.records_key import default_key_file, records_keys, verifying_keys
from sanke.settings import Settings

OLD, NEW = "o" * 40, "n" * 40
SECRET = "t" * 40


async def filled(keys: RecordKeys, n: int, store: MemoryStore | None = None) -> RecordLog:
    log = RecordLog(store or MemoryStore(), keys)
    for i in range(n):
        await log.append(outcome(i), at=1_800_003_000.0 + i)
    return log


def test_the_key_is_generated_once_kept_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    # `sanke serve` on one machine, no key given
    settings = Settings(token_secret=SECRET, redis_url=None)
    first = records_keys(settings)
    path = default_key_file()
    assert path == tmp_path / "sanke" / "records.key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert records_keys(settings).current == first.current  # the same after a restart
    assert SECRET.encode() not in first.current
    verifying = verifying_keys(settings)
    assert verifying is not None and verifying.current == first.current


def test_a_key_file_setting_is_created_then_read(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "records.key"
    settings = Settings(token_secret=SECRET, redis_url=None, records_key_file=str(path))
    assert verifying_keys(settings) is None, "verifying never invents a key"
    keys = records_keys(settings)
    assert path.read_text().strip().encode() == keys.current
    path.write_text("short\n")
    with pytest.raises(SystemExit, match="shorter"):
        records_keys(settings)


def test_distributed_processes_refuse_to_start_without_a_shared_key() -> None:
    settings = Settings(token_secret=SECRET, redis_url="redis://127.0.0.1:6379/0")
    with pytest.raises(SystemExit, match="SANKE_RECORDS_KEY"):
        records_keys(settings)
    given = Settings(token_secret=SECRET, redis_url="redis://x", records_key=NEW)
    assert records_keys(given).current == NEW.encode()


async def test_rotation_keeps_old_records_verifiable_and_re_signs_the_head() -> None:
    store = MemoryStore()
    await filled(RecordKeys(OLD), 2, store)
    rotated = RecordLog(store, RecordKeys(NEW, [OLD]))
    stale = await rotated.verify()
    assert not stale.ok and "current key" in (stale.problem or ""), stale
    assert await rotated.reseal()
    assert not await rotated.reseal(), "once"
    await rotated.append(outcome(2), at=1_800_003_002.0)
    report = await rotated.verify()
    assert report.ok and report.records == 3 and report.head == 3, report
    kids = [json.loads(line)["kid"] for line in await rotated.raw()]
    assert kids[0] == kids[1] != kids[2]
    # Without the old key its records cannot be vouched for.
    alone = await RecordLog(store, RecordKeys(NEW)).verify()
    assert not alone.ok and alone.first_broken == 0, alone


async def test_a_leaked_old_key_cannot_vouch_for_a_shortened_chain() -> None:
    """After a rotation, someone with the old key deletes the records the new key signed and
    signs a head for the shorter chain with the old key: refused."""
    store = MemoryStore()
    await filled(RecordKeys(OLD), 2, store)
    rotated = RecordLog(store, RecordKeys(NEW, [OLD]))
    await rotated.reseal()
    await rotated.append(outcome(2), at=1_800_003_002.0)
    lines = await rotated.raw()
    store._lists["l:records"] = lines[:2]  # the attacker's edit of the store
    newest = json.loads(lines[1])
    forged = signed_head(RecordKeys(OLD), 2, newest["hash"], newest["at"])
    await store.set(HEAD_KEY, forged.model_dump_json())
    report = await rotated.verify()
    assert not report.ok and "current key" in (report.problem or ""), report


async def test_records_beyond_the_head_must_still_verify_and_a_wrong_head_is_named() -> None:
    log = await filled(RecordKeys(NEW), 3)
    head = await log.head()
    assert head is not None and head.count == 3
    other = json.loads((await log.raw())[1])
    wrong = signed_head(RecordKeys(NEW), 3, other["hash"], head.at)
    await log.store.set(HEAD_KEY, wrong.model_dump_json())
    report = await log.verify()
    assert not report.ok and report.first_broken == 3 and "names" in (report.problem or "")


async def test_an_export_with_its_head_detects_a_truncated_file(tmp_path: Path) -> None:
    import subprocess

    from support.harness import running_app
    from support.processes import SANKE

    from contracts.rooms import Role
    from sanke.app import LESSON_SERVICE_KEY

    async with running_app(records_key=NEW) as h:
        records = h.app[LESSON_SERVICE_KEY].records
        for i in range(3):
            await records.append(outcome(i), at=1_800_003_000.0 + i)
        auth = {"Authorization": f"Bearer {h.tokens.mint(subject='c', role=Role.coordinator)}"}
        export = await (await h.session.get(h.url("/api/v1/records"), headers=auth)).text()
        head = await h.session.get(h.url("/api/v1/records/head"), headers=auth)
        assert head.status == 200
        (tmp_path / "head.json").write_text(await head.text())
    lines = export.splitlines()
    (tmp_path / "all.jsonl").write_text(export)
    (tmp_path / "cut.jsonl").write_text("\n".join(lines[:2]) + "\n")

    def verify(name: str) -> subprocess.CompletedProcess[str]:
        args = ["--file", str(tmp_path / name), "--head", str(tmp_path / "head.json")]
        return subprocess.run(
            [SANKE, "records", "verify", *args, "--key", NEW], capture_output=True, text=True
        )

    assert verify("all.jsonl").returncode == 0
    cut = verify("cut.jsonl")
    assert cut.returncode == 1 and "missing" in cut.stdout, cut.stdout
