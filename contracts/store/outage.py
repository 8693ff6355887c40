"""One line when the store becomes unreachable and one when it is back, not a traceback
per retry: a Redis restart is an outage the loops ride out, not a bug."""

from __future__ import annotations

import logging

import redis

UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, ConnectionError, TimeoutError)
# Only the store client's own: where any exception of a request handler may arrive, an
# asyncio timeout or a socket error of something else is not the store going away.
STORE_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError)


class OutageLog:
    def __init__(self, logger: logging.Logger, what: str) -> None:
        self.log = logger
        self.what = what
        self.down = False

    def failed(self, exc: BaseException) -> None:
        """Log ``exc``: a store outage once as a warning, anything else with its traceback."""
        if isinstance(exc, UNREACHABLE):
            if not self.down:
                self.log.warning("%s: the store is unreachable (%s); retrying", self.what, exc)
            self.down = True
            return
        self.log.error("%s failed", self.what, exc_info=exc)

    def ok(self) -> None:
        if self.down:
            self.log.warning("%s: the store answers again", self.what)
        self.down = False
