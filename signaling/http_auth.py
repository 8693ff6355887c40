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
from signaling.tokens import Claims, TokenService, require_role

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

TOKENS_KEY: web.AppKey[TokenService] = web.AppKey("tokens", TokenService)
# A Redis restart takes a few seconds; clients retrying sooner only add load.
STORE_RETRY_AFTER_SECONDS = 2


def bearer_token(request: web.Request, *, from_url: bool = False) -> str | None:
    """The request's token, from ``Authorization: Bearer``. A token in the URL ends up in
    history, bookmarks, proxy logs and Referer headers, so ``?token=`` counts only where
    the client cannot send a header (``from_url``: .ics calendar subscriptions); elsewhere
    it gets a 401 saying where the token goes."""
    header = request.headers.get("Authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None
    if "token" in request.query:
        if from_url:
            return request.query.get("token") or None
        raise SankeError(
            ErrorCode.token_missing,
            "send the token in the Authorization header (Bearer); only .ics calendar "
            "links take ?token=",
            401,
        )
    return None


def authorize(request: web.Request, *roles: Role, from_url: bool = False) -> Claims:
    """The request's verified claims; raises SankeError (401/403) otherwise."""
    claims = request.app[TOKENS_KEY].verify(bearer_token(request, from_url=from_url))
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
