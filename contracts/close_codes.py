"""WebSocket close codes of the signaling protocol (RFC 6455 §7.4 plus the 4000–4999
application range); docs/protocol.md lists them with what a client should do."""

from __future__ import annotations

from contracts.protocol import LeaveReason

CLOSE_JOIN_TIMEOUT = 4001
CLOSE_KICKED = 4003
CLOSE_ROOM_CLOSED = 4004
CLOSE_TOKEN_EXPIRED = 4005
CLOSE_REVOKED = 4006
CLOSE_RATE_LIMIT = 4008
CLOSE_TOO_SLOW = 4009

# Why a participant left, by the close code that ended its connection.
LEAVE_REASONS: dict[int, LeaveReason] = {
    CLOSE_KICKED: "kicked",
    CLOSE_ROOM_CLOSED: "room_closed",
    CLOSE_TOKEN_EXPIRED: "expired",
    CLOSE_REVOKED: "revoked",
}
