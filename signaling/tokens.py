"""Access tokens: JWT (HS256) carrying who may join which room, as what, and when.

``nbf``/``exp`` are the join window: a token for a lesson is valid from shortly before
the lesson opens until it closes. Every token ends: its lifetime is at most its role's
``MAX_TTL_SECONDS`` (docs/security.md), and a live connection is closed at ``exp``.

With ``crypto="gm"`` (``SANKE_CRYPTO=gm``, 国密) tokens are signed with HMAC-SM3 instead,
JWT ``alg`` ``HS-SM3`` (a private algorithm name, RFC 7515 §4.1.1), registered with PyJWT's
algorithm API. Each process accepts only its own mode's algorithm.
"""

from __future__ import annotations

import contextlib
import hmac
import math
import time
import uuid
from typing import Literal

import jwt
from jwt.algorithms import HMACAlgorithm
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.errors import ErrorCode, SankeError
from contracts.rooms import ID_PATTERN, Role
from signaling.gm import hmac_sm3

ALGORITHM = "HS256"
# HMAC-SM3: not in the JOSE registry, so a private name (docs/security.md, "国密").
GM_ALGORITHM = "HS-SM3"
# A secret shorter than the HMAC output invites brute force (RFC 7518 §3.2).
MIN_SECRET_BYTES = 32
# Allowed clock difference between the minting and the verifying host.
LEEWAY_SECONDS = 5

HOUR = 3600
# The longest a token of each role may live (exp - nbf). A room token covers a lesson day
# (a lesson's window is about an hour; a 名师课堂 or a demo a few); a coordinator or admin
# token a working day and a night: past that, mint a new one.
MAX_TTL_SECONDS: dict[Role, int] = {
    Role.teacher: 12 * HOUR,
    Role.classroom: 12 * HOUR,
    Role.viewer: 12 * HOUR,
    Role.observer: 12 * HOUR,
    Role.coordinator: 24 * HOUR,
    Role.admin: 24 * HOUR,
}
# A calendar link (an .ics subscription URL) is read by a calendar app for a whole term, and
# its token sits in a URL (history, proxy logs): so it reads one calendar and nothing else.
CALENDAR_PURPOSE: Literal["calendar"] = "calendar"
CALENDAR_LINK_TTL_SECONDS = 200 * 86400
# A replay link (the URL a <video> element plays a recording from: it cannot send a header)
# plays one recorded lesson's files and nothing else, for a few hours.
REPLAY_PURPOSE: Literal["replay"] = "replay"
REPLAY_LINK_TTL_SECONDS = 4 * HOUR
# A token may be minted ahead of its window (a lesson later in the term), not further.
MAX_NOT_BEFORE_AHEAD_SECONDS = 366 * 86400


class HmacSm3Algorithm(HMACAlgorithm):
    """HMAC-SM3 for PyJWT: PyJWT's HMAC key handling (refusing asymmetric keys as secrets),
    SM3 from ``cryptography``."""

    def __init__(self) -> None:
        super().__init__(HMACAlgorithm.SHA256)  # hash_alg unused: sign/verify below

    def sign(self, msg: bytes, key: bytes) -> bytes:
        return hmac_sm3(key, msg)

    def verify(self, msg: bytes, key: bytes, sig: bytes) -> bool:
        return hmac.compare_digest(sig, hmac_sm3(key, msg))


with contextlib.suppress(ValueError):  # already registered (a module imported twice)
    jwt.register_algorithm(GM_ALGORITHM, HmacSm3Algorithm())


def max_ttl(role: Role) -> int:
    return MAX_TTL_SECONDS[role]


class Claims(BaseModel):
    model_config = ConfigDict(extra="ignore")

    sub: str = Field(min_length=1, max_length=128)
    role: Role
    room: str | None = Field(default=None, pattern=ID_PATTERN)
    classroom_id: str | None = Field(default=None, max_length=128)
    school_id: str | None = Field(default=None, max_length=128)
    name: str = Field(default="", max_length=100)
    nbf: int
    exp: int
    iat: int
    jti: str = Field(default_factory=lambda: uuid.uuid4().hex)
    # Set on calendar links only: the token reads the calendar ``calendar`` names. On replay
    # links: the token plays the recorded lesson ``replay`` names.
    purpose: Literal["calendar", "replay"] | None = None
    calendar: str | None = Field(default=None, max_length=300)
    replay: str | None = Field(default=None, max_length=128)


class TokenService:
    def __init__(
        self,
        secret: str,
        leeway: float = LEEWAY_SECONDS,
        *,
        crypto: Literal["default", "gm"] = "default",
    ) -> None:
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"token secret must be at least {MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self.algorithm = GM_ALGORITHM if crypto == "gm" else ALGORITHM
        # Seconds a token is still accepted after ``exp`` (and before ``nbf``): the clock
        # difference between hosts. A live connection is closed at ``exp`` plus this.
        self.leeway = leeway

    def mint(
        self,
        *,
        subject: str,
        role: Role,
        room: str | None = None,
        classroom_id: str | None = None,
        school_id: str | None = None,
        name: str = "",
        not_before: float | None = None,
        expires: float | None = None,
        ttl: float = 3600,
    ) -> str:
        now = int(time.time())
        for value in (not_before, expires, ttl):
            if value is not None and not math.isfinite(value):
                raise SankeError(ErrorCode.invalid_request, "token times must be finite", 422)
        nbf = int(not_before) if not_before is not None else now
        exp = int(expires) if expires is not None else nbf + int(ttl)
        check_window(role, nbf, exp, now)
        claims = Claims(
            sub=subject,
            role=role,
            room=room,
            classroom_id=classroom_id,
            school_id=school_id,
            name=name,
            nbf=nbf,
            exp=exp,
            iat=now,
        )
        return self._sign(claims)

    def mint_calendar_link(
        self,
        *,
        subject: str,
        role: Role,
        calendar: str,
        school_id: str | None = None,
        ttl: float = CALENDAR_LINK_TTL_SECONDS,
    ) -> tuple[str, int]:
        """A token that reads only ``calendar``, for a subscription URL; and when it ends."""
        now = int(time.time())
        exp = now + int(min(ttl, CALENDAR_LINK_TTL_SECONDS))
        claims = Claims(
            sub=subject,
            role=role,
            school_id=school_id,
            nbf=now,
            exp=exp,
            iat=now,
            purpose=CALENDAR_PURPOSE,
            calendar=calendar,
        )
        return self._sign(claims), exp

    def mint_replay_link(self, claims: Claims, replay: str) -> tuple[str, int]:
        """A token that plays only ``replay``'s files, for the holder of ``claims`` (its
        subject, role and school, so access is checked again at each request), ending with
        ``claims`` or after ``REPLAY_LINK_TTL_SECONDS``, whichever comes first."""
        now = int(time.time())
        exp = min(claims.exp, now + REPLAY_LINK_TTL_SECONDS)
        link = Claims(
            sub=claims.sub,
            role=claims.role,
            school_id=claims.school_id,
            nbf=now,
            exp=max(exp, now + 1),
            iat=now,
            purpose=REPLAY_PURPOSE,
            replay=replay,
        )
        return self._sign(link), link.exp

    def _sign(self, claims: Claims) -> str:
        return jwt.encode(claims.model_dump(exclude_none=True), self._secret, self.algorithm)

    def verify(
        self, token: str | None, *, calendar: str | None = None, replay: str | None = None
    ) -> Claims:
        """The token's claims. A calendar link's token verifies only where ``calendar`` is
        the one it reads, a replay link's only where ``replay`` is the lesson it plays:
        everywhere else (a room, an API route) they are refused."""
        claims = self._decode(token)
        if claims.purpose == CALENDAR_PURPOSE and (calendar is None or claims.calendar != calendar):
            raise SankeError(
                ErrorCode.forbidden, "a calendar link's token only reads its own calendar", 403
            )
        if claims.purpose == REPLAY_PURPOSE and (replay is None or claims.replay != replay):
            raise SankeError(
                ErrorCode.forbidden, "a replay link's token only plays its own recording", 403
            )
        return claims

    def _decode(self, token: str | None) -> Claims:
        if not token:
            raise SankeError(ErrorCode.token_missing, "an access token is required", 401)
        try:
            payload = jwt.decode(
                token,
                self._secret,
                algorithms=[self.algorithm],
                leeway=self.leeway,
                options={"require": ["exp", "nbf", "sub", "role"]},
            )
        except jwt.ExpiredSignatureError:
            raise SankeError(ErrorCode.token_expired, "the access token has expired", 401) from None
        except jwt.ImmatureSignatureError:
            raise SankeError(
                ErrorCode.token_not_yet_valid, "the access token is not valid yet", 401
            ) from None
        except jwt.PyJWTError as exc:
            raise SankeError(ErrorCode.token_invalid, f"invalid access token: {exc}", 401) from None
        try:
            return Claims.model_validate(payload)
        except ValidationError as exc:
            raise SankeError(
                ErrorCode.token_invalid,
                f"access token claims are invalid: {exc.errors()[0]['msg']}",
                401,
            ) from None


def check_window(role: Role, nbf: float, exp: float, now: float) -> None:
    """A token's window must be ordered, start within a year and last at most its role's
    maximum; raises SankeError (422) naming the bound."""
    if exp <= nbf:
        raise SankeError(ErrorCode.invalid_request, "token expiry must be after its start", 422)
    if nbf < 0 or nbf > now + MAX_NOT_BEFORE_AHEAD_SECONDS:
        raise SankeError(
            ErrorCode.invalid_request,
            f"not_before must be within {MAX_NOT_BEFORE_AHEAD_SECONDS // 86400} days from now",
            422,
        )
    if exp - nbf > max_ttl(role):
        raise SankeError(
            ErrorCode.invalid_request,
            f"a {role.value} token lives at most {max_ttl(role)} seconds "
            f"({max_ttl(role) // HOUR} h); this one would live {int(exp - nbf)}",
            422,
        )


def require_role(claims: Claims, *roles: Role) -> None:
    if claims.role not in roles and claims.role is not Role.admin:
        allowed = ", ".join(r.value for r in roles)
        raise SankeError(
            ErrorCode.forbidden, f"role {claims.role.value} may not do this (needs {allowed})", 403
        )
