"""Rate limits: per connection for WebSocket messages (a token bucket in the process), per
caller for the HTTP actions that hand out rights — minting tokens, registering devices —
(a fixed one-minute window counted in the store, so every process shares one budget).

Past its budget a caller gets 429 ``rate_limited`` with ``Retry-After`` (seconds to the next
window) and the request changes nothing.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from aiohttp import web

from contracts.errors import ErrorCode, SankeError
from contracts.store import Store

WINDOW_SECONDS = 60


class TokenBucket:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


class WindowLimit:
    """At most ``per_minute`` actions per caller and clock minute, counted in the store."""

    def __init__(self, store: Store, action: str, per_minute: int) -> None:
        self.store = store
        self.action = action
        self.per_minute = per_minute

    async def take(self, caller: str) -> None:
        """Count one action of ``caller``; raise 429 past the budget."""
        now = time.time()
        window = int(now // WINDOW_SECONDS)
        count = await self.store.incr(
            f"kv:rate:{self.action}:{window}:{caller}", ttl=WINDOW_SECONDS + 1
        )
        if count > self.per_minute:
            retry = max(1, math.ceil(WINDOW_SECONDS - now % WINDOW_SECONDS))
            raise SankeError(
                ErrorCode.rate_limited,
                f"at most {self.per_minute} {self.action} a minute; retry in {retry} s",
                429,
                headers={"Retry-After": str(retry)},
            )


@dataclass(frozen=True)
class ApiRateLimits:
    mint: WindowLimit
    register: WindowLimit


RATE_LIMITS_KEY: web.AppKey[ApiRateLimits] = web.AppKey("rate_limits", ApiRateLimits)


def api_rate_limits(store: Store, mints: int, registrations: int) -> ApiRateLimits:
    return ApiRateLimits(
        mint=WindowLimit(store, "token mints", mints),
        register=WindowLimit(store, "device registrations", registrations),
    )
