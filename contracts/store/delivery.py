"""Publishing a message somebody must hear.

Right after a Redis restart a listener's pub/sub connection may not have resubscribed yet,
and while Redis is down nobody hears anything: a message that matters (a media request, its
reply, a server offer) is published again until a subscriber received it.
"""

from __future__ import annotations

import asyncio
import time

from contracts.store.base import Store
from contracts.store.outage import UNREACHABLE


async def publish_until_heard(
    store: Store, channel: str, raw: str, *, pause: float, patience: float | None = None
) -> bool:
    """Publish every ``pause`` seconds until a subscriber hears it; whether one did. With
    ``patience`` it gives up after that many seconds, without it the caller bounds it."""
    deadline = None if patience is None else time.monotonic() + patience
    while True:
        try:
            if await store.publish(channel, raw):
                return True
        except UNREACHABLE:
            pass
        if deadline is not None and time.monotonic() >= deadline:
            return False
        await asyncio.sleep(pause)
