"""Error codes shared by the HTTP API and the WebSocket protocol.

A code is stable (clients switch on it); the message is for people.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from pydantic import ValidationError


class ErrorCode(StrEnum):
    bad_json = "bad_json"
    invalid_message = "invalid_message"
    unknown_type = "unknown_type"
    message_too_large = "message_too_large"
    rate_limited = "rate_limited"
    not_joined = "not_joined"
    already_joined = "already_joined"
    token_missing = "token_missing"
    token_invalid = "token_invalid"
    token_expired = "token_expired"
    token_not_yet_valid = "token_not_yet_valid"
    token_revoked = "token_revoked"
    wrong_room = "wrong_room"
    forbidden = "forbidden"
    room_not_found = "room_not_found"
    room_closed = "room_closed"
    room_full = "room_full"
    room_exists = "room_exists"
    participant_not_found = "participant_not_found"
    kicked = "kicked"
    media_error = "media_error"
    invalid_sdp = "invalid_sdp"
    media_unavailable = "media_unavailable"
    not_found = "not_found"
    invalid_request = "invalid_request"
    conflict = "conflict"
    lesson_not_open = "lesson_not_open"
    recording_unavailable = "recording_unavailable"
    hls_unavailable = "hls_unavailable"
    url_signature_invalid = "url_signature_invalid"
    url_signature_expired = "url_signature_expired"
    internal = "internal"


class SankeError(Exception):
    """An error with a stable code, raised anywhere and rendered at the boundary."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        status: int = 400,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status
        # HTTP headers of the error response (e.g. Retry-After of a 429).
        self.headers = dict(headers or {})


ErrorDetail = dict[str, str]


def error_details(exc: ValidationError) -> list[ErrorDetail]:
    """Every error of ``exc`` with its field path, as plain data (it may cross processes)."""
    return [
        {"loc": "/".join(str(p) for p in err["loc"]), "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]
