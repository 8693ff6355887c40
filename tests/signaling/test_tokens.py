"""Access tokens: every way a token is accepted or refused, with its error code."""

from __future__ import annotations

import base64
import json
import time
from typing import Any

import jwt
import pytest

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import Role
from signaling.tokens import (
    ALGORITHM,
    LEEWAY_SECONDS,
    MIN_SECRET_BYTES,
    Claims,
    TokenService,
    require_role,
)

SECRET = "k" * 40
OTHER_SECRET = "o" * 40


@pytest.fixture
def tokens() -> TokenService:
    return TokenService(SECRET)


def refused(tokens: TokenService, token: str | None) -> SankeError:
    with pytest.raises(SankeError) as info:
        tokens.verify(token)
    return info.value


def raw_claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": "kiosk-7",
        "role": "classroom",
        "room": "room-1",
        "nbf": now,
        "exp": now + 600,
        "iat": now,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def signed(payload: dict[str, Any], secret: str = SECRET, algorithm: str = ALGORITHM) -> str:
    return jwt.encode(payload, secret, algorithm)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


# --- accepted ------------------------------------------------------------------


def test_valid_token_round_trips_every_claim(tokens: TokenService) -> None:
    before = int(time.time())
    token = tokens.mint(
        subject="teacher-zhang",
        role=Role.teacher,
        room="math-g3.2024:a_b-c",
        classroom_id="c-1",
        school_id="jd-1",
        name="张老师",
        ttl=120,
    )
    claims = tokens.verify(token)
    assert claims.sub == "teacher-zhang"
    assert claims.role is Role.teacher
    assert claims.room == "math-g3.2024:a_b-c"
    assert claims.classroom_id == "c-1"
    assert claims.school_id == "jd-1"
    assert claims.name == "张老师"
    assert before <= claims.nbf <= int(time.time())
    assert claims.exp == claims.nbf + 120
    assert claims.iat >= before
    assert claims.jti


def test_every_token_has_its_own_jti(tokens: TokenService) -> None:
    a = tokens.verify(tokens.mint(subject="s", role=Role.viewer, room="r"))
    b = tokens.verify(tokens.mint(subject="s", role=Role.viewer, room="r"))
    assert a.jti != b.jti


def test_optional_claims_may_be_absent(tokens: TokenService) -> None:
    claims = tokens.verify(tokens.mint(subject="coord", role=Role.coordinator))
    assert claims.room is None and claims.classroom_id is None and claims.school_id is None
    assert claims.name == ""


def test_unknown_extra_claims_are_ignored(tokens: TokenService) -> None:
    claims = tokens.verify(signed(raw_claims(aud_extra="whatever", scope=["a"])))
    assert claims.sub == "kiosk-7"


def test_explicit_window(tokens: TokenService) -> None:
    now = time.time()
    token = tokens.mint(
        subject="s", role=Role.classroom, room="r", not_before=now - 60, expires=now + 60
    )
    claims = tokens.verify(token)
    assert claims.nbf == int(now - 60)
    assert claims.exp == int(now + 60)


def test_secret_of_exactly_the_minimum_is_accepted() -> None:
    TokenService("x" * MIN_SECRET_BYTES)
    # bytes, not characters: 11 three-byte characters are 33 bytes
    TokenService("密" * 11)


# --- leeway --------------------------------------------------------------------


def test_leeway_accepts_a_token_that_just_expired(tokens: TokenService) -> None:
    now = int(time.time())
    just_expired = signed(raw_claims(nbf=now - 600, exp=now - (LEEWAY_SECONDS - 3)))
    assert tokens.verify(just_expired).sub == "kiosk-7"


def test_leeway_accepts_a_token_that_starts_in_a_moment(tokens: TokenService) -> None:
    now = int(time.time())
    almost = signed(raw_claims(nbf=now + (LEEWAY_SECONDS - 3), exp=now + 600))
    assert tokens.verify(almost).sub == "kiosk-7"


# --- refused: time window -------------------------------------------------------


def test_expired(tokens: TokenService) -> None:
    now = time.time()
    token = tokens.mint(
        subject="s",
        role=Role.classroom,
        room="r",
        not_before=now - 3600,
        expires=now - LEEWAY_SECONDS - 60,
    )
    err = refused(tokens, token)
    assert err.code is ErrorCode.token_expired
    assert err.status == 401


def test_not_yet_valid(tokens: TokenService) -> None:
    now = time.time()
    token = tokens.mint(subject="s", role=Role.classroom, room="r", not_before=now + 3600)
    err = refused(tokens, token)
    assert err.code is ErrorCode.token_not_yet_valid
    assert err.status == 401


def test_mint_refuses_an_empty_window(tokens: TokenService) -> None:
    now = time.time()
    with pytest.raises(SankeError) as info:
        tokens.mint(subject="s", role=Role.teacher, room="r", not_before=now, expires=now)
    assert info.value.code is ErrorCode.invalid_request
    with pytest.raises(SankeError):
        tokens.mint(subject="s", role=Role.teacher, room="r", not_before=now, expires=now - 10)


# --- refused: not ours / broken ------------------------------------------------


def test_wrong_secret(tokens: TokenService) -> None:
    foreign = TokenService(OTHER_SECRET).mint(subject="s", role=Role.admin)
    err = refused(tokens, foreign)
    assert err.code is ErrorCode.token_invalid
    assert err.status == 401


@pytest.mark.parametrize("token", [None, ""])
def test_missing(tokens: TokenService, token: str | None) -> None:
    err = refused(tokens, token)
    assert err.code is ErrorCode.token_missing
    assert err.status == 401


@pytest.mark.parametrize(
    "token",
    ["garbage", "a.b.c", "a.b", "....", "Bearer x", "eyJhbGciOiJIUzI1NiJ9.e30", "\u4e09\u8bfe"],
)
def test_garbage(tokens: TokenService, token: str) -> None:
    err = refused(tokens, token)
    assert err.code is ErrorCode.token_invalid
    assert err.status == 401


def test_tampered_payload(tokens: TokenService) -> None:
    header, payload, signature = tokens.mint(subject="s", role=Role.classroom, room="r").split(".")
    claims = json.loads(unb64(payload))
    claims["role"] = "admin"
    forged = ".".join([header, b64(json.dumps(claims).encode()), signature])
    assert tokens.verify(".".join([header, payload, signature])).role is Role.classroom
    err = refused(tokens, forged)
    assert err.code is ErrorCode.token_invalid


def test_tampered_signature(tokens: TokenService) -> None:
    header, payload, signature = tokens.mint(subject="s", role=Role.classroom, room="r").split(".")
    raw = bytearray(unb64(signature))
    raw[0] ^= 0x01  # flip a real bit (the last base64 character partly encodes padding)
    err = refused(tokens, ".".join([header, payload, b64(bytes(raw))]))
    assert err.code is ErrorCode.token_invalid
    err = refused(tokens, ".".join([header, payload, ""]))
    assert err.code is ErrorCode.token_invalid


def test_alg_none_is_refused(tokens: TokenService) -> None:
    unsigned = jwt.encode(raw_claims(role="admin"), None, algorithm="none")
    err = refused(tokens, unsigned)
    assert err.code is ErrorCode.token_invalid
    # also when the signature part is hand-made empty with a "none" header
    header = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
    body = b64(json.dumps(raw_claims(role="admin")).encode())
    assert refused(tokens, f"{header}.{body}.").code is ErrorCode.token_invalid


def test_other_hmac_algorithm_with_the_right_secret_is_refused() -> None:
    secret = "k" * 64  # long enough for HS512, so only the algorithm is wrong
    err = refused(TokenService(secret), signed(raw_claims(), secret, algorithm="HS512"))
    assert err.code is ErrorCode.token_invalid


@pytest.mark.parametrize("claim", ["sub", "role", "exp", "nbf", "iat"])
def test_missing_claims(tokens: TokenService, claim: str) -> None:
    payload = raw_claims()
    del payload[claim]
    err = refused(tokens, signed(payload))
    assert err.code is ErrorCode.token_invalid
    assert err.status == 401


@pytest.mark.parametrize(
    "overrides",
    [
        {"role": "superuser"},
        {"role": "Teacher"},
        {"role": None, "roles": ["admin"]},
        {"sub": ""},
        {"sub": 42},
        {"room": "has space"},
        {"room": "../etc"},
        {"exp": "tomorrow"},
        {"name": "x" * 101},
    ],
    ids=lambda o: ",".join(o),
)
def test_invalid_claims(tokens: TokenService, overrides: dict[str, Any]) -> None:
    err = refused(tokens, signed(raw_claims(**overrides)))
    assert err.code is ErrorCode.token_invalid


def test_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match=str(MIN_SECRET_BYTES)):
        TokenService("x" * (MIN_SECRET_BYTES - 1))
    with pytest.raises(ValueError):
        TokenService("")


# --- roles ---------------------------------------------------------------------


def claims_for(role: Role) -> Claims:
    now = int(time.time())
    return Claims(sub="s", role=role, room="r", nbf=now, exp=now + 60, iat=now)


@pytest.mark.parametrize("role", list(Role))
def test_admin_passes_every_role_check(role: Role) -> None:
    require_role(claims_for(Role.admin), role)


@pytest.mark.parametrize("role", list(Role))
def test_a_role_passes_its_own_check(role: Role) -> None:
    require_role(claims_for(role), role)
    require_role(claims_for(role), Role.viewer, role)


@pytest.mark.parametrize(
    ("have", "need"),
    [
        (Role.teacher, (Role.coordinator,)),
        (Role.classroom, (Role.teacher,)),
        (Role.viewer, (Role.teacher, Role.classroom)),
        (Role.observer, (Role.coordinator,)),
        (Role.coordinator, (Role.admin,)),
    ],
)
def test_other_roles_are_forbidden(have: Role, need: tuple[Role, ...]) -> None:
    with pytest.raises(SankeError) as info:
        require_role(claims_for(have), *need)
    assert info.value.code is ErrorCode.forbidden
    assert info.value.status == 403


def test_no_role_allowed_forbids_everyone_but_admin() -> None:
    with pytest.raises(SankeError):
        require_role(claims_for(Role.coordinator))
    require_role(claims_for(Role.admin))


def test_a_calendar_link_reads_its_calendar_and_nothing_else(tokens: TokenService) -> None:
    token, expires = tokens.mint_calendar_link(
        subject="c", role=Role.coordinator, calendar="schedule:teacher/t-1"
    )
    assert expires - time.time() > 150 * 86400  # a term of subscription
    claims = tokens.verify(token, calendar="schedule:teacher/t-1")
    assert claims.purpose == "calendar" and claims.role is Role.coordinator
    for elsewhere in (None, "schedule:teacher/t-2", "device:schedule"):
        with pytest.raises(SankeError) as err:
            tokens.verify(token, calendar=elsewhere)
        assert err.value.status == 403
    # an ordinary token still verifies on a calendar route (sent in a header)
    plain = tokens.mint(subject="c", role=Role.coordinator)
    assert tokens.verify(plain, calendar="schedule:teacher/t-1").purpose is None
