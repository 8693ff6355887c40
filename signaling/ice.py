"""ICE servers handed to a participant, with short-lived TURN credentials.

coturn's ``use-auth-secret`` (the "TURN REST API" draft): the username is
``<expiry unix time>:<participant>`` and the password is base64(HMAC-SHA1(secret,
username)), so signaling mints credentials coturn can check without a shared database,
and a leaked one stops working at its expiry.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable

from contracts.protocol import IceServer


def turn_credential(
    secret: str, user: str, ttl_seconds: float, now: float | None = None
) -> tuple[str, str]:
    expiry = int((time.time() if now is None else now) + ttl_seconds)
    username = f"{expiry}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


def ice_servers_factory(
    urls: list[str], turn_secret: str | None, ttl_seconds: float
) -> Callable[[str], list[IceServer]]:
    stun = [u for u in urls if not u.startswith(("turn:", "turns:"))]
    turn = [u for u in urls if u.startswith(("turn:", "turns:"))]

    def for_participant(participant_id: str) -> list[IceServer]:
        servers = [IceServer(urls=stun)] if stun else []
        if turn and turn_secret:
            username, credential = turn_credential(turn_secret, participant_id, ttl_seconds)
            servers.append(IceServer(urls=turn, username=username, credential=credential))
        elif turn:
            servers.append(IceServer(urls=turn))
        return servers

    return for_participant
