"""The real app (``running_app``) on an event loop of its own thread, for synchronous clients
(Schemathesis calls the API with ``requests`` from the test's thread)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import Any, TypeVar

from support.harness import Harness, running_app

T = TypeVar("T")


class ThreadedApp:
    def __init__(self, **settings: Any) -> None:
        self._settings = settings
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="app-loop", daemon=True)
        self._context = running_app(**settings)

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60) -> T:
        """Run ``coro`` on the app's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def __enter__(self) -> Harness:
        self._thread.start()
        self.harness = self.run(self._context.__aenter__())
        return self.harness

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.run(self._context.__aexit__(kind, exc, tb))
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()
