"""Cancellation that redis-py loses, given back.

redis-py (8.1, Python 3.11) swallows a task's cancellation that lands while a command is in
flight, in about four of ten tries (``tests/storage/test_redis_cancel.py``): the command
returns normally and the task goes on. A loop cancelled that way never ends; measured here: a
solve job's heartbeat kept renewing its lease after the job finished, and the job waited for
it for ever (scheduler/jobs.py). Every command goes through ``execute_command`` (scripts
too); a cancellation requested while one ran, that did not reach the caller, is raised when
it returns. One requested before it (cleanup inside an ``except CancelledError``) is not
raised again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

import redis.asyncio as aioredis

T = TypeVar("T")


async def keeping_cancellation(awaitable: Awaitable[T]) -> T:
    task = asyncio.current_task()
    before = task.cancelling() if task is not None else 0
    result = await awaitable
    if task is not None and task.cancelling() > before:
        raise asyncio.CancelledError  # requested while the command ran, and swallowed there
    return result


class CancellableRedis(aioredis.Redis):
    async def execute_command(self, *args: Any, **options: Any) -> Any:
        command = super().execute_command(*args, **options)  # type: ignore[no-untyped-call]
        return await keeping_cancellation(command)
