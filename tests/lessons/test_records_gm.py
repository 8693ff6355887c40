"""国密 teaching records (SANKE_CRYPTO=gm): SM3 hashes, SM2 signatures, verifiable with the
public key alone, and a chain that survives switching mode in either direction."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.records import outcome

from contracts.store import Store
from lessons.records import (
    GM_ALG,
    HEAD_KEY,
    RECORDS_LIST,
    RecordKeys,
    RecordLog,
    gm_key_id,
)
from lessons.records_check import verify_lines
from sanke.cli import main
from sanke.records_key import records_keys, sm2_key, verifying_keys
from sanke.settings import Settings
from signaling.gm import Sm2PrivateKey, sm3_hex

HMAC_KEY = "h" * 40
SECRET = "t" * 40


async def append(log: RecordLog, start: int, n: int) -> None:
    for i in range(start, start + n):
        await log.append(outcome(i), at=1_800_003_000.0 + i)


def gm_keys(key: Sm2PrivateKey, hmac_key: str | None = None) -> RecordKeys:
    return RecordKeys(hmac_key, crypto="gm", gm_key=key)


async def test_gm_records_are_sm3_hashed_sm2_signed_and_verify_with_the_public_key_only(
    store: Store,
) -> None:
    key = Sm2PrivateKey.generate()
    log = RecordLog(store, gm_keys(key))
    await append(log, 0, 3)
    lines = await log.raw()
    first = json.loads(lines[0])
    assert first["alg"] == GM_ALG and first["kid"] == gm_key_id(key.public_key)
    assert len(first["signature"]) == 128  # r ‖ s
    head = await log.head()
    assert head is not None and head.alg == GM_ALG and head.count == 3
    auditor = RecordKeys(None, crypto="gm", gm_public=[key.public_key])
    with pytest.raises(RuntimeError):
        auditor.sign("anything")  # the auditor cannot forge
    report = await RecordLog(store, auditor).verify()
    assert report.ok and report.records == 3 and report.head == 3
    # Someone else's SM2 key does not verify it.
    stranger = RecordKeys(None, crypto="gm", gm_public=[Sm2PrivateKey.generate().public_key])
    assert not verify_lines(lines, stranger, head=head).ok


async def test_tampering_with_a_gm_chain_is_detected(store: Store) -> None:
    key = Sm2PrivateKey.generate()
    log = RecordLog(store, gm_keys(key))
    await append(log, 0, 3)
    lines = await log.raw()
    head = await log.head()
    auditor = RecordKeys(None, crypto="gm", gm_public=[key.public_key])

    edited = json.loads(lines[1])
    edited["body"]["outcome"] = "missed"
    report = verify_lines([lines[0], json.dumps(edited), lines[2]], auditor, head=head)
    assert not report.ok and report.first_broken == 1

    # Re-hashed with SM3 and re-signed with another SM2 key: the signature gives it away.
    forger = Sm2PrivateKey.generate()
    forged = json.loads(lines[1])
    forged["kid"] = gm_key_id(key.public_key)
    forged["signature"] = forger.sign(forged["hash"].encode())
    report = verify_lines([lines[0], json.dumps(forged), lines[2]], auditor, head=head)
    assert not report.ok and report.first_broken == 1 and "signature" in (report.problem or "")

    # Relabelled as an HMAC record: the hash covers alg.
    relabelled = json.loads(lines[0])
    del relabelled["alg"]
    report = verify_lines([json.dumps(relabelled), *lines[1:]], auditor, head=head)
    assert not report.ok and report.first_broken == 0

    # The newest record deleted: the SM2-signed head counts 3.
    report = verify_lines(lines[:2], auditor, head=head)
    assert not report.ok and "missing" in (report.problem or "")


async def test_a_default_chain_verifies_after_switching_to_gm_and_back(store: Store) -> None:
    key = Sm2PrivateKey.generate()
    await append(RecordLog(store, RecordKeys(HMAC_KEY)), 0, 2)  # default mode

    gm = RecordLog(store, gm_keys(key, HMAC_KEY))  # switched: the HMAC key still verifies
    assert await gm.reseal()  # the head is now SM2-signed
    head = await gm.head()
    assert head is not None and head.alg == GM_ALG and head.count == 2
    await append(gm, 2, 2)
    assert (await gm.verify()).ok

    back = RecordLog(store, RecordKeys(HMAC_KEY, gm_public=[key.public_key]))  # and back
    assert await back.reseal()
    await append(back, 4, 1)
    report = await back.verify()
    assert report.ok and report.records == 5
    algs = [json.loads(line).get("alg") for line in await back.raw()]
    assert algs == [None, None, GM_ALG, GM_ALG, None]
    # Without the SM2 public key the gm records cannot be checked.
    alone = await RecordLog(store, RecordKeys(HMAC_KEY)).verify()
    assert not alone.ok and alone.first_broken == 2


async def test_default_mode_records_are_stored_as_before(store: Store) -> None:
    log = RecordLog(store, RecordKeys(HMAC_KEY))
    await append(log, 0, 1)
    record = json.loads((await store.range(RECORDS_LIST))[0])
    head = json.loads(await store.get(HEAD_KEY) or "{}")
    assert "alg" not in record and "alg" not in head
    assert len(record["hash"]) == 64 and record["hash"] != sm3_hex(b"")


def test_gm_key_is_generated_once_private_and_distributed_processes_need_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    settings = Settings(token_secret=SECRET, redis_url=None, crypto="gm")
    first = records_keys(settings)
    path = tmp_path / "sanke" / "records-sm2.key"
    assert path.stat().st_mode & 0o077 == 0
    assert first.alg == GM_ALG and first.current is None  # no HMAC key generated in gm mode
    assert records_keys(settings).kid == first.kid  # the same key after a restart
    # Distributed processes must share one key: none is generated for them.
    path.unlink()
    with pytest.raises(SystemExit):
        records_keys(Settings(token_secret=SECRET, crypto="gm", redis_url="redis://x"))
    assert not path.exists()
    # Back in the default mode, the SM2 key file's public key still verifies what it signed.
    again = records_keys(Settings(token_secret=SECRET, redis_url=None, crypto="gm"))
    default = records_keys(Settings(token_secret=SECRET, redis_url=None, records_key=HMAC_KEY))
    assert default.alg is None and again.kid in default.sm2_by_kid


def test_keygen_and_verify_from_a_file_with_only_the_public_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from contracts.store import MemoryStore

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    key_file = tmp_path / "gm" / "records-sm2.key"
    assert main(["records", "keygen", "--gm", "--out", str(key_file)]) == 0
    out = capsys.readouterr().out
    public = next(line.split(": ")[-1] for line in out.splitlines() if "public key" in line)
    assert key_file.stat().st_mode & 0o077 == 0
    with pytest.raises(SystemExit):
        main(["records", "keygen", "--gm", "--out", str(key_file)])  # never overwritten
    key = sm2_key(Settings(token_secret=SECRET, records_sm2_key_file=str(key_file)), create=False)
    assert key is not None and str(key.public_key) == public

    async def write() -> tuple[list[str], str]:
        log = RecordLog(MemoryStore(), gm_keys(key))
        await append(log, 0, 2)
        head = await log.head()
        assert head is not None
        return await log.raw(), head.model_dump_json()

    lines, head = asyncio.run(write())
    export, head_file = tmp_path / "export.jsonl", tmp_path / "head.json"
    export.write_text("\n".join(lines) + "\n")
    head_file.write_text(head)
    monkeypatch.delenv("SANKE_RECORDS_SM2_KEY_FILE", raising=False)
    args = ["records", "verify", "--file", str(export), "--head", str(head_file)]
    assert main([*args, "--public-key", public]) == 0
    assert "ok: 2 records" in capsys.readouterr().out
    other = str(Sm2PrivateKey.generate().public_key)
    assert main([*args, "--public-key", other]) == 1
    verifying = verifying_keys(
        Settings(token_secret=SECRET, redis_url=None, crypto="gm"), None, [public]
    )
    assert verifying is not None and verifying.gm_key is None
