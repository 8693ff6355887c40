"""HTTP request authorization and JSON errors, shared by every component's routes."""

from __future__ import annotations

import logging
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from contracts.errors import ErrorCode, ErrorDetail, SankeError, error_details
from contracts.rooms import Role
from contracts.store.outage import STORE_UNREACHABLE
from signaling.bodies import JSON_MAX_BYTES, read_body
from signaling.tokens import CALENDAR_PURPOSE, Claims, TokenService, require_role

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

TOKENS_KEY: web.AppKey[TokenService] = web.AppKey("tokens", TokenService)
# A Redis restart takes a few seconds; clients retrying sooner only add load.
STORE_RETRY_AFTER_SECONDS = 2


def bearer_token(request: web.Request) -> str | None:
    """The request's token, from ``Authorization: Bearer``. A token in the URL ends up in
    history, bookmarks, proxy logs and Referer headers, so ``?token=`` is refused with a
    401 saying where the token goes; only calendar routes read one (``calendar_link``)."""
    if _has_bearer(request):
        return request.headers["Authorization"][7:].strip() or None
    if "token" in request.query:
        raise SankeError(
            ErrorCode.token_missing,
            "send the token in the Authorization header (Bearer); only .ics calendar "
            "links take ?token=, with a calendar link's token (docs/security.md)",
            401,
        )
    return None


def _has_bearer(request: web.Request) -> bool:
    return request.headers.get("Authorization", "").lower().startswith("bearer ")


def token_in_url(request: web.Request) -> bool:
    """Whether the request's token is a ``?token=`` (no bearer header): a calendar app's."""
    return "token" in request.query and not _has_bearer(request)


def calendar_link_claims(request: web.Request, calendar: str) -> Claims:
    """The claims of a calendar route's request: from the header, or — a calendar app cannot
    send one — from ``?token=``, where only a calendar link's token for ``calendar`` is
    taken (``TokenService.verify`` refuses it anywhere else)."""
    tokens = request.app[TOKENS_KEY]
    if not token_in_url(request):
        return tokens.verify(bearer_token(request), calendar=calendar)
    token = request.query.get("token") or None
    if token is not None and token.startswith("dev."):
        raise SankeError(
            ErrorCode.token_invalid,
            "a device credential never goes in a URL: POST /api/v1/device/calendar-link "
            "gives the device's calendar link",
            401,
        )
    claims = tokens.verify(token, calendar=calendar)
    if claims.purpose != CALENDAR_PURPOSE:
        raise SankeError(
            ErrorCode.token_invalid,
            "a URL carries only a calendar link's token: POST /api/v1/schedule/calendar-links "
            "makes one",
            401,
        )
    return claims


def authorize(request: web.Request, *roles: Role, calendar: str | None = None) -> Claims:
    """The request's verified claims; raises SankeError (401/403) otherwise. ``calendar``:
    this route serves that calendar, so its calendar link's token (also from the URL) is
    accepted here."""
    if calendar is None:
        claims = request.app[TOKENS_KEY].verify(bearer_token(request))
    else:
        claims = calendar_link_claims(request, calendar)
    require_role(claims, *roles)
    return claims


def error_response(
    code: ErrorCode,
    message: str,
    status: int,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    return web.json_response(
        {"error": {"code": code.value, "message": message, **extra}},
        status=status,
        headers=headers,
    )


async def read_json_model(
    request: web.Request, model: type[M], max_bytes: int = JSON_MAX_BYTES
) -> M:
    """Read the whole body, then parse and validate it; errors point at the offending field."""
    raw = await read_body(request, max_bytes)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise ValidationFailed(exc) from None


class ValidationFailed(SankeError):
    """A request body failed validation; carries every error with its field path."""

    def __init__(self, exc: ValidationError | list[ErrorDetail]) -> None:
        self.errors = exc if isinstance(exc, list) else error_details(exc)
        first = self.errors[0] if self.errors else {"loc": "", "msg": "invalid"}
        super().__init__(
            ErrorCode.invalid_request, f"{first['loc'] or 'body'}: {first['msg']}", 422
        )


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """Render SankeError and HTTP errors as JSON bodies with a stable code."""
    try:
        response: web.StreamResponse = await handler(request)
        return response
    except ValidationFailed as exc:
        return error_response(exc.code, exc.message, exc.status, details=exc.errors)
    except SankeError as exc:
        return error_response(exc.code, exc.message, exc.status, exc.headers or None)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = ErrorCode.not_found if exc.status == 404 else ErrorCode.invalid_request
        return error_response(code, exc.reason, exc.status)
    except STORE_UNREACHABLE as exc:
        # An outage, not a bug: the same answer as /readyz, and no traceback per request.
        log.info("%s %s: the store does not answer (%s)", request.method, request.path, exc)
        return error_response(
            ErrorCode.internal,
            "the store does not answer; retry shortly",
            503,
            {"Retry-After": str(STORE_RETRY_AFTER_SECONDS)},
        )
    except Exception:
        # A bug, not bad input: logged with its traceback; the client still gets JSON.
        log.exception("%s %s failed", request.method, request.path)
        return error_response(ErrorCode.internal, "internal error", 500)
