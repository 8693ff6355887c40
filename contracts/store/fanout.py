"""Local fan-out of channel messages into bounded per-subscriber queues."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

from contracts.store.base import SUBSCRIPTION_QUEUE_LIMIT, Subscription

_CLOSED = object()


class QueueSubscription(Subscription):
    def __init__(
        self, channel: str, on_close: Callable[[QueueSubscription], Awaitable[None]]
    ) -> None:
        self.channel = channel
        self.dropped = 0
        self._queue: asyncio.Queue[object] = asyncio.Queue(SUBSCRIPTION_QUEUE_LIMIT)
        self._on_close = on_close
        self._closed = False

    def deliver(self, message: str) -> None:
        if self._closed:
            return
        if self._queue.full():
            # Drop the oldest: a stalled subscriber never makes memory grow.
            self._queue.get_nowait()
            self.dropped += 1
        self._queue.put_nowait(message)

    async def get(self, timeout: float | None = None) -> str | None:
        if self._closed and self._queue.empty():
            return None
        try:
            item = await asyncio.wait_for(self._queue.get(), timeout)
        except TimeoutError:
            return None
        if item is _CLOSED:
            return None
        assert isinstance(item, str)
        return item

    async def __aiter__(self) -> AsyncIterator[str]:
        while True:
            item = await self.get()
            if item is None:
                return
            yield item

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._queue.full():
            self._queue.get_nowait()
        self._queue.put_nowait(_CLOSED)
        await self._on_close(self)


class Fanout:
    """channel → local subscriptions."""

    def __init__(self) -> None:
        self.channels: dict[str, set[QueueSubscription]] = {}

    def add(self, subscription: QueueSubscription) -> bool:
        """Register; True when it is the channel's first local subscriber."""
        subs = self.channels.setdefault(subscription.channel, set())
        subs.add(subscription)
        return len(subs) == 1

    def remove(self, subscription: QueueSubscription) -> bool:
        """Unregister; True when the channel has no local subscriber left."""
        subs = self.channels.get(subscription.channel)
        if subs is None:
            return False
        subs.discard(subscription)
        if not subs:
            del self.channels[subscription.channel]
            return True
        return False

    def deliver(self, channel: str, message: str) -> int:
        subs = tuple(self.channels.get(channel, ()))
        for sub in subs:
            sub.deliver(message)
        return len(subs)
