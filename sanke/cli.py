"""The ``sanke`` command."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from sanke.settings import Settings

if TYPE_CHECKING:
    from sanke.app import Serves  # the app's imports are heavy: only when serving

PROTOCOL_DOC = Path("docs/protocol.json")


def _settings(args: argparse.Namespace, **fixed: Any) -> Settings:
    overrides: dict[str, Any] = {}
    for name in ("host", "port", "redis_url", "demo", "dev", "token_secret", "tls_cert", "tls_key"):
        value = getattr(args, name, None)
        if value not in (None, False):
            overrides[name] = value
    overrides.update(fixed)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise SystemExit(f"invalid settings: {exc}") from None


def _configure_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # aioice logs every candidate and check at INFO: the classrooms' IP addresses, hundreds of
    # lines per connection. Only when asked for (SANKE_LOG_LEVEL=DEBUG).
    if settings.log_level.upper() != "DEBUG":
        logging.getLogger("aioice").setLevel(logging.WARNING)


def _serve(settings: Settings, serves: Serves = "all") -> int:
    from aiohttp import web

    from sanke.app import create_app

    _configure_logging(settings)
    ssl_context = None
    if settings.tls_cert is not None and settings.tls_key is not None:
        from sanke.tls import server_context

        ssl_context = server_context(settings.tls_cert, settings.tls_key)
    app = create_app(settings, serves=serves)
    if ssl_context is not None:
        from sanke.tls import watch_certificate

        watch_certificate(app, ssl_context, settings)
    hosts = ", ".join(f"[{h}]" if ":" in h else h for h in settings.host)
    scheme = "https" if ssl_context is not None else "http"
    logging.getLogger("sanke").info("serving %s on %s port %d", scheme, hosts, settings.port)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        ssl_context=ssl_context,
        print=None,
        access_log=None,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    return _serve(_settings(args))


def cmd_signaling(args: argparse.Namespace) -> int:
    settings = _settings(args, media=False)
    if not settings.redis_url:
        raise SystemExit("sanke signaling shares rooms through Redis: set REDIS_URL")
    return _serve(settings, "signaling")


def cmd_sfu(args: argparse.Namespace) -> int:
    import asyncio

    from sanke.sfu_main import run_sfu

    settings = _settings(args)
    if not settings.redis_url:
        raise SystemExit("an SFU node registers in Redis: set REDIS_URL")
    _configure_logging(settings)
    asyncio.run(run_sfu(settings))
    return 0


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings = _settings(args, media=False)
    if not settings.redis_url:
        raise SystemExit("sanke scheduler shares its data through Redis: set REDIS_URL")
    return _serve(settings, "scheduler")


def cmd_token_mint(args: argparse.Namespace) -> int:
    from contracts.errors import SankeError
    from contracts.rooms import Role
    from signaling.tokens import TokenService

    settings = _settings(args)
    settings.check_secure()
    nbf = args.not_before if args.not_before is not None else time.time()
    try:
        token = TokenService(settings.token_secret, crypto=settings.crypto).mint(
            subject=args.subject,
            role=Role(args.role),
            room=args.room,
            classroom_id=args.classroom,
            school_id=args.school,
            name=args.name or "",
            not_before=nbf,
            ttl=args.ttl,
        )
    except SankeError as exc:
        raise SystemExit(f"cannot mint: {exc.message}") from None
    print(token)
    return 0


def protocol_document() -> str:
    from contracts.protocol import PROTOCOL_VERSION, client_message_adapter, server_message_adapter

    schema = {
        "title": "Sanke signaling protocol",
        "version": PROTOCOL_VERSION,
        "transport": "WebSocket at /ws, one JSON object per text frame",
        "client_to_server": client_message_adapter.json_schema(),
        "server_to_client": server_message_adapter.json_schema(mode="serialization"),
    }
    return json.dumps(schema, ensure_ascii=False, indent=2, sort_keys=True) + "\n"


def cmd_protocol_export(args: argparse.Namespace) -> int:
    path = Path(args.output)
    text = protocol_document()
    if args.check:
        current = path.read_text(encoding="utf-8") if path.exists() else ""
        if current != text:
            print(f"{path} is out of date: run `sanke protocol export`", file=sys.stderr)
            return 1
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(f"wrote {path}")
    return 0


def cmd_records_verify(args: argparse.Namespace) -> int:
    import asyncio

    from pydantic import ValidationError

    from contracts.store import open_store
    from lessons.records import RecordLog, RecordsHead, VerifyReport
    from lessons.records_check import verify_lines
    from sanke.records_key import verifying_keys

    settings = _settings(args)
    if args.public_key:
        # An auditor's run: SM2 public keys verify, the first one is the current key.
        settings = settings.model_copy(update={"crypto": "gm"})
    keys = verifying_keys(settings, args.key, args.public_key)
    if keys is None:
        raise SystemExit(
            "no records key: give --key or --public-key, or set SANKE_RECORDS_KEY, "
            "SANKE_RECORDS_KEY_FILE or (SANKE_CRYPTO=gm) SANKE_RECORDS_SM2_PUBLIC_KEYS"
        )

    def read_head(path: str | None) -> RecordsHead | None:
        if not path or not Path(path).exists():
            return None
        try:
            return RecordsHead.model_validate_json(Path(path).read_bytes())
        except ValidationError as exc:
            raise SystemExit(f"{path} is not a signed records head: {exc}") from None

    anchor = read_head(args.anchor)
    if args.anchor and anchor is None and not args.file:
        print(f"note: {args.anchor} does not exist yet; it will hold the head verified now")
    head: RecordsHead | None
    if args.file:
        lines = [
            line
            for line in Path(args.file).read_text(encoding="utf-8").splitlines()
            if line.strip()
        ]
        head = read_head(args.head)
        if head is None and anchor is None:
            print(
                "note: without --head or --anchor only the chain is checked: "
                "deleting the newest records cannot be seen in a file alone"
            )
        report: VerifyReport = verify_lines(
            lines, keys, head=head, anchor=anchor, require_head=head is not None
        )
    else:
        if not settings.redis_url:
            raise SystemExit(
                "give --file RECORDS.jsonl (from GET /api/v1/records) or set REDIS_URL"
            )

        async def from_store() -> tuple[VerifyReport, RecordsHead | None, list[str]]:
            store = await open_store(settings.redis_url, settings.key_prefix)
            try:
                log = RecordLog(store, keys)
                return await log.verify(anchor=anchor), await log.head(), await log.raw()
            finally:
                await store.close()

        report, head, lines = asyncio.run(from_store())
    if not report.ok:
        print(f"BROKEN at record {report.first_broken} of {report.records}: {report.problem}")
        return 1
    if args.anchor and head is not None:
        # The head just verified becomes the anchor the next run compares with.
        path = Path(args.anchor)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(head.model_dump_json() + "\n", encoding="utf-8")
        partial.replace(path)
    print(f"ok: {report.records} records, chain, signatures and signed head intact")
    return _check_recordings(args.recording or [], lines)


def _check_recordings(paths: list[str], lines: list[str]) -> int:
    """Each recording file against the record of its hash (the chain verified just before)."""
    from lessons.recordings import check_recording, deletion_of

    broken = 0
    for path in paths:
        if not Path(path).is_file():
            deleted = deletion_of(lines, Path(path))
            if deleted is None:
                raise SystemExit(f"{path}: no such file")
            seq, body = deleted
            print(
                f"ok: {path} was deleted by retention ({body.retention_days:g} days; record "
                f"{seq}): it was {body.bytes} bytes, SHA-256 {body.sha256}"
            )
            continue
        check = check_recording(lines, Path(path))
        if check.ok and path.endswith(".partial"):
            size = Path(path).stat().st_size
            print(
                f"ok: {path} (cut short): its first {check.covered_bytes} of {size} bytes are "
                f"the ones checkpoint record {check.record} holds"
            )
        elif check.ok:
            print(f"ok: {path} is the recording of record {check.record}")
        else:
            broken += 1
            where = f" (record {check.record})" if check.record is not None else ""
            print(f"BROKEN: {path}{where}: {check.problem}")
    return 1 if broken else 0


def cmd_records_keygen(args: argparse.Namespace) -> int:
    """Write a new records key to a file (0600, never overwriting) and say what to do next."""
    import secrets

    from lessons.records import gm_key_id, key_id
    from sanke.records_key import default_key_file, default_sm2_key_file, write_sm2_key_file

    path = Path(args.out) if args.out else default_sm2_key_file() if args.gm else None
    path = path or default_key_file()
    if path.exists():
        raise SystemExit(f"{path} exists: a key file is never overwritten (rotate: a new file)")
    if args.gm:
        key = write_sm2_key_file(path)
        print(f"wrote the SM2 private key to {path} (mode 0600): set SANKE_RECORDS_SM2_KEY_FILE")
        print(f"public key (for auditors, SANKE_RECORDS_SM2_PUBLIC_KEYS): {key.public_key}")
        print(f"key id: {gm_key_id(key.public_key)}")
        return 0
    secret = secrets.token_hex(32)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(secret + "\n")
    print(f"wrote the records key to {path} (mode 0600): set SANKE_RECORDS_KEY_FILE")
    print(f"key id: {key_id(secret.encode())}")
    return 0


def _server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", action="append", help="address to bind (repeatable)")
    parser.add_argument("--port", type=int, help="port (default 8080)")
    parser.add_argument("--redis-url", dest="redis_url", help="Redis URL (distributed mode)")
    parser.add_argument("--token-secret", dest="token_secret", help="HS256 token secret")
    parser.add_argument("--demo", action="store_true", help="load the demo district")
    parser.add_argument("--dev", action="store_true", help="development mode")
    parser.add_argument(
        "--tls-cert", dest="tls_cert", help="PEM certificate: serve HTTPS/WSS (with --tls-key)"
    )
    parser.add_argument("--tls-key", dest="tls_key", help="PEM private key of --tls-cert")


def _component_commands(sub: Any) -> None:
    """Components that add their own commands. Imported by name, not caught: a component
    whose commands fail to import is a broken install, not an optional extra."""
    from scheduler.cli import add_commands as scheduler_commands

    scheduler_commands(sub)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sanke", description="Sanke (三课): three classrooms")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="all-in-one server (signaling, SFU, scheduler, pages)")
    _server_flags(serve)
    serve.set_defaults(func=cmd_serve)

    signaling = sub.add_parser("signaling", help="a signaling process sharing rooms via Redis")
    _server_flags(signaling)
    signaling.set_defaults(func=cmd_signaling)

    sfu = sub.add_parser("sfu", help="an SFU media node registered in Redis")
    _server_flags(sfu)
    sfu.set_defaults(func=cmd_sfu)

    scheduler = sub.add_parser(
        "scheduler", help="timetable solving and lessons API (solves run in its process pool)"
    )
    _server_flags(scheduler)
    scheduler.set_defaults(func=cmd_scheduler)

    token = sub.add_parser("token", help="access tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    mint = token_sub.add_parser("mint", help="print a signed access token")
    mint.add_argument(
        "--role",
        required=True,
        choices=["teacher", "classroom", "viewer", "observer", "coordinator", "admin"],
    )
    mint.add_argument("--subject", required=True, help="who (user or device id)")
    mint.add_argument("--room", help="the room the token admits to")
    mint.add_argument("--classroom", help="classroom id")
    mint.add_argument("--school", help="school id")
    mint.add_argument("--name", help="display name")
    mint.add_argument("--not-before", dest="not_before", type=float, help="unix time (default now)")
    mint.add_argument(
        "--ttl",
        type=float,
        default=3600,
        help="seconds valid (default 3600; at most 12 h for room roles, 24 h otherwise)",
    )
    mint.add_argument("--token-secret", dest="token_secret")
    mint.add_argument("--dev", action="store_true", help="allow the development secret")
    mint.set_defaults(func=cmd_token_mint)

    protocol = sub.add_parser("protocol", help="the signaling protocol's JSON Schema")
    protocol_sub = protocol.add_subparsers(dest="protocol_command", required=True)
    export = protocol_sub.add_parser("export", help="write docs/protocol.json")
    export.add_argument("-o", "--output", default=str(PROTOCOL_DOC))
    export.add_argument("--check", action="store_true", help="fail if the file is out of date")
    export.set_defaults(func=cmd_protocol_export)

    records = sub.add_parser("records", help="tamper-evident teaching records")
    records_sub = records.add_subparsers(dest="records_command", required=True)
    verify = records_sub.add_parser("verify", help="check the hash chain and signatures")
    verify.add_argument(
        "--file", help="a JSON-lines export (GET /api/v1/records); default: the store"
    )
    verify.add_argument(
        "--key", help="records key (default: SANKE_RECORDS_KEY or SANKE_RECORDS_KEY_FILE)"
    )
    verify.add_argument(
        "--head", help="with --file: the signed head (GET /api/v1/records/head) to compare with"
    )
    verify.add_argument(
        "--anchor",
        help="a file kept apart from the store: the head this run verified is saved there and "
        "the next run checks the records still reach it (catches deleting everything)",
    )
    verify.add_argument(
        "--public-key",
        dest="public_key",
        action="append",
        help="an SM2 public key (hex) verifying gm records, repeatable, the current one first: "
        "an auditor needs no private key",
    )
    verify.add_argument("--redis-url", dest="redis_url")
    verify.add_argument("--token-secret", dest="token_secret")
    verify.add_argument(
        "--recording",
        action="append",
        metavar="FILE",
        help="a recording (MP4) to check against the SHA-256 the chain holds for it, repeatable",
    )
    verify.set_defaults(func=cmd_records_verify)
    keygen = records_sub.add_parser("keygen", help="write a new records key to a file")
    keygen.add_argument("--gm", action="store_true", help="an SM2 key pair (SANKE_CRYPTO=gm)")
    keygen.add_argument(
        "--out", help="the file (default ~/.local/share/sanke/records[-sm2].key); never overwritten"
    )
    keygen.set_defaults(func=cmd_records_keygen)

    _component_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
