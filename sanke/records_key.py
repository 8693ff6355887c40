"""The records key: a secret of its own, never derived from the token secret.

Where it comes from, in order: ``SANKE_RECORDS_KEY``; the file ``SANKE_RECORDS_KEY_FILE``
(generated once, mode 0600, when missing); for ``sanke serve`` on one machine the default
file ``~/.local/share/sanke/records.key`` (``$XDG_DATA_HOME``); in dev/demo mode without
either, a key for this run only. Distributed processes must share one key, so with
``REDIS_URL`` outside dev/demo it has to be given. Earlier keys
(``SANKE_RECORDS_PREVIOUS_KEYS``) only verify what they signed (docs/security.md, rotation).

In gm mode (``SANKE_CRYPTO=gm``) an SM2 private key signs instead, found the same way
(``SANKE_RECORDS_SM2_KEY``, ``SANKE_RECORDS_SM2_KEY_FILE``, the default file
``records-sm2.key``); the HMAC key, if there is one, still verifies what it signed. In either
mode the SM2 public keys of ``SANKE_RECORDS_SM2_PUBLIC_KEYS`` (and of the SM2 key file, when
present) verify what they signed, so switching mode keeps the chain verifiable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from pathlib import Path

from lessons.records import RecordKeys
from sanke.settings import Settings, default_data_dir
from signaling.gm import Sm2Error, Sm2PrivateKey, Sm2PublicKey

log = logging.getLogger(__name__)

MIN_KEY_CHARS = 32


def default_key_file() -> Path:
    return default_data_dir() / "records.key"


def default_sm2_key_file() -> Path:
    return default_key_file().with_name("records-sm2.key")


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


def write_sm2_key_file(path: Path) -> Sm2PrivateKey:
    """A new SM2 private key in ``path`` (0600, never overwriting an existing file)."""
    key = Sm2PrivateKey.generate()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(key.hex() + "\n")
    return key


def read_sm2_key(text: str, where: str) -> Sm2PrivateKey:
    try:
        return Sm2PrivateKey(text)
    except Sm2Error as exc:
        raise SystemExit(f"the SM2 records key in {where} is not usable: {exc}") from None


def sm2_key(settings: Settings, *, create: bool) -> Sm2PrivateKey | None:
    """The SM2 records private key; ``create`` (a gm-mode server) may generate one."""
    if settings.records_sm2_key:
        return read_sm2_key(settings.records_sm2_key, "SANKE_RECORDS_SM2_KEY")
    given = settings.records_sm2_key_file
    path = Path(given) if given else default_sm2_key_file()
    if path.exists():
        return read_sm2_key(path.read_text(encoding="utf-8"), str(path))
    if not create:
        return None
    if not given and (settings.demo or settings.dev):
        log.warning("teaching records are signed with an SM2 key for this run only")
        return Sm2PrivateKey.generate()
    if not given and settings.redis_url:
        raise SystemExit(
            "refusing to start: every process signs teaching records with one SM2 key. "
            "Create one with `sanke records keygen --gm --out FILE` and set "
            "SANKE_RECORDS_SM2_KEY_FILE (a shared secret volume) or SANKE_RECORDS_SM2_KEY."
        )
    key = write_sm2_key_file(path)
    log.warning("generated a new SM2 teaching-records key in %s: back it up", path)
    return key


def sm2_public_keys(settings: Settings) -> list[Sm2PublicKey]:
    try:
        return [Sm2PublicKey(text) for text in settings.records_sm2_public_keys]
    except Sm2Error as exc:
        raise SystemExit(f"SANKE_RECORDS_SM2_PUBLIC_KEYS: {exc}") from None


def _ring(
    settings: Settings,
    key: str | None,
    gm_key: Sm2PrivateKey | None = None,
    gm_public: list[Sm2PublicKey] | None = None,
) -> RecordKeys:
    for old in settings.records_previous_keys:
        if len(old) < MIN_KEY_CHARS:
            raise SystemExit(f"a previous records key is shorter than {MIN_KEY_CHARS} characters")
    try:
        return RecordKeys(
            key,
            settings.records_previous_keys,
            crypto=settings.crypto,
            gm_key=gm_key,
            gm_public=gm_public if gm_public is not None else sm2_public_keys(settings),
        )
    except ValueError as exc:
        raise SystemExit(f"no records key: {exc}") from None


def records_keys(settings: Settings) -> RecordKeys:
    """The keys a server signs and verifies with (a key may be generated, see above)."""
    if settings.crypto == "gm":
        # The HMAC key only verifies what it signed before the switch: never generated.
        return _ring(settings, current_key(settings, create=False), sm2_key(settings, create=True))
    key = current_key(settings, create=True)
    assert key is not None
    return _ring(settings, key, sm2_key(settings, create=False))


def verifying_keys(
    settings: Settings, key: str | None = None, public_keys: list[str] | None = None
) -> RecordKeys | None:
    """The keys ``sanke records verify`` checks with (``key`` and ``public_keys`` given on the
    command line win; in gm mode the first public key is the current one, so an auditor
    needs no private key); None when no key is configured."""
    key = key or current_key(settings, create=False)
    try:
        publics = [Sm2PublicKey(text) for text in public_keys or ()]
    except Sm2Error as exc:
        raise SystemExit(f"--public-key: {exc}") from None
    gm_key = sm2_key(settings, create=False) if not publics else None
    publics += sm2_public_keys(settings)
    if not key and gm_key is None and not publics:
        return None
    if settings.crypto != "gm" and not key:
        return None
    return _ring(settings, key, gm_key, publics)
