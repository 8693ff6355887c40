"""HTTP request authorization and JSON errors, shared by every component's routes."""

from __future__ import annotations

from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from signaling.errors import ErrorCode, SankeError
from signaling.models import Role
from signaling.tokens import Claims, TokenService, require_role

M = TypeVar("M", bound=BaseModel)

TOKENS_KEY: web.AppKey[TokenService] = web.AppKey("tokens", TokenService)


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


async def read_json_model(request: web.Request, model: type[M], max_bytes: int = 1 << 20) -> M:
    """Parse and validate a JSON body; errors point at the offending field."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise SankeError(ErrorCode.invalid_request, f"body larger than {max_bytes} bytes", 413)
    raw = bytearray()
    # read(n) returns what has arrived so far, not n bytes: loop until the end.
    while chunk := await request.content.read(64 * 1024):
        raw += chunk
        if len(raw) > max_bytes:
            raise SankeError(ErrorCode.invalid_request, f"body larger than {max_bytes} bytes", 413)
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        raise ValidationFailed(exc) from None


class ValidationFailed(SankeError):
    """A request body failed validation; carries every error with its field path."""

    def __init__(self, exc: ValidationError) -> None:
        self.errors = [
            {"loc": "/".join(str(p) for p in err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
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
