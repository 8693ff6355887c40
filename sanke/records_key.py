"""The records key: a secret of its own, never derived from the token secret.

Where it comes from, in order: ``SANKE_RECORDS_KEY``; the file ``SANKE_RECORDS_KEY_FILE``
(generated once, mode 0600, when missing); for ``sanke serve`` on one machine the default
file ``~/.local/share/sanke/records.key`` (``$XDG_DATA_HOME``); in dev/demo mode without
either, a key for this run only. Distributed processes must share one key, so with
``REDIS_URL`` outside dev/demo it has to be given. Earlier keys
(``SANKE_RECORDS_PREVIOUS_KEYS``) only verify what they signed (docs/security.md, rotation).
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from sanke.settings import Settings
from scheduler.lessons.records import RecordKeys

log = logging.getLogger(__name__)

MIN_KEY_CHARS = 32


def default_key_file() -> Path:
    base = os.environ.get("XDG_DATA_HOME", "") or str(Path.home() / ".local" / "share")
    return Path(base) / "sanke" / "records.key"


def read_key_file(path: Path) -> str:
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_KEY_CHARS:
        raise SystemExit(f"the records key in {path} is shorter than {MIN_KEY_CHARS} characters")
    return key


def read_or_create_key_file(path: Path) -> str:
    """The key in ``path``; a new random one written there (0600, never overwritten) if none."""
    with contextlib.suppress(FileExistsError):
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(secrets.token_hex(32) + "\n")
        log.warning("generated a new teaching-records key in %s: back it up", path)
    return read_key_file(path)


def current_key(settings: Settings, *, create: bool) -> str | None:
    """The signing key; ``create=False`` (verifying) never generates one."""
    if settings.records_key:
        return settings.records_key
    if settings.records_key_file:
        path = Path(settings.records_key_file)
        if create:
            return read_or_create_key_file(path)
        return read_key_file(path) if path.exists() else None
    default = default_key_file()
    if not create:
        return read_key_file(default) if default.exists() else None
    if settings.demo or settings.dev:
        log.warning(
            "teaching records are signed with a key for this run only: "
            "set SANKE_RECORDS_KEY or SANKE_RECORDS_KEY_FILE to verify them later"
        )
        return secrets.token_hex(32)
    if settings.redis_url:
        raise SystemExit(
            "refusing to start: every process signs teaching records with one key. "
            "Set SANKE_RECORDS_KEY (a random string of at least 32 characters, e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`, the same for "
            "every process) or SANKE_RECORDS_KEY_FILE on a shared secret volume."
        )
    return read_or_create_key_file(default)


def _ring(settings: Settings, key: str) -> RecordKeys:
    for old in settings.records_previous_keys:
        if len(old) < MIN_KEY_CHARS:
            raise SystemExit(f"a previous records key is shorter than {MIN_KEY_CHARS} characters")
    return RecordKeys(key, settings.records_previous_keys)


def records_keys(settings: Settings) -> RecordKeys:
    """The keys a server signs and verifies with (a key may be generated, see above)."""
    key = current_key(settings, create=True)
    assert key is not None
    return _ring(settings, key)


def verifying_keys(settings: Settings, key: str | None = None) -> RecordKeys | None:
    """The keys ``sanke records verify`` checks with (``key`` given on the command line wins);
    None when no key is configured."""
    key = key or current_key(settings, create=False)
    return _ring(settings, key) if key else None
